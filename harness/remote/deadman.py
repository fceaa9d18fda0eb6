"""Node-side heal timers: a fault on a real Linux host that heals itself after a TTL.

The runner's ``finally`` does nothing when the runner dies (SIGKILL, OOM, a lost
CI machine). So when a black hole is armed with a TTL, the host itself is asked
to remove that fault's rules after ``ttl_s`` seconds. This is the dead man's
switch of Gremlin, or Pumba's ``--duration``: a dead control node cannot leave
the SAN partitioned for longer than the TTL.

The timer is a transient systemd unit (``systemd-run --on-active``) where systemd
runs, and otherwise a detached ``sleep`` in its own session. Both run the same
fixed script, which deletes by handle exactly the rules whose comment is
``splitbrain:<tag>`` in ``table inet splitbrain``, and nothing else. ``disarm``
cancels the timer when the fault is healed normally, so a fault id that is used
again is not healed early by a stale timer. The fallback sleeper is found by its
exact marker argument and killed by pid, never by a pattern.
"""

from __future__ import annotations

import hashlib
import math
import re

from harness.remote.errors import UnsafeArgument
from harness.remote.nftables import CHAINS, FAMILY, TABLE, TAG_PREFIX, check_tag
from harness.remote.result import CommandRunner

MAX_TTL_S = 7 * 24 * 3600


def timer_name(tag: str) -> str:
    """``splitbrain-heal-<tag>-<hash>``: a unit name and a process marker for ``tag``."""
    check_tag(tag)
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", tag)
    digest = hashlib.sha256(tag.encode()).hexdigest()[:8]
    return f"splitbrain-heal-{safe}-{digest}"


def heal_script(tag: str) -> str:
    """A POSIX sh script that deletes the rules tagged ``tag`` (by handle), and only those."""
    check_tag(tag)
    pattern = re.sub(r"([.*\[\]^$\\])", r"\\\1", f'comment "{TAG_PREFIX}{tag}" # handle ')
    lines = []
    for chain in CHAINS:
        lines.append(
            f"nft -a list chain {FAMILY} {TABLE} {chain} 2>/dev/null"
            f" | sed -n 's/.*{pattern}\\([0-9][0-9]*\\)$/\\1/p'"
            f" | while read h; do nft delete rule {FAMILY} {TABLE} {chain} handle \"$h\"; done"
        )
    return "\n".join(lines) + "\n"


def check_ttl(ttl_s: float) -> int:
    """Whole seconds (at least 1) of a valid TTL, or ``UnsafeArgument``."""
    if not 0 < ttl_s <= MAX_TTL_S:
        raise UnsafeArgument(f"a fault TTL must be between 0 and {MAX_TTL_S} s, not {ttl_s}")
    return max(1, math.ceil(ttl_s))


def has_systemd(host: CommandRunner) -> bool:
    """Whether systemd is PID 1 there (``/run/systemd/system`` exists)."""
    return host.run_argv(["test", "-d", "/run/systemd/system"], check=False).ok


def arm(host: CommandRunner, tag: str, ttl_s: float) -> str:
    """Make ``host`` heal fault ``tag`` by itself after ``ttl_s``; returns the mechanism."""
    seconds = check_ttl(ttl_s)
    name = timer_name(tag)
    script = heal_script(tag)
    if has_systemd(host):
        host.run_argv(["systemd-run", "--quiet", "--collect", f"--unit={name}",
                       f"--on-active={seconds}", "sh", "-c", script])
        return "systemd-run"
    delayed = f"sleep {seconds}\n{script}"
    # $0 is the script and $1 the marker: no second layer of quoting is needed.
    host.run_argv(["sh", "-c",
                   'nohup setsid sh -c "$0" "$1" >/dev/null 2>&1 </dev/null &',
                   delayed, name])
    return "sleep"


def pending(host: CommandRunner, tag: str) -> list[int]:
    """Pids of fallback sleepers armed for ``tag`` (exact marker argument)."""
    name = timer_name(tag)
    out = host.run_argv(["ps", "-e", "-o", "pid=,args="], check=False).stdout
    pids = []
    for line in out.splitlines():
        pid, _, args = line.strip().partition(" ")
        if pid.isdigit() and args.split()[-1:] == [name] and args.startswith("sh -c"):
            pids.append(int(pid))
    return pids


def disarm(host: CommandRunner, tag: str) -> None:
    """Cancel the heal timer of ``tag`` if one is pending (no-op otherwise)."""
    name = timer_name(tag)
    if has_systemd(host):
        host.run_argv(["systemctl", "stop", f"{name}.timer"], check=False)
        return
    pids = pending(host, tag)
    if pids:  # each sleeper leads its own process group (setsid): end the group
        host.run_argv(["kill", "-s", "TERM", "--", *(f"-{pid}" for pid in pids)], check=False)
