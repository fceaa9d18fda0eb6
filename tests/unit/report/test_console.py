"""Progress and results: drawn with colour on a terminal, plain timestamped lines elsewhere."""

from __future__ import annotations

import io
import re

import pytest

from harness.report.console import Console

ESC = "\x1b["


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_in_a_log_progress_is_plain_lines_one_per_ten_percent(monkeypatch) -> None:
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    out = io.StringIO()
    console = Console(out)
    with console.phase("lab start"):
        pass
    with console.progress("resync HA2", 100, "%") as p:
        for done in range(0, 101, 2):
            p.update(done)
    console.result("Failed", "sync link black hole")
    text = out.getvalue()
    assert ESC not in text
    lines = text.splitlines()
    assert re.fullmatch(r"\[\d\d:\d\d:\d\d\] lab start \.\.\.", lines[0])
    assert re.fullmatch(r"\[\d\d:\d\d:\d\d\] lab start: done in \d+\.\d s", lines[1])
    progress = [line for line in lines if "resync HA2" in line]
    assert len(progress) == 11  # 0%, 10%, ... 100%
    assert progress[-1].endswith("resync HA2: 100/100 % (100%)")
    assert lines[-1] == "Failed         sync link black hole"


def test_on_a_terminal_results_are_coloured_unless_no_color(monkeypatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    term = FakeTerminal()
    Console(term).result("Failed", "x")
    assert ESC in term.getvalue()
    monkeypatch.setenv("NO_COLOR", "1")
    plain = FakeTerminal()
    Console(plain).result("Failed", "x")
    assert ESC not in plain.getvalue()


@pytest.mark.parametrize("tty", [True, False])
def test_checks_progress_names_the_check(tty: bool) -> None:
    out = FakeTerminal() if tty else io.StringIO()
    with Console(out).progress("validation checks", 3) as p:
        for i in range(4):
            p.update(i, "Validate IP Configuration")
    text = out.getvalue()
    assert "validation checks" in text and "Validate IP Configuration" in text
    if not tty:
        assert len(text.splitlines()) == 4  # 0, 33, 66 and 100 %


def test_a_line_ending_in_dots_is_a_wait_until_the_next_line(monkeypatch) -> None:
    monkeypatch.setenv("TERM", "xterm")
    term = FakeTerminal()
    console = Console(term)
    console.line("lab: starting 'lab' ...")
    assert console._waiting is not None  # a spinner, not a printed line
    console.line("lab: started 'lab' in 2.0 s")
    assert console._waiting is None and "lab: started 'lab' in 2.0 s" in term.getvalue()
    log = io.StringIO()
    plain = Console(log)
    plain.line("lab: starting 'lab' ...")
    plain.line("lab: started 'lab' in 2.0 s")
    assert [line[11:] for line in log.getvalue().splitlines()] == [
        "lab: starting 'lab' ...", "lab: started 'lab' in 2.0 s"]


def test_no_spinner_while_a_progress_bar_is_drawn(monkeypatch) -> None:
    monkeypatch.setenv("TERM", "xterm")
    term = FakeTerminal()
    console = Console(term)
    with console.progress("chaos scenarios", 2, log_lines=False) as bar:
        console.line("waiting for resync ...")  # rich allows one live display at a time
        assert console._waiting is None
        bar.update(1)
    assert "waiting for resync ..." in term.getvalue()


def test_a_writer_turns_printed_phases_into_lines() -> None:
    log = io.StringIO()
    w = Console(log).writer("  path-one: ")
    print("workload: 4 writers", file=w, flush=True)
    w.write("replicas: both Synchronized ")
    w.write("0.1 s after the workload ended\n\n")
    assert [line[11:] for line in log.getvalue().splitlines()] == [
        "  path-one: workload: 4 writers",
        "  path-one: replicas: both Synchronized 0.1 s after the workload ended"]
