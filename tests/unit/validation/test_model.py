"""The validation model: the wizard's summary words, selection by name or category,
and how every way a check can end becomes a result word."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from harness.checks.results import CheckResult, ResultWord
from harness.errors import SplitbrainError
from harness.validation.model import (
    Check,
    ValidationError,
    execute,
    failed,
    judged,
    select,
    success,
    summary_words,
)
from harness.validation.network import design, parse_ping
from harness.validation.runner import catalogue

SITE = SimpleNamespace(name="lab")


def result(word: ResultWord) -> CheckResult:
    return CheckResult("validation", "Storage", "x", "", word)


@pytest.mark.parametrize(("words", "unselected", "expected"), [
    ([ResultWord.SUCCESS, ResultWord.NOT_APPLICABLE], 0, "Validation passed"),
    ([ResultWord.SUCCESS, ResultWord.WARNING], 0,
     "Validation passed with warnings (1 test(s) reported warnings) "
     "[Test Result: ClusterConditionallyApproved]"),
    ([ResultWord.WARNING, ResultWord.FAILED], 3,
     "Validation failed: 1 test(s) failed; the configuration is not suitable for clustering "
     "[Test Result: HadUnselectedTests]"),
    ([ResultWord.SUCCESS, ResultWord.CANCELED], 0, "Validation incomplete: 1 test(s) canceled"),
    ([ResultWord.NOT_APPLICABLE], 0, "Validation ran no applicable test"),
])
def test_summary_words(words, unselected, expected):
    assert summary_words([result(w) for w in words], unselected) == expected


def test_select_by_category_or_exact_name_and_ignore():
    checks = catalogue()
    storage = select(checks, include=["storage"])
    assert storage and {c.category for c in storage} == {"Storage"}
    assert [c.name for c in select(checks, include=["List Disks"])] == ["List Disks"]
    rest = select(checks, include=["Storage"], ignore=["Validate Disk Failover"])
    assert len(rest) == len(storage) - 1
    with pytest.raises(ValidationError, match="did you mean 'List Disks'"):
        select(checks, include=["List Disk"])


def test_catalogue_uses_the_wizards_names_once_each():
    names = [c.name for c in catalogue()]
    assert len(names) == len(set(names))
    for wizard_name in ("List Potential Cluster Disks", "Validate SCSI-3 Persistent Reservation",
                        "Validate SCSI device Vital Product Data (VPD)",
                        "Validate Microsoft MPIO-based disks", "Validate Network Communication",
                        "Validate Multiple Subnet Properties", "Validate Hyper-V Role Installed",
                        "Validate Quorum Configuration", "Validate Same Processor Architecture"):
        assert wizard_name in names


def _run(fn) -> CheckResult:
    return asyncio.run(execute(Check("Storage", "probe", "", fn, deadline_s=0.2), SITE))


def test_every_ending_becomes_a_result_word():
    async def ok(run):
        run.step("sent something")
        run.number("n", 3)
        return success("fine")

    async def user_error(run):
        raise SplitbrainError("cannot reach SWS-Store1\n at 192.0.2.11:22")

    async def hangs(run):
        await asyncio.sleep(5)

    async def judged_problems(run):
        return judged(["first", "second"], ["w"], "never")

    r = _run(ok)
    assert (r.result, r.reason, r.numbers["n"]) == (ResultWord.SUCCESS, "fine", 3)
    assert r.evidence[0].title == "Steps" and "sent something" in r.evidence[0].text
    r = _run(user_error)
    assert r.result is ResultWord.FAILED
    assert r.reason == "SplitbrainError: cannot reach SWS-Store1 at 192.0.2.11:22"
    assert _run(hangs).result is ResultWord.CANCELED
    r = _run(judged_problems)
    assert r.result is ResultWord.FAILED and r.reason == "first (and 1 more problem(s))"
    assert failed("x").result is ResultWord.FAILED


def test_ping_output_of_linux_and_windows():
    linux = parse_ping("--- 10.0.0.2 ping statistics ---\n3 packets transmitted, 2 received, "
                       "33% packet loss, time 101ms\nrtt min/avg/max/mdev = "
                       "0.041/0.052/0.063/0.010 ms\n", "ping")
    assert (linux.sent, linux.received, linux.avg_ms, linux.max_ms) == (3, 2, 0.052, 0.063)
    windows = parse_ping("Packets: Sent = 3, Received = 3, Lost = 0 (0% loss),\n"
                         "Minimum = 0ms, Maximum = 2ms, Average = 1ms\n", "ping.exe")
    assert (windows.received, windows.avg_ms, windows.max_ms) == (3, 1.0, 2.0)
    missing = parse_ping('exec of "ping" failed: No such file or directory', "ping")
    assert not missing.ran and missing.received == 0
    unreachable = parse_ping("ping: connect: Network is unreachable", "ping")
    assert unreachable.ran and unreachable.received == 0


def test_design_words_of_the_shipped_sites():
    from fixtures.settings import INVENTORIES
    from harness.lab.inventory import load

    assert design(load(INVENTORIES / "example-site.toml")).startswith("converged")
    assert design(load(INVENTORIES / "example-site-dedicated-sync.toml")).startswith(
        "dedicated sync link")
    assert design(load(INVENTORIES / "lab.toml")).startswith("dedicated sync link")
