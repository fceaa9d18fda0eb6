"""Plugin options resolve once, with command line > environment > ini > default."""

from __future__ import annotations

pytest_plugins = ["pytester"]

PROBE = """
def test_show(settings):
    print("SEED", settings.seed, "PROFILE", settings.budget_profile,
          "DESTRUCTIVE", settings.allow_destructive, "INV", settings.inventory.name)
"""


def _line(result) -> str:
    return next(line for line in result.outlines if "SEED " in line)


def test_defaults(pytester):
    pytester.makepyfile(PROBE)
    result = pytester.runpytest("-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    line = _line(result)
    assert "PROFILE default" in line and "DESTRUCTIVE False" in line and "INV lab.toml" in line


def test_command_line_beats_environment_beats_ini(pytester, monkeypatch):
    pytester.makeini("[pytest]\nbudget_profile = from-ini\nseed = 7\n")
    pytester.makepyfile(PROBE)
    monkeypatch.setenv("SPLITBRAIN_SEED", "11")
    monkeypatch.setenv("SPLITBRAIN_ALLOW_DESTRUCTIVE", "yes")
    result = pytester.runpytest("-s", "--seed", "0x10")
    line = _line(result)
    assert "SEED 16 " in line and "PROFILE from-ini" in line and "DESTRUCTIVE True" in line
    monkeypatch.delenv("SPLITBRAIN_SEED")
    assert "SEED 7 " in _line(pytester.runpytest("-s"))


def test_bad_seed_is_a_usage_error(pytester):
    pytester.makepyfile(PROBE)
    result = pytester.runpytest("--seed", "banana")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*--seed must be an integer, got 'banana'*"])


def test_seed_is_reported_in_the_header(pytester):
    pytester.makepyfile(PROBE)
    result = pytester.runpytest("--seed", "42")
    result.stdout.fnmatch_lines(["splitbrain: inventory=* seed=42 budget-profile=default"])
