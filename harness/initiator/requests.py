"""The session's requests other than SCSI commands: NOP-Out ping, task management, text.

The model: each is one request PDU and one response PDU matched by Initiator Task
Tag, with its own deadline. Pings and task management requests are immediate
(they carry the current CmdSN without taking it, so they pass a closed command
window); so are text requests, whose continuations tgtd would otherwise block
behind a window it never reopens in a discovery session. Mixed into ``Session``, which
routes the responses here through ``_exchanges``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from harness.initiator.connection import Connection
from harness.initiator.errors import ProtocolError, TaskAborted, Timeout
from harness.initiator.task import CommandHandle, ScsiTask
from harness.iscsi import codec
from harness.iscsi.codes import TaskManagementFunction
from harness.iscsi.codes import TaskManagementResponseCode as TmfResponse
from harness.iscsi.initiator_pdus import NopOut, TaskManagementRequest, TextRequest
from harness.iscsi.keys import SessionParameters, TextAssembler, encode_keys
from harness.iscsi.pdu import NO_TAG, Pdu
from harness.iscsi.target_pdus import TaskManagementResponse, TextResponse


@dataclass(frozen=True)
class SessionTimeouts:
    """Deadlines, in seconds, of each kind of operation."""

    connect: float = 5.0
    login: float = 10.0
    command: float = 30.0
    nop: float = 5.0
    task_management: float = 10.0
    logout: float = 5.0


class SessionRequests:
    """Ping, task management and text exchanges (mixed into ``Session``)."""

    where: str
    lun: int
    cmd_sn: int
    exp_stat_sn: int
    params: SessionParameters
    timeouts: SessionTimeouts
    _exchanges: dict[int, asyncio.Future[Pdu]]
    _tasks: dict[int, ScsiTask]

    def _usable(self) -> Connection:
        raise NotImplementedError

    def _itt(self) -> int:
        raise NotImplementedError

    def _fail(self, exc: BaseException) -> None:
        raise NotImplementedError

    def _finish(self, task: ScsiTask) -> None:
        raise NotImplementedError

    async def _exchange(self, request: Pdu, itt: int, seconds: float, operation: str) -> Pdu:
        conn = self._usable()
        future: asyncio.Future[Pdu] = asyncio.get_running_loop().create_future()
        self._exchanges[itt] = future
        try:
            conn.send(request)
            async with asyncio.timeout(seconds):
                return await future
        except TimeoutError:
            raise Timeout(operation, seconds, self.where) from None
        finally:
            self._exchanges.pop(itt, None)

    async def ping(self, payload: bytes = b"", *, timeout: float | None = None) -> int:
        """NOP-Out ping; returns the round trip in nanoseconds (monotonic clock)."""
        itt = self._itt()
        seconds = self.timeouts.nop if timeout is None else timeout
        request = NopOut(immediate=True, initiator_task_tag=itt, target_transfer_tag=NO_TAG,
                         cmd_sn=self.cmd_sn, exp_stat_sn=self.exp_stat_sn, data=payload)
        start = time.monotonic_ns()
        answer = await self._exchange(request, itt, seconds, "NOP-Out ping")
        elapsed = time.monotonic_ns() - start
        if answer.data != payload:
            error = ProtocolError(f"NOP-In from {self.where} did not echo the ping's "
                                  f"{len(payload)}-byte payload; the target breaks RFC 7143")
            self._fail(error)
            raise error
        return elapsed

    async def task_management(self, function: int, *, lun: int | None = None,
                              referenced: ScsiTask | CommandHandle | None = None,
                              timeout: float | None = None) -> TmfResponse:
        """Send a task management request; returns the target's response code. On
        FUNCTION COMPLETE the affected tasks of this session fail with TaskAborted."""
        ref = referenced._task if isinstance(referenced, CommandHandle) else referenced
        lun = (ref.lun if ref is not None else self.lun) if lun is None else lun
        itt = self._itt()
        seconds = self.timeouts.task_management if timeout is None else timeout
        name = TaskManagementFunction(function).name.replace("_", " ")
        request = TaskManagementRequest(
            immediate=True, function=function, lun=codec.lun_to_wire(lun),
            initiator_task_tag=itt, referenced_task_tag=ref.itt if ref else NO_TAG,
            cmd_sn=self.cmd_sn, exp_stat_sn=self.exp_stat_sn,
            ref_cmd_sn=ref.cmd_sn if ref else self.cmd_sn)
        answer = await self._exchange(request, itt, seconds, name)
        assert isinstance(answer, TaskManagementResponse)
        try:
            code = TmfResponse(answer.response)
        except ValueError:
            code = TmfResponse.FUNCTION_REJECTED
        if code == TmfResponse.FUNCTION_COMPLETE:
            if function == TaskManagementFunction.ABORT_TASK:
                affected = [ref] if ref is not None else []
            elif function in (TaskManagementFunction.TARGET_WARM_RESET,
                              TaskManagementFunction.TARGET_COLD_RESET):
                affected = list(self._tasks.values())
            elif function == TaskManagementFunction.CLEAR_ACA:
                affected = []
            else:
                affected = [t for t in self._tasks.values() if t.lun == lun]
            for task in affected:
                self._finish(task)
                if not task.future.done():
                    task.future.set_exception(TaskAborted(
                        f"{task.operation} on {self.where} was aborted by {name}; retry it"))
        return code

    async def text_request(self, pairs: list[tuple[str, str]], *,
                           timeout: float | None = None) -> list[tuple[str, str]]:
        """A Text Request/Response exchange (e.g. SendTargets), over as many PDUs as needed."""
        loop = asyncio.get_running_loop()
        seconds = self.timeouts.command if timeout is None else timeout
        deadline = loop.time() + seconds
        itt = self._itt()
        text = encode_keys(pairs)
        limit = self.params.peer_max_recv_data_segment_length
        chunks = [text[i : i + limit] for i in range(0, len(text), limit)] or [b""]
        assembler = TextAssembler()
        ttt = NO_TAG
        answer: Pdu | None = None
        for index, chunk in enumerate(chunks):
            last = index == len(chunks) - 1
            answer = await self._text_pdu(chunk, itt, ttt, last, deadline, seconds)
            ttt = answer.target_transfer_tag  # type: ignore[attr-defined]
        while True:
            assert isinstance(answer, TextResponse)
            received = assembler.feed(answer.data, continue_=not answer.final)
            if received is not None:
                return received
            answer = await self._text_pdu(b"", itt, answer.target_transfer_tag, True,
                                          deadline, seconds)

    async def _text_pdu(self, data: bytes, itt: int, ttt: int, final: bool, deadline: float,
                        seconds: float) -> Pdu:
        # Immediate: a text exchange must not depend on the command window (tgtd keeps a
        # discovery session's window shut after the first Text Request).
        request = TextRequest(immediate=True, final=final, continue_=not final,
                              initiator_task_tag=itt, target_transfer_tag=ttt,
                              cmd_sn=self.cmd_sn, exp_stat_sn=self.exp_stat_sn, data=data)
        remaining = max(0.0, deadline - asyncio.get_running_loop().time())
        return await self._exchange(request, itt, remaining, "Text Request")
