"""Node-side heal timers: a fault on a real Linux host that heals itself after a TTL.

The runner's ``finally`` does nothing when the runner dies (SIGKILL, OOM, a lost
CI machine). So when a black hole is armed with a TTL, the host itself is asked
to remove that fault's rules after ``ttl_s`` seconds. This is the dead man's
switch of Gremlin, or Pumba's ``--duration``: a dead control node cannot leave
the SAN partitioned for longer than the TTL.

The same mechanism serves every Linux fault: a link set down is set up again, a
frozen (SIGSTOP) process is continued, a stopped unit is started.

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
import shlex

from harness.remote.errors import UnsafeArgument
from harness.remote.nftables import CHAINS, FAMILY, TABLE, TAG_PREFIX, check_interface, check_tag
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


def link_up_script(interface: str) -> str:
    """Heal of a link-down fault: bring ``interface`` up again."""
    return f"ip link set dev {shlex.quote(check_interface(interface))} up\n"


def continue_script(pids: list[int]) -> str:
    """Heal of a SIGSTOP freeze: SIGCONT to the frozen pids (gone ones are ignored)."""
    return f"kill -s CONT -- {' '.join(str(int(p)) for p in pids)} 2>/dev/null\n"


def unit_start_script(unit: str) -> str:
    """Heal of a stopped systemd unit: start it again."""
    return f"systemctl start -- {shlex.quote(unit)}\n"


def check_ttl(ttl_s: float) -> int:
    """Whole seconds (at least 1) of a valid TTL, or ``UnsafeArgument``."""
    if not 0 < ttl_s <= MAX_TTL_S:
        raise UnsafeArgument(f"a fault TTL must be between 0 and {MAX_TTL_S} s, not {ttl_s}")
    return max(1, math.ceil(ttl_s))


# Positional parameters: $1 timer name, $2 seconds, $3 heal script. Fixed text: no
# value is ever interpolated into it. The fallback returns once the sleeper shows its
# marker (nohup and setsid exec in place, so $! becomes it): a disarm that comes right
# after must find it, or a stale timer would heal a later fault of the same id.
_ARM = """\
if [ -d /run/systemd/system ]; then
    exec systemd-run --quiet --collect --unit="$1" --on-active="$2" sh -c "$3"
fi
nohup setsid sh -c 'sleep "$0"; eval "$1"' "$2" "$3" "$1" >/dev/null 2>&1 </dev/null &
pid=$! i=0
while [ "$i" -lt 250 ]; do
    case "$(ps -o args= -p "$pid" 2>/dev/null)" in *" $1") break ;; esac
    sleep 0.02; i=$((i + 1))
done
echo sleep
"""

# $1 timer name. Stops the systemd timer, or ends the sleeper's process group (a
# sleeper is 'sh -c sleep ... <name>'; this script's own 'sh -c if ...' never matches).
_DISARM = """\
if [ -d /run/systemd/system ]; then
    systemctl stop "$1.timer" 2>/dev/null
fi
for pid in $(ps -e -o pid=,args= |
        awk -v m="$1" '$2 == "sh" && $4 == "sleep" && $NF == m { print $1 }'); do
    kill -s TERM -- "-$pid" 2>/dev/null
done
exit 0
"""


def arm(host: CommandRunner, tag: str, ttl_s: float, script: str | None = None) -> str:
    """Make ``host`` heal fault ``tag`` by itself after ``ttl_s`` (one round trip).

    ``script`` is the heal (default: delete the nft rules tagged ``tag``); build it
    with the ``*_script`` functions here, which quote every value. Returns the
    mechanism used: ``systemd-run`` or ``sleep``.
    """
    seconds = check_ttl(ttl_s)
    heal = heal_script(tag) if script is None else script
    result = host.run_argv(["sh", "-c", _ARM, "splitbrain-arm", timer_name(tag), str(seconds),
                            heal])
    return "sleep" if result.stdout.strip() == "sleep" else "systemd-run"


def pending(host: CommandRunner, tag: str) -> list[int]:
    """Pids of fallback sleepers armed for ``tag`` (exact marker argument)."""
    name = timer_name(tag)
    out = host.run_argv(["ps", "-e", "-o", "pid=,args="], check=False).stdout
    pids = []
    for line in out.splitlines():
        fields = line.split()
        if (len(fields) >= 5 and fields[0].isdigit() and fields[1:4] == ["sh", "-c", "sleep"]
                and fields[-1] == name):
            pids.append(int(fields[0]))
    return pids


def disarm(host: CommandRunner, tag: str) -> None:
    """Cancel the heal timer of ``tag`` if one is pending (one round trip; no-op otherwise)."""
    host.run_argv(["sh", "-c", _DISARM, "splitbrain-disarm", timer_name(tag)])
