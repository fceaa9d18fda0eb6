"""The session's command window (RFC 7143 section 4.2.2.1), as a pure model.

Serial number arithmetic wraps at 2**32; MaxCmdSN must never move backwards
whatever mix of arrivals, immediate commands and completions happens; commands
outside [ExpCmdSN, MaxCmdSN] are ignored; a gap holds later commands back until
it fills, and then they run in CmdSN order.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.iscsi import codec
from harness.target.login import OperationalParameters
from harness.target.session import Session, SessionTable, sn_le, sn_lt

MASK = 0xFFFFFFFF


@given(st.integers(0, MASK), st.integers(1, 2**31 - 1))
def test_serial_arithmetic_across_the_wrap(a: int, d: int) -> None:
    b = (a + d) & MASK
    assert sn_lt(a, b) and not sn_lt(b, a)
    assert sn_le(a, a) and not sn_lt(a, a)


class Recorder(Session):
    """A Session whose commands only record the order they would run in."""

    def __init__(self, cmd_sn: int, depth: int) -> None:
        super().__init__(SessionTable(), initiator_name="iqn.2026-11.org.t:i",
                         initiator_alias="", isid=1, tsih=1, target=None, tpgt=1,
                         params=OperationalParameters(), cmd_sn=cmd_sn, queue_depth=depth)
        self.ran: list[int] = []

    def _execute(self, conn: Any, pdu: codec.Pdu) -> None:
        self.ran.append(pdu.cmd_sn)  # type: ignore[attr-defined]


def nop(cmd_sn: int, *, immediate: bool = False) -> codec.NopOut:
    return codec.NopOut(immediate=immediate, initiator_task_tag=1, cmd_sn=cmd_sn & MASK)


@settings(max_examples=200, deadline=None)
@given(start=st.integers(0, MASK), depth=st.integers(1, 64),
       events=st.lists(st.tuples(st.sampled_from(["cmd", "busy", "done", "imm"]),
                                 st.integers(0, 3)), max_size=80))
def test_max_cmd_sn_never_moves_backwards(start: int, depth: int,
                                          events: list[tuple[str, int]]) -> None:
    session = Recorder(start, depth)
    _, last_max = session.window()
    next_sn = start
    for kind, n in events:
        if kind == "cmd":
            for _ in range(n):
                session.dispatch(None, nop(next_sn))  # type: ignore[arg-type]
                next_sn = (next_sn + 1) & MASK
        elif kind == "busy":   # commands become tasks in flight
            for i in range(n):
                session.tasks[len(session.tasks) + 1000 + i] = object()  # type: ignore[assignment]
        elif kind == "done" and session.tasks:
            session.tasks.pop(next(iter(session.tasks)))
        elif kind == "imm":
            session.dispatch(None, nop(next_sn, immediate=True))  # type: ignore[arg-type]
        exp, max_ = session.window()
        assert sn_le(last_max, max_), "MaxCmdSN went backwards"
        assert sn_le((exp - 1) & MASK, max_)
        last_max = max_


def test_out_of_window_ignored_and_gaps_held_in_order() -> None:
    session = Recorder(cmd_sn=0xFFFFFFFE, depth=8)   # the window spans the wrap
    session.dispatch(None, nop(0xFFFFFFFE + 20))  # type: ignore[arg-type]   # beyond MaxCmdSN
    session.dispatch(None, nop(0xFFFFFFF0))  # type: ignore[arg-type]        # already past
    assert session.ran == []
    session.dispatch(None, nop(0x00000001))  # type: ignore[arg-type]   # a gap: held
    session.dispatch(None, nop(0x00000000))  # type: ignore[arg-type]   # still held
    assert session.ran == []
    session.dispatch(None, nop(0xFFFFFFFF))  # type: ignore[arg-type]   # beyond expected
    session.dispatch(None, nop(0xFFFFFFFE))  # type: ignore[arg-type]   # fills the gap
    assert session.ran == [0xFFFFFFFE, 0xFFFFFFFF, 0x00000000, 0x00000001]
    assert session.window()[0] == 2
    session.dispatch(None, nop(0xFFFFFFFE))  # type: ignore[arg-type]   # a replay: ignored
    assert session.ran[-1] == 1
