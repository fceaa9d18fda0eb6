"""libiscsi's ``iscsi-test-cu`` as a conformance yardstick, and the table it yields.

Model: one *run* of ``iscsi-test-cu --dataloss`` against one iSCSI URL gives an
*outcome* per test, named ``Suite.Test`` as the tool prints it: ``passed``,
``skipped`` (the tool reports a skip as a pass with ``[SKIPPED]``; here it is
counted apart), ``failed``, or ``missing`` when the run ended before the test
reported (a crash or a hang of the target). The tool's stdout is made unbuffered
(``stdbuf``) so its messages and verdicts stay in order and can be parsed.

``python -m suites.protocol.libiscsi --write`` starts the bundled reference target
and Debian's tgtd on loopback, runs the suite against both in the same run,
writes both tables into ``docs/conformance.md`` and the floor (the reference
target's pass count and passing tests) into ``libiscsi_floor.json`` next to this
module, which ``test_libiscsi_conformance.py`` holds the target to.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from harness.errors import SplitbrainError

FLOOR_FILE = Path(__file__).with_name("libiscsi_floor.json")
DOCS_FILE = Path(__file__).resolve().parents[2] / "docs" / "conformance.md"
INITIATOR_1 = "iqn.2026-11.org.splitbrain.conformance:initiator-1"
INITIATOR_2 = "iqn.2026-11.org.splitbrain.conformance:initiator-2"
OUTCOMES = ("passed", "skipped", "failed", "missing")

_TEST = re.compile(r"^\s*Test: (\S+) \.\.\.(.*)$")
_SUITE = re.compile(r"^Suite: (\S+)")
_VERDICT = re.compile(r"(?:^|\.\.\.)(passed|FAILED)\b", re.M)


class ConformanceError(SplitbrainError):
    """iscsi-test-cu could not be run."""


@dataclass(frozen=True)
class SuiteRun:
    """The outcome of every test of one iscsi-test-cu run."""

    url: str
    outcomes: dict[str, str]
    seconds: float
    returncode: int

    def count(self) -> Counter[str]:
        return Counter(self.outcomes.values())

    def passed(self) -> set[str]:
        return {t for t, o in self.outcomes.items() if o == "passed"}

    def short_of_floor(self, floor_file: Path = FLOOR_FILE) -> str:
        """"" when this run holds the recorded floor (every test reported, and at least
        the floor's pass count); else what falls short, in one line."""
        floor = json.loads(floor_file.read_text(encoding="utf-8"))
        missing = sorted(t for t, o in self.outcomes.items() if o == "missing")
        if missing:
            return f"tests that never reported (hang or crash): {missing[:20]}"
        if self.count()["passed"] < floor["passed"]:
            regressed = sorted(set(floor["tests"]) - self.passed())
            return (f"{self.count()['passed']} tests passed, the floor is {floor['passed']}; "
                    f"no longer passing: {regressed}")
        return ""


def listed_tests(family: str = "ALL") -> list[str]:
    """``Suite.Test`` names the tool would run for ``family`` (from ``--list``)."""
    out = subprocess.run(["iscsi-test-cu", "--list"], capture_output=True, text=True,
                         check=False, timeout=60).stdout
    names = []
    for line in out.splitlines():
        parts = line.strip().split(".")
        if len(parts) == 3 and parts[0] == family:
            names.append(f"{parts[1]}.{parts[2]}")
    return names


def parse_output(text: str) -> dict[str, str]:
    """Outcome per ``Suite.Test`` from the tool's verbose output."""
    outcomes: dict[str, str] = {}
    suite = ""
    current: str | None = None
    block: list[str] = []

    def close() -> None:
        if current is None:
            return
        body = "\n".join(block)
        # The verdict follows the "..." of the test line or starts a line of its own;
        # "[FAILED] ..." message lines are not verdicts.
        verdict = _VERDICT.search(body)
        if verdict is None:
            outcomes[current] = "missing"
        elif verdict.group(1) == "FAILED":
            outcomes[current] = "failed"
        else:
            outcomes[current] = "skipped" if "[SKIPPED]" in body else "passed"

    for line in text.splitlines():
        m = _SUITE.match(line)
        if m:
            close()
            current, block, suite = None, [], m.group(1)
            continue
        m = _TEST.match(line)
        if m:
            close()
            current, block = f"{suite}.{m.group(1)}", ["..." + m.group(2)]
            continue
        if current is not None:
            block.append(line)
    close()
    return outcomes


def run_suite(url: str, *, family: str = "ALL", timeout: float = 900.0) -> SuiteRun:
    """Run ``iscsi-test-cu --dataloss`` against ``url`` with two initiator names."""
    tool = shutil.which("iscsi-test-cu")
    if tool is None:
        raise ConformanceError("iscsi-test-cu not found: install Debian package libiscsi-bin")
    argv = [tool, "--dataloss", "-i", INITIATOR_1, "-I", INITIATOR_2, "-t", family, url]
    if shutil.which("stdbuf"):
        argv = ["stdbuf", "-o0", "-e0", *argv]
    start = time.monotonic_ns()
    with tempfile.TemporaryDirectory(prefix="splitbrain-cu-") as cwd:
        try:
            proc = subprocess.run(argv, cwd=cwd, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, errors="replace",
                                  timeout=timeout, check=False)
            text, code = proc.stdout, proc.returncode
        except subprocess.TimeoutExpired as exc:
            raw = exc.stdout or b""
            text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
            code = -1
    outcomes = {name: "missing" for name in listed_tests(family)}
    outcomes.update(parse_output(text))
    return SuiteRun(url, outcomes, (time.monotonic_ns() - start) / 1e9, code)


def table(runs: dict[str, SuiteRun]) -> str:
    """A Markdown summary table plus the per-test differences between the runs."""
    names = list(runs)
    lines = ["| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for outcome in OUTCOMES:
        lines.append(f"| {outcome} | " + " | ".join(str(runs[n].count()[outcome])
                                                     for n in names) + " |")
    lines.append("| seconds | " + " | ".join(f"{runs[n].seconds:.0f}" for n in names) + " |")
    tests = sorted(set().union(*(r.outcomes for r in runs.values())))
    differ = [t for t in tests if len({runs[n].outcomes.get(t) for n in names}) > 1]
    lines += ["", "Tests whose outcome differs:", "",
              "| test | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for t in differ:
        lines.append(f"| {t} | " + " | ".join(runs[n].outcomes.get(t, "-") for n in names)
                     + " |")
    return "\n".join(lines)


def regenerate(write: bool) -> int:
    """Run against the reference target and tgtd; print (and write) the tables."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from harness.peers.reference_target import NodeSpec, ReferenceTarget, lun_target
    from harness.peers.tgtd import start_tgtd

    with tempfile.TemporaryDirectory(prefix="splitbrain-conformance-") as tmp:
        node = ReferenceTarget(NodeSpec(name="conformance", addresses=("127.0.0.1",),
                                        targets=(lun_target(luns=1, size="64MiB"),)),
                               Path(tmp) / "node")
        daemon = start_tgtd()
        try:
            node.start()
            tgt = daemon.new_target()
            runs = {"reference target": run_suite(node.url()), "tgtd": run_suite(tgt.url())}
            crashed = not node.alive()
        finally:
            node.stop()
            daemon.stop()
    text = table(runs)
    print(text)
    if crashed:
        print("the reference target died during the run", file=sys.stderr)
        return 1
    if write:
        ours = runs["reference target"]
        FLOOR_FILE.write_text(json.dumps({
            "passed": ours.count()["passed"],
            "tests": sorted(ours.passed()),
            "tgtd_passed": runs["tgtd"].count()["passed"],
        }, indent=1) + "\n", encoding="utf-8")
        _write_docs(text)
    return 0


def _write_docs(text: str) -> None:
    begin, end = "<!-- libiscsi-results:begin -->", "<!-- libiscsi-results:end -->"
    stamp = (f"Measured {time.strftime('%Y-%m-%d', time.gmtime())} on {platform.node()} "
             f"({platform.machine()}, Linux {platform.release()}), libiscsi-bin "
             f"{_package_version('libiscsi-bin')}, tgt {_package_version('tgt')}.")
    block = f"{begin}\n{stamp}\n\n{text}\n{end}"
    doc = DOCS_FILE.read_text(encoding="utf-8") if DOCS_FILE.exists() else ""
    if begin in doc and end in doc:
        doc = doc[: doc.index(begin)] + block + doc[doc.index(end) + len(end):]
    else:
        doc = doc + "\n" + block + "\n"
    DOCS_FILE.write_text(doc, encoding="utf-8")


def _package_version(name: str) -> str:
    try:
        return subprocess.run(["dpkg-query", "-W", "-f=${Version}", name], capture_output=True,
                              text=True, check=False, timeout=10).stdout.strip() or "?"
    except OSError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true",
                        help="write docs/conformance.md and the floor file")
    return regenerate(parser.parse_args(argv).write)


if __name__ == "__main__":
    sys.exit(main())
