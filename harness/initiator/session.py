"""Session: one iSCSI session (one connection, ErrorRecoveryLevel 0) seen from the initiator.

The model (RFC 7143): after login (:mod:`harness.initiator.login`) the session
is in the full feature phase. Non-immediate requests (SCSI commands, text) take
the next CmdSN and may only be sent while CmdSN <= MaxCmdSN; when the window is
closed callers wait, in order, until a target PDU opens it. Immediate requests
(NOP-Out pings, task management, logout) carry the current CmdSN without taking
it. Every response carrying StatSN advances ExpStatSN. Many commands are in
flight at once, each a :class:`~harness.initiator.task.ScsiTask` keyed by its
Initiator Task Tag; their PDUs are handled synchronously as the connection
decodes them, so there is no reader task on the hot path.

Failure model: each operation has its own deadline (``SessionTimeouts``) and
raises :class:`~harness.initiator.errors.Timeout` when it passes; a command
that timed out is then aborted with ABORT TASK, and if that gets no answer the
session fails. Anything malformed or unexpected from the target (garbage, a
truncated PDU, a wrong digest, an unexpected opcode, an unknown task tag) or a
closed connection fails the session at once: every waiter gets the typed error,
the connection is closed, and later calls raise ``SessionFailed``. Nothing
hangs and nothing escapes as a bare exception.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from harness.initiator.commands import ScsiCommandSet
from harness.initiator.connection import Connection, LocalAddress, SocketFactory
from harness.initiator.errors import (
    CommandRejected,
    ConnectionClosed,
    ConnectionLost,
    InitiatorError,
    ProtocolError,
    SessionFailed,
    TaskFailedAtTarget,
    Timeout,
    UnexpectedPdu,
)
from harness.initiator.login import ChapSecrets, LoginResult, LoginSpec, run_login
from harness.initiator.recorder import PcapRecorder
from harness.initiator.requests import SessionRequests, SessionTimeouts
from harness.initiator.task import (
    CommandHandle,
    ScsiResult,
    ScsiTask,
    decode_sense_segment,
)
from harness.iscsi import codec
from harness.iscsi.codes import AsyncEvent, LogoutReason, TaskManagementFunction
from harness.iscsi.codes import TaskManagementResponseCode as TmfResponse
from harness.iscsi.initiator_pdus import (
    DataOut,
    LoginRequest,
    LogoutRequest,
    NopOut,
    ScsiCommand,
)
from harness.iscsi.keys import SessionParameters
from harness.iscsi.names import random_isid
from harness.iscsi.pdu import NO_TAG, Pdu
from harness.iscsi.target_pdus import (
    R2T,
    AsyncMessage,
    DataIn,
    LoginResponse,
    LogoutResponse,
    NopIn,
    Reject,
    ScsiResponse,
    TaskManagementResponse,
    TextResponse,
)
from harness.scsi.opcodes import Opcode as ScsiOpcode
from harness.scsi.sense import SenseData

DEFAULT_INITIATOR = "iqn.2026-11.org.splitbrain:initiator"
_MASK = 0xFFFFFFFF
_HALF = 0x80000000


def serial_lt(a: int, b: int) -> bool:
    """RFC 1982 serial-number ``a < b`` for 32-bit sequence numbers."""
    return a != b and ((b - a) & _MASK) < 0x80000000


@dataclass(frozen=True)
class AsyncEventRecord:
    """An Asynchronous Message the target sent."""

    event: int
    vcode: int
    lun: int
    sense: SenseData | None
    parameters: tuple[int, int, int]
    timestamp_ns: int = field(default_factory=time.monotonic_ns)


_OPERATIONS: dict[int, str] = {op.value: op.name.replace("_", " ") for op in ScsiOpcode}
SWEEP_INTERVAL = 0.05
"""Seconds between checks of command deadlines (one timer per session, not per command)."""


@functools.lru_cache(maxsize=256)
def _wire_lun(lun: int) -> int:
    return codec.lun_to_wire(lun)


def _operation(cdb: bytes) -> str:
    name = _OPERATIONS.get(cdb[0])
    return name if name is not None else f"SCSI opcode 0x{cdb[0]:02x}"


class Session(SessionRequests, ScsiCommandSet):
    """An iSCSI session to one target (or a discovery session when ``target`` is None)."""

    def __init__(self, host: str, port: int = 3260, target: str | None = None, *,
                 initiator_name: str = DEFAULT_INITIATOR, lun: int = 0,
                 chap: ChapSecrets | None = None, isid: int | None = None,
                 timeouts: SessionTimeouts | None = None,
                 preferences: dict[str, str] | None = None,
                 recorder: PcapRecorder | None = None,
                 on_async: Callable[[AsyncEventRecord], None] | None = None,
                 sock_factory: SocketFactory | None = None,
                 local_addr: LocalAddress | None = None) -> None:
        """``sock_factory`` and ``local_addr`` say where the TCP connection comes from
        (default: the harness's own network stack, any source address); see
        :meth:`harness.initiator.connection.Connection.open`."""
        super().__init__()
        self.host, self.port, self.target = host, port, target
        self.initiator_name = initiator_name
        self.lun = lun
        self.chap = chap
        self.isid = random_isid() if isid is None else isid
        self.timeouts = timeouts or SessionTimeouts()
        self.preferences = dict(preferences or {})
        self.recorder = recorder
        self.on_async = on_async
        self.sock_factory = sock_factory
        self.local_addr = local_addr
        self.where = f"{target or 'discovery'} at {host}:{port}"
        self.params = SessionParameters()
        self.login_result: LoginResult | None = None
        self.tsih = 0
        self.cmd_sn = self.exp_cmd_sn = self.max_cmd_sn = self.exp_stat_sn = 0
        self.failure: BaseException | None = None
        self.logged_out = False
        self.async_events: list[AsyncEventRecord] = []
        self.target_nops_answered = 0
        self._conn: Connection | None = None
        self._tasks: dict[int, ScsiTask] = {}
        self._exchanges: dict[int, asyncio.Future[Pdu]] = {}
        self._window_waiters: list[asyncio.Future[None]] = []
        self._next_itt = secrets.randbelow(1 << 20)
        self._login_future: asyncio.Future[LoginResponse] | None = None
        self._failed: asyncio.Event | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._handlers: dict[type, Callable[[Pdu], None]] = {
            DataIn: self._on_data_in, ScsiResponse: self._on_scsi_response,  # type: ignore
            R2T: self._on_r2t, NopIn: self._on_nop_in,  # type: ignore[dict-item]
            TaskManagementResponse: self._on_exchange_response,
            TextResponse: self._on_exchange_response,
            LogoutResponse: self._on_exchange_response,
            AsyncMessage: self._on_async, Reject: self._on_reject,  # type: ignore[dict-item]
        }

    # -- state -----------------------------------------------------------------------------

    @property
    def initiator_port(self) -> str:
        """The SCSI initiator port name of this I_T nexus: ``<name>,i,0x<isid>``."""
        return f"{self.initiator_name},i,0x{self.isid:012x}"

    @property
    def failed(self) -> bool:
        return self.failure is not None and not self.logged_out

    @property
    def logged_in(self) -> bool:
        return self.login_result is not None and self.failure is None

    @property
    def outstanding(self) -> int:
        return len(self._tasks)

    def _usable(self) -> Connection:
        if self.failure is not None or self._conn is None:
            reason = "it was never logged in" if self._conn is None else (
                "it logged out" if self.logged_out else f"it failed: {self.failure}")
            raise SessionFailed(f"session to {self.where} is not usable ({reason}); log in again")
        return self._conn

    def _itt(self) -> int:
        itt = self._next_itt
        self._next_itt = (itt + 1) & _MASK
        if self._next_itt == NO_TAG:
            self._next_itt = 0
        return itt

    # -- login / logout --------------------------------------------------------------------

    async def login(self) -> LoginResult:
        """Connect and log in; raises Timeout, ConnectionLost, LoginRejected, LoginFailed."""
        if self._failed is not None:
            raise SessionFailed(f"session to {self.where} was already used; a Session logs in "
                                "once, create a new one")
        loop = asyncio.get_running_loop()
        self._failed = asyncio.Event()
        try:
            self._conn = await Connection.open(
                self.host, self.port, timeout=self.timeouts.connect, on_pdu=self._on_pdu,
                on_lost=self._on_lost, recorder=self.recorder,
                sock_factory=self.sock_factory, local_addr=self.local_addr)
        except BaseException as exc:
            self._fail(exc)
            raise
        spec = LoginSpec(initiator_name=self.initiator_name, target_name=self.target,
                         isid=self.isid, cmd_sn=secrets.randbits(31) | 1,
                         initiator_task_tag=self._itt(), chap=self.chap,
                         preferences=self.preferences)

        async def exchange(request: LoginRequest) -> LoginResponse:
            self._login_future = loop.create_future()
            self._usable().send(request)
            return await self._login_future

        try:
            async with asyncio.timeout(self.timeouts.login):
                result = await run_login(spec, exchange, where=f"{self.host}:{self.port}")
        except TimeoutError:
            self._fail(Timeout("login", self.timeouts.login, self.where))
            raise self.failure from None  # type: ignore[misc]
        except BaseException as exc:
            self._fail(exc)
            raise
        finally:
            self._login_future = None
        self.login_result = result
        self.params = result.parameters
        self.tsih = result.tsih
        self.exp_stat_sn = result.exp_stat_sn
        self.cmd_sn = self.exp_cmd_sn = result.exp_cmd_sn
        self.max_cmd_sn = result.max_cmd_sn
        conn = self._conn
        conn.header_digest = self.params.header_digest
        conn.data_digest = self.params.data_digest
        conn.max_recv_data_segment_length = self.params.max_recv_data_segment_length
        conn.release()
        return result

    async def logout(self) -> None:
        """Log out (close the session) and close the connection; never raises on a
        session that already failed. Outstanding commands fail with SessionFailed."""
        if self._conn is None or self.failure is not None:
            self.close()
            return
        itt = self._itt()
        request = LogoutRequest(immediate=True, reason_code=LogoutReason.CLOSE_SESSION,
                                initiator_task_tag=itt, cmd_sn=self.cmd_sn,
                                exp_stat_sn=self.exp_stat_sn)
        try:
            await self._exchange(request, itt, self.timeouts.logout, "logout")
        except (ConnectionLost, ConnectionClosed):
            pass  # the target closed the connection on our logout: logged out all the same
        finally:
            self.logged_out = True
            self._fail(SessionFailed(f"session to {self.where} logged out"))

    def close(self) -> None:
        """Drop the connection without logging out."""
        if self.failure is None:
            self.logged_out = True
            self._fail(SessionFailed(f"session to {self.where} was closed"))
        elif self._conn is not None:
            self._conn.close()

    async def wait_failed(self) -> BaseException:
        """Return the exception that ended the session, once it has ended."""
        if self._failed is None:
            raise SessionFailed(f"session to {self.where} was never logged in")
        await self._failed.wait()
        assert self.failure is not None
        return self.failure

    async def __aenter__(self) -> Session:
        await self.login()
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.logout()
        except (InitiatorError, ProtocolError):
            self.close()

    # -- commands --------------------------------------------------------------------------

    def _window_open(self) -> bool:
        return ((self.max_cmd_sn - self.cmd_sn) & _MASK) < _HALF  # CmdSN <= MaxCmdSN

    async def _wait_window(self, deadline: float, operation: str, seconds: float) -> None:
        """Wait, behind earlier waiters, until CmdSN <= MaxCmdSN."""
        loop = asyncio.get_running_loop()
        while self._window_waiters or not self._window_open():
            waiter: asyncio.Future[None] = loop.create_future()
            self._window_waiters.append(waiter)
            try:
                async with asyncio.timeout_at(deadline):
                    await waiter
            except TimeoutError:
                raise Timeout(f"{operation} (waiting for the command window, MaxCmdSN "
                              f"{self.max_cmd_sn})", seconds, self.where) from None
            finally:
                if waiter in self._window_waiters:
                    self._window_waiters.remove(waiter)
            if self._window_open():
                break

    async def submit(self, cdb: bytes, lun: int | None = None, data_out: bytes | None = None,
                     expected_in: int = 0, *, timeout: float | None = None) -> CommandHandle:
        """Send one SCSI command; returns once it is on the wire (after waiting for the
        command window if it is closed). Await ``result()`` on the handle."""
        seconds = self.timeouts.command if timeout is None else timeout
        deadline = asyncio.get_running_loop().time() + seconds
        if self._window_waiters or not self._window_open():
            await self._wait_window(deadline, _operation(cdb), seconds)
        return CommandHandle(self._start(cdb, lun, data_out, expected_in, deadline, seconds))

    def execute(self, cdb: bytes, lun: int | None = None, data_out: bytes | None = None,
                expected_in: int = 0, *, timeout: float | None = None
                ) -> Awaitable[ScsiResult]:
        """Run one SCSI command; await it for its ScsiResult whatever the SCSI status.

        With the command window open the command is on the wire when this returns and
        the awaitable is the task's future itself (no coroutine on the hot path)."""
        seconds = self.timeouts.command if timeout is None else timeout
        deadline = asyncio.get_running_loop().time() + seconds
        if self._window_waiters or not self._window_open():
            return self._execute_later(cdb, lun, data_out, expected_in, deadline, seconds)
        try:
            return self._start(cdb, lun, data_out, expected_in, deadline, seconds).future
        except BaseException as exc:  # raise at the await, as a coroutine would
            failed: asyncio.Future[ScsiResult] = asyncio.get_running_loop().create_future()
            failed.set_exception(exc)
            return failed

    async def _execute_later(self, cdb: bytes, lun: int | None, data_out: bytes | None,
                             expected_in: int, deadline: float, seconds: float) -> ScsiResult:
        await self._wait_window(deadline, _operation(cdb), seconds)
        return await self._start(cdb, lun, data_out, expected_in, deadline, seconds).future

    def _start(self, cdb: bytes, lun: int | None, data_out: bytes | None, expected_in: int,
               deadline: float, seconds: float) -> ScsiTask:
        """Take a CmdSN and put the command (and its unsolicited data) on the wire."""
        if data_out and expected_in:
            raise InitiatorError("bidirectional commands are not supported; send data out or "
                                 "expect data in, not both")
        conn = self._conn
        if conn is None or self.failure is not None:
            conn = self._usable()  # raises SessionFailed
        loop = asyncio.get_running_loop()
        cmd_sn = self.cmd_sn
        self.cmd_sn = (cmd_sn + 1) & _MASK
        lun = self.lun if lun is None else lun
        itt = self._itt()
        data = data_out or b""
        task = ScsiTask(itt, cmd_sn, lun, cdb, data, expected_in, loop.create_future(),
                        time.monotonic_ns(), _operation(cdb), deadline, seconds)
        params = self.params
        immediate_len = unsolicited_end = 0
        if data:
            if params.immediate_data:
                immediate_len = min(len(data), params.first_burst_length,
                                     params.peer_max_recv_data_segment_length)
            unsolicited_end = immediate_len if params.initial_r2t else min(
                len(data), params.first_burst_length)
        self._tasks[itt] = task
        conn.send(ScsiCommand(
            final=unsolicited_end <= immediate_len, read=expected_in > 0, write=bool(data),
            lun=_wire_lun(lun), initiator_task_tag=itt,
            expected_data_transfer_length=len(data) if data else expected_in, cmd_sn=cmd_sn,
            exp_stat_sn=self.exp_stat_sn, cdb=cdb,
            data=data[:immediate_len] if immediate_len < len(data) else data))
        if unsolicited_end > immediate_len:
            self._send_data_out(task, NO_TAG, immediate_len, unsolicited_end - immediate_len)
        if self._sweeper is None:
            self._sweeper = loop.call_later(SWEEP_INTERVAL, self._sweep)
        return task

    def _sweep(self) -> None:
        """Time out every command past its deadline; runs while commands are in flight."""
        self._sweeper = None
        if self.failure is not None:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        for task in list(self._tasks.values()):
            if task.deadline <= now and not task.future.done():
                self._task_timed_out(task)
        if self._tasks:
            self._sweeper = loop.call_later(SWEEP_INTERVAL, self._sweep)

    def _send_data_out(self, task: ScsiTask, ttt: int, offset: int, length: int) -> None:
        conn = self._usable()
        segment = self.params.peer_max_recv_data_segment_length
        view = memoryview(task.data_out)
        end, data_sn, lun = offset + length, 0, codec.lun_to_wire(task.lun)
        while offset < end:
            n = min(segment, end - offset)
            conn.send(DataOut(final=offset + n >= end, lun=lun, initiator_task_tag=task.itt,
                              target_transfer_tag=ttt, exp_stat_sn=self.exp_stat_sn,
                              data_sn=data_sn, buffer_offset=offset,
                              data=view[offset : offset + n]))  # type: ignore[arg-type]
            offset += n
            data_sn += 1

    def _task_timed_out(self, task: ScsiTask) -> None:
        task.future.set_exception(Timeout(task.operation, task.seconds, self.where))
        if self.failure is None:
            self._spawn(self._abort_timed_out(task))

    async def _abort_timed_out(self, task: ScsiTask) -> None:
        """ABORT TASK for a command that timed out; the session fails if that gets no
        answer. Until the target confirms the task is gone, a late response to it is
        still accepted (and dropped) rather than taken for an unknown task."""
        try:
            code = await self.task_management(TaskManagementFunction.ABORT_TASK,
                                              lun=task.lun, referenced=task)
        except InitiatorError as exc:
            self._fail(Timeout(f"ABORT TASK of a timed-out {task.operation} ({exc})",
                               self.timeouts.task_management, self.where))
            return
        except ProtocolError:
            return  # the session already failed with it
        if code in (TmfResponse.FUNCTION_COMPLETE, TmfResponse.TASK_DOES_NOT_EXIST):
            self._tasks.pop(task.itt, None)

    def _spawn(self, coro: object) -> None:
        bg = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._background.add(bg)
        bg.add_done_callback(self._background.discard)

    # -- receiving -------------------------------------------------------------------------

    def _on_pdu(self, pdu: Pdu) -> None:
        if self._login_future is not None:
            if isinstance(pdu, LoginResponse) and not self._login_future.done():
                if pdu.transit and pdu.nsg == 3 and pdu.status_class == 0 and self._conn:
                    self._conn.hold()  # full feature PDUs may follow in the same segment
                self._login_future.set_result(pdu)
                return
            raise UnexpectedPdu(f"{type(pdu).__name__} from {self.where} during login; the "
                                "target breaks RFC 7143")
        handler = self._handlers.get(type(pdu))
        if handler is None:
            raise UnexpectedPdu(
                f"unexpected {type(pdu).__name__} (opcode 0x{pdu.opcode:02x}) from "
                f"{self.where} in the full feature phase; the target breaks RFC 7143")
        handler(pdu)

    def _window(self, exp_cmd_sn: int, max_cmd_sn: int) -> None:
        """Take ExpCmdSN/MaxCmdSN from a target PDU (serial arithmetic inlined: this runs
        for every PDU)."""
        if max_cmd_sn == self.max_cmd_sn and exp_cmd_sn == self.exp_cmd_sn:
            return
        if 0 < ((exp_cmd_sn - max_cmd_sn - 1) & _MASK) < _HALF:
            return  # MaxCmdSN < ExpCmdSN - 1: ignore, RFC 7143 section 4.2.2.1
        if 0 < ((exp_cmd_sn - self.exp_cmd_sn) & _MASK) < _HALF:
            self.exp_cmd_sn = exp_cmd_sn
        if 0 < ((max_cmd_sn - self.max_cmd_sn) & _MASK) < _HALF:
            self.max_cmd_sn = max_cmd_sn
            waiters = self._window_waiters
            if waiters:
                slots = ((max_cmd_sn - self.cmd_sn) & _MASK) + 1
                for waiter in waiters[:slots]:
                    if not waiter.done():
                        waiter.set_result(None)

    def _status(self, stat_sn: int) -> None:
        if ((stat_sn - self.exp_stat_sn) & _MASK) < _HALF:  # StatSN >= ExpStatSN
            self.exp_stat_sn = (stat_sn + 1) & _MASK

    def _task(self, itt: int, what: str) -> ScsiTask:
        task = self._tasks.get(itt)
        if task is None:
            raise ProtocolError(f"{what} from {self.where} for unknown task tag 0x{itt:08x}; "
                                "the target confused its tasks")
        return task

    def _finish(self, task: ScsiTask) -> None:
        self._tasks.pop(task.itt, None)

    def _on_data_in(self, pdu: DataIn) -> None:
        self._window(pdu.exp_cmd_sn, pdu.max_cmd_sn)
        task = self._tasks.get(pdu.initiator_task_tag) or self._task(pdu.initiator_task_tag,
                                                                       "Data-In")
        task.data_in(pdu, self.where)
        if pdu.status_present:
            self._status(pdu.stat_sn)
            self._finish(task)
            if not task.future.done():
                task.future.set_result(
                    task.result_from_data_in(pdu, time.monotonic_ns(), self.where))

    def _on_scsi_response(self, pdu: ScsiResponse) -> None:
        self._window(pdu.exp_cmd_sn, pdu.max_cmd_sn)
        self._status(pdu.stat_sn)
        task = self._task(pdu.initiator_task_tag, "SCSI Response")
        self._finish(task)
        if task.future.done():
            return
        try:
            task.future.set_result(task.result_from_response(pdu, time.monotonic_ns(),
                                                             self.where))
        except TaskFailedAtTarget as exc:
            task.future.set_exception(exc)

    def _on_r2t(self, pdu: R2T) -> None:
        self._window(pdu.exp_cmd_sn, pdu.max_cmd_sn)
        task = self._task(pdu.initiator_task_tag, "R2T")
        length, offset = pdu.desired_data_transfer_length, pdu.buffer_offset
        if not length or offset + length > len(task.data_out) or (
                length > self.params.max_burst_length):
            raise ProtocolError(
                f"R2T from {self.where} asks for bytes {offset}..{offset + length} of a "
                f"{len(task.data_out)}-byte write (MaxBurstLength "
                f"{self.params.max_burst_length}); the target breaks RFC 7143")
        self._send_data_out(task, pdu.target_transfer_tag, offset, length)

    def _on_nop_in(self, pdu: NopIn) -> None:
        self._window(pdu.exp_cmd_sn, pdu.max_cmd_sn)
        if pdu.initiator_task_tag != NO_TAG:
            self._status(pdu.stat_sn)
            self._on_exchange_response(pdu)
        if pdu.target_transfer_tag != NO_TAG:  # the target pings us: answer at once
            self._usable().send(NopOut(
                immediate=True, lun=pdu.lun, initiator_task_tag=NO_TAG,
                target_transfer_tag=pdu.target_transfer_tag, cmd_sn=self.cmd_sn,
                exp_stat_sn=self.exp_stat_sn, data=pdu.data))
            self.target_nops_answered += 1

    def _on_exchange_response(self, pdu: Pdu) -> None:
        if not isinstance(pdu, NopIn):
            self._window(pdu.exp_cmd_sn, pdu.max_cmd_sn)  # type: ignore[attr-defined]
            self._status(pdu.stat_sn)  # type: ignore[attr-defined]
        future = self._exchanges.get(pdu.initiator_task_tag)
        if future is None:
            raise ProtocolError(f"{type(pdu).__name__} from {self.where} answers task tag "
                                f"0x{pdu.initiator_task_tag:08x}, which no request of ours "
                                "carries; the target breaks RFC 7143")
        if not future.done():
            future.set_result(pdu)

    def _on_async(self, pdu: AsyncMessage) -> None:
        self._window(pdu.exp_cmd_sn, pdu.max_cmd_sn)
        self._status(pdu.stat_sn)
        sense = None
        if pdu.async_event == AsyncEvent.SCSI_ASYNC_EVENT and pdu.data:
            sense = decode_sense_segment(pdu.data, self.where)
        record = AsyncEventRecord(pdu.async_event, pdu.async_vcode, codec.lun_from_wire(pdu.lun),
                                  sense, (pdu.parameter1, pdu.parameter2, pdu.parameter3))
        self.async_events.append(record)
        if self.on_async is not None:
            self.on_async(record)
        if pdu.async_event == AsyncEvent.LOGOUT_REQUESTED:
            self._spawn(self.logout())

    def _on_reject(self, pdu: Reject) -> None:
        self._window(pdu.exp_cmd_sn, pdu.max_cmd_sn)
        self._status(pdu.stat_sn)
        itt = int.from_bytes(pdu.data[16:20], "big") if len(pdu.data) >= 20 else NO_TAG
        error = CommandRejected(
            f"{self.where} rejected our PDU (opcode 0x{pdu.data[0] & 0x3F if pdu.data else 0:02x},"
            f" reason 0x{pdu.reason:02x}); the initiator sent something the target refuses",
            pdu.reason)
        task = self._tasks.get(itt)
        if task is not None:
            self._finish(task)
            if not task.future.done():
                task.future.set_exception(error)
            return
        future = self._exchanges.get(itt)
        if future is not None and not future.done():
            future.set_exception(error)

    # -- failure ---------------------------------------------------------------------------

    def _on_lost(self, exc: BaseException) -> None:
        self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        """End the session: close the connection and hand ``exc`` to every waiter."""
        if self.failure is not None:
            return
        self.failure = exc
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._conn is not None:
            self._conn.close()
        for task in list(self._tasks.values()):
            self._finish(task)
            if not task.future.done():
                task.future.set_exception(exc)
                task.future.exception()  # mark retrieved: callers may have given up
        for future in [*self._exchanges.values(), *self._window_waiters]:
            if not future.done():
                future.set_exception(exc)
                future.exception()
        if self._login_future is not None and not self._login_future.done():
            self._login_future.set_exception(exc)
            self._login_future.exception()
        if self._failed is not None:
            self._failed.set()
