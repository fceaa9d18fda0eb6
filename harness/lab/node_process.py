"""A lab node's process: how to start it, find it again, signal it and wait for it.

A ``NodeProcess`` is plain data (argv, working directory, log file, ready file,
and the pid plus kernel start time of the running instance), saved in the lab's
state directory so any process (``splitbrain lab down``, ``splitbrain heal``, a
fault in a test) can act on the node. Nodes are started detached (their own
session, re-parented away from the starter) so they never become zombies of the
harness and survive it being killed, as a real storage server would.

A pid alone is never trusted: the kernel start time (``/proc/<pid>/stat`` field
22) must match too, so a signal never reaches an unrelated process that reused
the pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from tenacity import Retrying, retry_if_result, stop_after_delay, wait_exponential

from harness.errors import SplitbrainError

START_DEADLINE_S = 30.0
STOP_DEADLINE_S = 15.0


class NodeProcessError(SplitbrainError):
    """A lab node did not start, stop or answer as expected."""


def process_start_ticks(pid: int) -> int | None:
    """The kernel start time of ``pid``, or None if it does not exist or is a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def process_state(pid: int) -> str | None:
    """``R``/``S``/``T`` (stopped) ... from ``/proc/<pid>/stat``; None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return stat[stat.rindex(")") + 2 :].split()[0]


def wait_until(check: Any, deadline_s: float) -> bool:
    """Poll ``check()`` with backoff until true or the deadline; return its last verdict."""
    retrying = Retrying(
        stop=stop_after_delay(deadline_s),
        retry=retry_if_result(lambda r: not r),
        wait=wait_exponential(multiplier=0.01, max=0.25),
        retry_error_callback=lambda state: False,
    )
    return bool(retrying(lambda: bool(check())))


def last_line(path: str) -> str:
    """The last non-empty line of a log (what a dying process said last)."""
    try:
        lines = Path(path).read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


@dataclass(frozen=True)
class NodeProcess:
    """One lab node: its command and, while it runs, its identity."""

    host: str
    argv: tuple[str, ...]
    cwd: str
    log: str
    ready_file: str
    env: dict[str, str] = field(default_factory=dict)
    env_files: dict[str, str] = field(default_factory=dict)  # VAR -> file holding its secret
    pid: int | None = None
    start_ticks: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"argv": list(self.argv)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NodeProcess:
        return cls(**(data | {"argv": tuple(data["argv"])}))

    @property
    def alive(self) -> bool:
        return (
            self.pid is not None
            and self.start_ticks is not None
            and process_start_ticks(self.pid) == self.start_ticks
        )

    @property
    def frozen(self) -> bool:
        return self.alive and process_state(self.pid or 0) == "T"

    def ready(self) -> dict[str, Any] | None:
        """The node's ready record, once it has written it."""
        try:
            return json.loads(Path(self.ready_file).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def start(self, deadline_s: float = START_DEADLINE_S) -> NodeProcess:
        """Start detached and wait for the ready file; return the running instance."""
        if self.alive:
            return self
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.ready_file)
        env = {**os.environ, **self.env}
        for var, path in self.env_files.items():
            try:
                env[var] = Path(path).read_text().strip()
            except OSError as exc:
                raise NodeProcessError(
                    f"cannot read {var} for lab node {self.host} from {path}: "
                    f"{exc.strerror}; is the lab state intact?"
                ) from None
        # sh starts the node in the background and exits: the node is re-parented, never
        # our zombie, and lives in its own session so our signals do not reach it.
        script = 'cd "$1" || exit 1; log="$2"; shift 2; "$@" </dev/null >>"$log" 2>&1 & echo $!'
        try:
            out = subprocess.run(
                ["/bin/sh", "-c", script, "sh", self.cwd, self.log, *self.argv],
                env=env,
                capture_output=True,
                text=True,
                check=True,
                start_new_session=True,
                timeout=10,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise NodeProcessError(
                f"cannot start lab node {self.host}: {exc}; see {self.log}"
            ) from None
        pid = int(out.stdout.strip())
        ticks = process_start_ticks(pid)
        running = replace(self, pid=pid, start_ticks=ticks)
        if ticks is not None:
            wait_until(lambda: running.ready() or not running.alive, deadline_s)
        if running.alive and running.ready():
            return running
        died = not running.alive
        running.kill()
        what = "exited before it was ready" if died else f"was not ready within {deadline_s:.0f}s"
        raise NodeProcessError(
            f"lab node {self.host} {what}: {last_line(self.log)!r}; see {self.log}"
        )

    def signal(self, sig: signal.Signals) -> bool:
        """Send ``sig`` if this exact process still runs; False if it is gone."""
        if not self.alive:
            return False
        try:
            os.kill(self.pid or 0, sig)
        except ProcessLookupError:
            return False
        return True

    def wait_exit(self, deadline_s: float = STOP_DEADLINE_S) -> bool:
        return wait_until(lambda: not self.alive, deadline_s)

    def kill(self) -> None:
        """SIGKILL (a frozen process dies too) and wait until it is gone."""
        if self.signal(signal.SIGKILL) and not self.wait_exit():
            raise NodeProcessError(f"lab node {self.host} (pid {self.pid}) survived SIGKILL")

    def stop(self, deadline_s: float = STOP_DEADLINE_S) -> None:
        """Graceful stop: SIGCONT (in case it is frozen), SIGTERM, then SIGKILL at the deadline."""
        self.signal(signal.SIGCONT)
        if self.signal(signal.SIGTERM) and not self.wait_exit(deadline_s):
            self.kill()
