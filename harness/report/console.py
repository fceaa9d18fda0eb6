"""What a person sees while a command runs: progress on a terminal, plain lines in a CI log.

A ``Console`` looks at its stream once. On a terminal it draws with rich: a
spinner for a phase with no known length (lab start, a chaos phase), a bar for
one with a known total (validation checks, resync percentage), and result words
in colour. Anywhere else (a CI log, a pipe, a file) it writes plain timestamped
lines with no escape codes: a line when a phase starts and ends, and a progress
line only when the percentage crosses a ``STEP_PERCENT`` boundary, so a log stays
short. Colour follows the terminal unless ``NO_COLOR`` is set (or
``FORCE_COLOR`` forces it on).

The lower layers (chaos, validation) do not import this: they take a plain
callback, and the command line wires a ``Console`` method to it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from typing import Any, TextIO

STEP_PERCENT = 10
RESULT_STYLES = {"Success": "green", "Warning": "yellow", "Failed": "bold red",
                 "Canceled": "magenta", "Not Applicable": "dim"}


def _wants_colour(stream: TextIO, tty: bool) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return tty and os.environ.get("TERM", "") != "dumb"


class Progress:
    """One task with a known total: ``update(done, detail)`` as it goes."""

    def __init__(self, console: Console, label: str, total: float, unit: str,
                 log_lines: bool = True) -> None:
        self.console, self.label, self.total, self.unit = console, label, total, unit
        self.log_lines = log_lines
        self._last_step = -1
        self._task = None
        self._bar = None
        if console.tty:
            console._stop_waiting()
            console.live = True
            from rich.progress import (
                BarColumn,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(),
                                     TaskProgressColumn(), TextColumn("{task.fields[detail]}"),
                                     TimeElapsedColumn(), console=console.rich,
                                     transient=True)
            self._bar.start()
            self._task = self._bar.add_task(label, total=total or None, detail="")

    def update(self, done: float, detail: str = "") -> None:
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=done, detail=detail)
            return
        if not self.log_lines:
            return
        percent = int(100 * done / self.total) if self.total else 0
        step = percent // STEP_PERCENT
        if step > self._last_step:
            self._last_step = step
            extra = f" {detail}" if detail else ""
            self.console.line(f"{self.label}: {done:g}/{self.total:g} {self.unit} "
                              f"({percent}%){extra}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
            self.console.live = False


class LineWriter:
    """A minimal text stream that hands each complete line to a ``Console``."""

    def __init__(self, console: Console, prefix: str) -> None:
        self.console, self.prefix, self._pending = console, prefix, ""

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            if line.strip():
                self.console.line(self.prefix + line)
        return len(text)

    def flush(self) -> None:
        pass


class Console:
    """Progress, results and errors for one command, fitted to where its output goes."""

    def __init__(self, stream: TextIO | None = None, *, tty: bool | None = None) -> None:
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self.colour = _wants_colour(self.stream, self.tty)
        self._rich = None
        self._waiting: Any = None  # the spinner of a "... " line
        self.live = False  # a progress bar is drawn (rich allows one live display)

    def _stop_waiting(self) -> None:
        if self._waiting is not None:
            self._waiting.stop()
            self._waiting = None

    @property
    def rich(self):  # type: ignore[no-untyped-def]
        if self._rich is None:
            from rich.console import Console as RichConsole

            self._rich = RichConsole(file=self.stream, force_terminal=self.tty,
                                     no_color=not self.colour, highlight=False,
                                     soft_wrap=True)
        return self._rich

    def line(self, text: str) -> None:
        """A plain line (timestamped when not on a terminal). On a terminal a line that
        ends in ``...`` is a wait: a spinner shows it until the next line."""
        self._stop_waiting()
        if self.tty:
            if text.endswith("...") and not self.live:
                self._waiting = self.rich.status(text)
                self._waiting.start()
                return
            self.rich.print(text, markup=False)
        else:
            stamp = time.strftime("%H:%M:%S", time.gmtime())
            print(f"[{stamp}] {text}", file=self.stream, flush=True)

    def result(self, word: str, text: str) -> None:
        """A result word (coloured on a terminal) followed by its text."""
        self._stop_waiting()
        if self.tty:  # through rich, so a live progress bar stays below it
            from rich.text import Text

            line = Text(f"{word:<14} ", style=RESULT_STYLES.get(word, "") if self.colour else "")
            line.append(text, style="")
            self.rich.print(line)
        else:
            print(f"{word:<14} {text}", file=self.stream, flush=True)

    @contextlib.contextmanager
    def phase(self, label: str) -> Iterator[None]:
        """A wait of unknown length: a spinner on a terminal, start/end lines elsewhere."""
        start = time.monotonic()
        self._stop_waiting()
        if self.tty and not self.live:
            with self.rich.status(label):
                yield
            self.rich.print(f"{label}: done in {time.monotonic() - start:.1f} s", markup=False)
            return
        self.line(f"{label} ...")
        yield
        self.line(f"{label}: done in {time.monotonic() - start:.1f} s")

    @contextlib.contextmanager
    def progress(self, label: str, total: float, unit: str = "",
                 log_lines: bool = True) -> Iterator[Progress]:
        """A wait with a known total (checks, percent resynchronized). ``log_lines=False``
        draws the bar on a terminal only (when the caller logs each step itself)."""
        p = Progress(self, label, total, unit, log_lines)
        try:
            yield p
        finally:
            p.close()

    def writer(self, prefix: str = "") -> LineWriter:
        """A text stream whose every line becomes ``line(prefix + text)`` (for code that
        prints its phases to a file object, such as the chaos runner's ``out``)."""
        return LineWriter(self, prefix)

    def error(self, command: str, message: str) -> None:
        """The one line an error gets (``error:`` in red on a terminal)."""
        err = sys.stderr if self.stream is sys.stdout else self.stream
        prefix = f"splitbrain {command}: "
        if self.colour and err.isatty():
            print(f"{prefix}\x1b[1;31merror:\x1b[0m {message}", file=err, flush=True)
        else:
            print(f"{prefix}error: {message}", file=err, flush=True)
