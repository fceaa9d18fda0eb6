"""An iSCSI session on the target: command window, tasks, task management, logout.

Model: a ``Session`` is one I_T nexus (initiator name + ISID, target name +
portal group) with its negotiated parameters. It numbers commands with the
command window of RFC 7143 section 4.2.2.1: non-immediate commands are accepted
only with ExpCmdSN <= CmdSN <= MaxCmdSN (others are silently ignored), run in
CmdSN order, and MaxCmdSN = ExpCmdSN - 1 + queue depth - tasks in flight, never
moving backwards. Each SCSI command becomes a ``CommandTask``; when its data-out
is complete it goes to the logical unit through the target's ``ExportedLun``.

The ``SessionTable`` holds every session of the node, indexed by TSIH and by
nexus, so that a Login with TSIH 0 from the same initiator name and ISID to the
same target *reinstates*: the old session's connections are closed and its tasks
aborted without responses (RFC 7143 section 6.3.5), as MPIO recovery expects.

Sessions run at ErrorRecoveryLevel 0: a lost connection ends its session.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from harness.iscsi import codec, keys
from harness.iscsi.codes import (
    LogoutReason,
    LogoutResponseCode,
    Opcode,
    RejectReason,
    TaskManagementFunction,
    TaskManagementResponseCode,
)
from harness.iscsi.errors import NegotiationError, ProtocolError
from harness.iscsi.pdu import NO_TAG
from harness.scsi.sense import SenseData, SenseKey
from harness.scsi.status import ScsiStatus
from harness.target import lu_binding
from harness.target.task import (
    CommandTask,
    DataOutError,
    DataSequenceError,
    next_target_transfer_tag,
)

if TYPE_CHECKING:
    from harness.target.connection import Connection
    from harness.target.login import OperationalParameters
    from harness.target.targets import ExportedTarget

SN_MASK = 0xFFFFFFFF
_SN_HALF = 1 << 31
# A write's data-out must fit this; the Block Limits VPD page promises the same maximum.
MAX_COMMAND_DATA = lu_binding.MAX_TRANSFER_BYTES


DATA_PHASE_ERROR = SenseData(SenseKey.ABORTED_COMMAND, 0x4B, 0x00).encode()


def sn_lt(a: int, b: int) -> bool:
    """Serial number arithmetic (RFC 1982, 32 bits): a < b."""
    return a != b and ((b - a) & SN_MASK) < _SN_HALF


def sn_le(a: int, b: int) -> bool:
    return a == b or sn_lt(a, b)


def header_of(pdu: codec.Pdu) -> bytes:
    """The BHS of a received PDU, re-encoded to quote in a Reject."""
    return codec.encode(pdu)[:48]


class Session:
    """One session (normal or discovery) and its full-feature-phase state."""

    def __init__(self, table: SessionTable, *, initiator_name: str, initiator_alias: str,
                 isid: int, tsih: int, target: ExportedTarget | None, tpgt: int,
                 params: OperationalParameters, cmd_sn: int, queue_depth: int,
                 write_budget: int = 128 * 1024 * 1024) -> None:
        self.table = table
        self.initiator_name, self.initiator_alias = initiator_name, initiator_alias
        self.isid, self.tsih, self.target, self.tpgt = isid, tsih, target, tpgt
        self.discovery = target is None
        self.params = params
        self.depth = queue_depth
        self.exp_cmd_sn = cmd_sn & SN_MASK
        self.max_cmd_sn = (cmd_sn + queue_depth - 1) & SN_MASK
        self.connections: list[Connection] = []
        self.tasks: dict[int, CommandTask] = {}
        self._pending: dict[int, tuple[Connection, codec.Pdu]] = {}
        self._text_in = keys.TextAssembler()
        self._text_out: dict[int, tuple[int, bytes]] = {}   # ITT -> (TTT, rest of answer)
        self.closed = False
        self._nexus: Any = None
        self.commands = 0
        self.pending_write_bytes = 0
        self.write_budget = write_budget

    @property
    def nexus(self) -> Any:
        """The I_T nexus the logical units know this session by (built on first use)."""
        if self._nexus is None and self.target is not None:
            self._nexus = self.target.nexus_for(self.initiator_name, self.isid, self.tpgt)
        return self._nexus

    # -- window -----------------------------------------------------------------------------

    def window(self) -> tuple[int, int]:
        """(ExpCmdSN, MaxCmdSN) to put in the next PDU; MaxCmdSN never moves backwards."""
        candidate = (self.exp_cmd_sn - 1 + max(0, self.depth - len(self.tasks))) & SN_MASK
        if sn_lt(self.max_cmd_sn, candidate):
            self.max_cmd_sn = candidate
        return self.exp_cmd_sn, self.max_cmd_sn

    def in_window(self, cmd_sn: int) -> bool:
        return sn_le(self.exp_cmd_sn, cmd_sn) and sn_le(cmd_sn, self.max_cmd_sn)

    # -- dispatch ---------------------------------------------------------------------------

    def dispatch(self, conn: Connection, pdu: codec.Pdu) -> None:
        """Handle one PDU of the full feature phase."""
        op = pdu.opcode
        if op == Opcode.DATA_OUT:
            self._data_out(conn, pdu)  # type: ignore[arg-type]
            return
        if op in _SEQUENCED:
            if pdu.immediate:
                self._execute(conn, pdu)
                return
            cmd_sn = pdu.cmd_sn  # type: ignore[attr-defined]
            if not self.in_window(cmd_sn):
                return  # RFC 7143 section 4.2.2.1: silently ignored
            if cmd_sn != self.exp_cmd_sn:
                self._pending[cmd_sn] = (conn, pdu)  # a gap: hold it until the gap fills
                return
            self.exp_cmd_sn = (cmd_sn + 1) & SN_MASK
            self._execute(conn, pdu)
            while self._pending and self.exp_cmd_sn in self._pending:
                held_conn, held = self._pending.pop(self.exp_cmd_sn)
                self.exp_cmd_sn = (self.exp_cmd_sn + 1) & SN_MASK
                self._execute(held_conn, held)
            return
        if op == Opcode.SNACK:
            conn.reject(RejectReason.PROTOCOL_ERROR, header_of(pdu))  # ErrorRecoveryLevel 0
            return
        # Login in full feature phase, or a PDU only a target sends.
        conn.reject(RejectReason.PROTOCOL_ERROR, header_of(pdu))

    def _execute(self, conn: Connection, pdu: codec.Pdu) -> None:
        op = pdu.opcode
        if op == Opcode.SCSI_COMMAND:
            self._scsi_command(conn, pdu)  # type: ignore[arg-type]
        elif op == Opcode.NOP_OUT:
            self._nop_out(conn, pdu)  # type: ignore[arg-type]
        elif op == Opcode.TASK_MANAGEMENT_REQUEST:
            self._task_management(conn, pdu)  # type: ignore[arg-type]
        elif op == Opcode.TEXT_REQUEST:
            self._text(conn, pdu)  # type: ignore[arg-type]
        elif op == Opcode.LOGOUT_REQUEST:
            self._logout(conn, pdu)  # type: ignore[arg-type]

    # -- SCSI commands ----------------------------------------------------------------------

    def _scsi_command(self, conn: Connection, cmd: codec.ScsiCommand) -> None:
        if self.discovery or self.target is None:
            conn.reject(RejectReason.PROTOCOL_ERROR, header_of(cmd))
            return
        itt = cmd.initiator_task_tag
        if itt in self.tasks or itt == NO_TAG:
            conn.reject(RejectReason.TASK_IN_PROGRESS if itt != NO_TAG
                        else RejectReason.INVALID_PDU_FIELD, header_of(cmd))
            return
        if cmd.immediate and len(self.tasks) >= self.depth:
            # Immediate commands bypass the window; they may not grow the task set forever.
            conn.reject(RejectReason.IMMEDIATE_COMMAND_REJECT, header_of(cmd))
            return
        self.commands += 1
        task = CommandTask(self, conn, cmd)
        self.tasks[itt] = task
        if task.write and task.edtl > MAX_COMMAND_DATA:
            self._finish(task, *self.target.refuse_oversized(cmd.cdb))
            return
        if task.write and self.pending_write_bytes + task.edtl > self.write_budget:
            # Writes still collecting data would exceed the session's memory budget: the
            # initiator retries later (SAM-5 TASK SET FULL), nothing is buffered.
            self._finish(task, ScsiStatus.TASK_SET_FULL, b"", b"")
            return
        task.begin()
        if task.complete:
            self._submit(task)
        elif task.write:
            self.pending_write_bytes += task.edtl
            task.budgeted = True

    def _data_out(self, conn: Connection, pdu: codec.DataOut) -> None:
        task = self.tasks.get(pdu.initiator_task_tag)
        if task is None or not task.write or task.running or task.conn is not conn:
            conn.reject(RejectReason.INVALID_PDU_FIELD, header_of(pdu))
            return
        try:
            task.data_out(pdu)
        except DataOutError as exc:
            conn.reject(exc.reason, header_of(pdu))
            return
        except DataSequenceError:
            # ErrorRecoveryLevel 0 cannot ask for the data again: the command fails.
            task.r2ts.clear()
            self._release_budget(task)
            self._finish(task, ScsiStatus.CHECK_CONDITION, b"", DATA_PHASE_ERROR)
            return
        if task.complete:
            self._submit(task)

    def _submit(self, task: CommandTask) -> None:
        assert self.target is not None
        self._release_budget(task)
        task.running = True
        self.target.submit(self, task, self._finish)

    def _finish(self, task: CommandTask, status: int, data_in: Any, sense: bytes) -> None:
        """The logical unit's answer: forget the task, then answer unless aborted."""
        if self.tasks.get(task.itt) is task:
            del self.tasks[task.itt]
        if task.aborted or task.conn.closing:
            return
        task.respond(status, data_in, sense)

    def _release_budget(self, task: CommandTask) -> None:
        if task.budgeted:
            task.budgeted = False
            self.pending_write_bytes -= task.edtl

    def has_tasks_on(self, lun: int) -> bool:
        return any(t.lun == lun for t in self.tasks.values())

    def abort_tasks(self, predicate: Any = None) -> list[CommandTask]:
        """Abort (no response will be sent) every task matching ``predicate``."""
        victims = [t for t in self.tasks.values() if predicate is None or predicate(t)]
        for t in victims:
            t.aborted = True
            t.r2ts.clear()
            self._release_budget(t)
            if not t.running:
                del self.tasks[t.itt]
        return victims

    # -- NOP, text, logout ------------------------------------------------------------------

    def _nop_out(self, conn: Connection, pdu: codec.NopOut) -> None:
        if pdu.initiator_task_tag == NO_TAG:
            return  # an answer to our ping, or a one-way heartbeat: no reply
        exp, max_ = self.window()
        conn.send(codec.NopIn(lun=pdu.lun, initiator_task_tag=pdu.initiator_task_tag,
                              target_transfer_tag=NO_TAG, stat_sn=conn.take_stat_sn(),
                              exp_cmd_sn=exp, max_cmd_sn=max_,
                              data=pdu.data[: conn.max_send_dsl]))

    def _text(self, conn: Connection, pdu: codec.TextRequest) -> None:
        """Text Request: keys may span PDUs (C bit) and so may the answer (RFC 7143
        section 11.10): each part of a long answer goes out when the initiator asks for
        it with an empty Text Request carrying the Target Transfer Tag of the last part."""
        itt = pdu.initiator_task_tag
        pending = self._text_out.get(itt)
        if pending is not None and pdu.target_transfer_tag == pending[0]:
            rest = pending[1]
        else:
            self._text_out.pop(itt, None)
            try:
                pairs = self._text_in.feed(pdu.data, continue_=pdu.continue_)
            except ProtocolError:
                conn.reject(RejectReason.PROTOCOL_ERROR, header_of(pdu))
                return
            if pairs is None:   # more of the request follows: acknowledge this part
                self._send_text(conn, pdu, b"", final=False, ttt=next_target_transfer_tag())
                return
            rest = text_response_pairs(self, conn, keys.encode_keys(pairs))
        if len(rest) <= conn.max_send_dsl:
            self._text_out.pop(itt, None)
            self._send_text(conn, pdu, rest, final=True, ttt=NO_TAG)
            return
        ttt = next_target_transfer_tag()
        self._text_out[itt] = (ttt, rest[conn.max_send_dsl:])
        if len(self._text_out) > 16:   # abandoned exchanges: keep the newest only
            self._text_out.pop(next(iter(self._text_out)))
        self._send_text(conn, pdu, rest[: conn.max_send_dsl], final=False, ttt=ttt,
                        continue_=True)

    def _send_text(self, conn: Connection, pdu: codec.TextRequest, data: bytes, *,
                   final: bool, ttt: int, continue_: bool = False) -> None:
        exp, max_ = self.window()
        conn.send(codec.TextResponse(final=final, continue_=continue_, lun=pdu.lun,
                                     initiator_task_tag=pdu.initiator_task_tag,
                                     target_transfer_tag=ttt, stat_sn=conn.take_stat_sn(),
                                     exp_cmd_sn=exp, max_cmd_sn=max_, data=data))

    def _logout(self, conn: Connection, pdu: codec.LogoutRequest) -> None:
        reason = pdu.reason_code & 0x7F
        response = LogoutResponseCode.SUCCESS
        if reason == LogoutReason.REMOVE_CONNECTION_FOR_RECOVERY:
            response = LogoutResponseCode.RECOVERY_NOT_SUPPORTED
        elif reason == LogoutReason.CLOSE_CONNECTION and pdu.cid != conn.cid:
            response = LogoutResponseCode.CID_NOT_FOUND
        exp, max_ = self.window()
        conn.send(codec.LogoutResponse(response=response,
                                       initiator_task_tag=pdu.initiator_task_tag,
                                       stat_sn=conn.take_stat_sn(), exp_cmd_sn=exp,
                                       max_cmd_sn=max_, time2wait=0, time2retain=0))
        if response == LogoutResponseCode.SUCCESS:
            victims = self.connections if reason == LogoutReason.CLOSE_SESSION else [conn]
            for c in list(victims):
                c.finish("logout")

    # -- task management --------------------------------------------------------------------

    def _task_management(self, conn: Connection, req: codec.TaskManagementRequest) -> None:
        asyncio.get_running_loop().create_task(self._task_management_async(conn, req))

    async def _task_management_async(self, conn: Connection,
                                      req: codec.TaskManagementRequest) -> None:
        fn = req.function & 0x7F
        lun = codec.lun_from_wire(req.lun)
        code = TaskManagementResponseCode.FUNCTION_COMPLETE
        target = self.target
        if self.discovery or target is None:
            code = TaskManagementResponseCode.FUNCTION_REJECTED
        elif fn == TaskManagementFunction.ABORT_TASK:
            task = self.tasks.get(req.referenced_task_tag)
            if task is not None and task.lun == lun:
                self.abort_tasks(lambda t: t is task)
                await target.quiesce({lun})
            elif not (self.in_window(req.ref_cmd_sn) and sn_lt(req.ref_cmd_sn, req.cmd_sn)):
                code = TaskManagementResponseCode.TASK_DOES_NOT_EXIST
        elif fn in (TaskManagementFunction.ABORT_TASK_SET, TaskManagementFunction.CLEAR_TASK_SET,
                    TaskManagementFunction.LOGICAL_UNIT_RESET):
            if lun not in target.luns:
                code = TaskManagementResponseCode.LUN_DOES_NOT_EXIST
            else:
                everyone = fn != TaskManagementFunction.ABORT_TASK_SET
                sessions = self.table.of_target(target.config.iqn) if everyone else [self]
                for s in sessions:
                    s.abort_tasks(lambda t: t.lun == lun)
                await target.quiesce({lun})
                if fn == TaskManagementFunction.LOGICAL_UNIT_RESET:
                    await target.reset_lun(lun, self.nexus)
                elif fn == TaskManagementFunction.CLEAR_TASK_SET:
                    target.tasks_cleared(lun, self.nexus)
        elif fn in (TaskManagementFunction.TARGET_WARM_RESET,
                    TaskManagementFunction.TARGET_COLD_RESET):
            for s in self.table.of_target(target.config.iqn):
                s.abort_tasks()
            await target.quiesce(set(target.luns))
            for n in list(target.luns):
                await target.reset_lun(n, self.nexus, target_reset=True)
        elif fn == TaskManagementFunction.TASK_REASSIGN:
            code = TaskManagementResponseCode.TASK_REASSIGNMENT_NOT_SUPPORTED
        elif fn == TaskManagementFunction.CLEAR_ACA:
            code = TaskManagementResponseCode.FUNCTION_NOT_SUPPORTED
        else:
            code = TaskManagementResponseCode.FUNCTION_REJECTED
        if conn.closing:
            return
        exp, max_ = self.window()
        conn.send(codec.TaskManagementResponse(response=code,
                                               initiator_task_tag=req.initiator_task_tag,
                                               stat_sn=conn.take_stat_sn(), exp_cmd_sn=exp,
                                               max_cmd_sn=max_))
        if fn == TaskManagementFunction.TARGET_COLD_RESET and target is not None and \
                code == TaskManagementResponseCode.FUNCTION_COMPLETE:
            for s in self.table.of_target(target.config.iqn):
                for c in list(s.connections):
                    c.finish("target cold reset")

    # -- connections and lifetime -----------------------------------------------------------

    def data_digest_error(self, conn: Connection, bhs: bytes | None) -> None:
        """A PDU whose data failed its digest was discarded (and rejected).

        At ErrorRecoveryLevel 0 the initiator recovers by aborting the affected task
        or reinstating the session; nothing here needs to change.
        """

    def attach(self, conn: Connection) -> None:
        self.connections.append(conn)

    def connection_lost(self, conn: Connection) -> None:
        if conn in self.connections:
            self.connections.remove(conn)
        if not self.connections:
            self.end()

    def end(self) -> None:
        """The session is over: abort its tasks and forget it."""
        if self.closed:
            return
        self.closed = True
        self.abort_tasks()
        self._pending.clear()
        self.table.remove(self)
        if self._nexus is not None and self.target is not None:
            self.target.nexus_lost(self._nexus)

    async def close(self, reason: str) -> None:
        for c in list(self.connections):
            c.abort(reason)
        self.end()

    def report_luns_changed(self) -> None:
        """Tell the initiator its LUN inventory changed (unit attention via the LUs)."""
        if self.target is not None:
            self.target.luns_changed(self.nexus)

    def describe(self) -> dict[str, Any]:
        return {
            "initiator": self.initiator_name,
            "initiator_alias": self.initiator_alias,
            "isid": f"0x{self.isid:012x}",
            "tsih": self.tsih,
            "target": self.target.config.iqn if self.target else None,
            "type": "discovery" if self.discovery else "normal",
            "tpgt": self.tpgt,
            "connections": [c.describe() for c in self.connections],
            "tasks_in_flight": len(self.tasks),
            "commands": self.commands,
            "exp_cmd_sn": self.exp_cmd_sn,
            "max_cmd_sn": self.max_cmd_sn,
        }


_SEQUENCED = frozenset({Opcode.SCSI_COMMAND, Opcode.NOP_OUT, Opcode.TASK_MANAGEMENT_REQUEST,
                        Opcode.TEXT_REQUEST, Opcode.LOGOUT_REQUEST})


class SessionTable:
    """Every session of the node, by TSIH and by I_T nexus."""

    def __init__(self) -> None:
        self._by_tsih: dict[int, Session] = {}
        self._next_tsih = 1

    def __iter__(self) -> Iterator[Session]:
        return iter(list(self._by_tsih.values()))

    def __len__(self) -> int:
        return len(self._by_tsih)

    def allocate_tsih(self) -> int:
        for _ in range(0xFFFF):
            tsih = self._next_tsih
            self._next_tsih = tsih % 0xFFFF + 1   # 1..65535; 0 is reserved
            if tsih not in self._by_tsih:
                return tsih
        raise RuntimeError("no free TSIH")  # 65535 live sessions: the connection cap prevents it

    def find(self, initiator_name: str, isid: int, target_iqn: str | None) -> Session | None:
        key = (initiator_name.lower(), isid, (target_iqn or "").lower())
        for s in self._by_tsih.values():
            skey = (s.initiator_name.lower(), s.isid,
                    (s.target.config.iqn if s.target else "").lower())
            if skey == key:
                return s
        return None

    def by_tsih(self, tsih: int) -> Session | None:
        return self._by_tsih.get(tsih)

    def add(self, session: Session) -> None:
        self._by_tsih[session.tsih] = session

    def remove(self, session: Session) -> None:
        if self._by_tsih.get(session.tsih) is session:
            del self._by_tsih[session.tsih]

    def of_target(self, iqn: str) -> list[Session]:
        return [s for s in self._by_tsih.values()
                if s.target is not None and s.target.config.iqn.lower() == iqn.lower()]

    async def reinstate(self, old: Session) -> None:
        """Close ``old`` (same nexus logging in again): its tasks end without responses."""
        await old.close("session reinstated by a new login")
        for c in list(old.connections):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(c.closed(), 5)


def text_response_pairs(session: Session, conn: Connection, data: bytes) -> bytes:
    """The data of a Text Response: SendTargets answers, other keys negotiated."""
    node = conn.node
    answer: list[tuple[str, str]] = []
    try:
        pairs = keys.decode_keys(data)
    except (ProtocolError, NegotiationError):
        return b""
    for key, value in pairs:
        if key == "SendTargets":
            if session.discovery:
                wanted = [t for t in node.targets
                          if value == "All" or t.config.iqn.lower() == value.lower()]
            else:
                wanted = [session.target] if session.target is not None else []
            for target in wanted:
                if target is None or not target.config.admits(session.initiator_name):
                    continue
                answer.append(("TargetName", target.config.iqn))
                for portal in node.portals:
                    answer.append(("TargetAddress", portal.target_address))
        elif key in keys.KEYS and keys.KEYS[key].leading_only:
            answer.append((key, keys.REJECT))  # cannot change after login
        else:
            reply = keys.negotiate(key, value, None, context={
                "SessionType": "Discovery" if session.discovery else "Normal"})
            if reply is not None:
                answer.append((key, reply))
    return keys.encode_keys(answer)
