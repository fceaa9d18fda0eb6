"""A misbehaving target: every kind of bad input ends in a typed error, never a hang.

``FakeTarget`` is a real TCP server on loopback that logs the initiator in
properly (negotiating with :class:`harness.iscsi.negotiation.Negotiation`, as a
target would) and then misbehaves in one chosen way when the first SCSI command
arrives (or already during login). Each test bounds the whole exchange with an
outer deadline well above the session's own timeouts, so a hang fails the test
rather than stalling the run; no test asserts on timings.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from harness.errors import SplitbrainError
from harness.initiator.errors import (
    ConnectionLost,
    DigestError,
    PduTooLarge,
    ProtocolError,
    SessionFailed,
    TaskFailedAtTarget,
    Timeout,
    TruncatedPdu,
    UnexpectedPdu,
    UnknownOpcode,
)
from harness.initiator.session import Session, SessionTimeouts
from harness.iscsi import codec
from harness.iscsi.codes import TaskManagementFunction
from harness.iscsi.initiator_pdus import LoginRequest, ScsiCommand, TaskManagementRequest
from harness.iscsi.keys import decode_keys, encode_keys
from harness.iscsi.negotiation import Negotiation
from harness.iscsi.target_pdus import LoginResponse, ScsiResponse, TaskManagementResponse
from harness.scsi.cdb import TestUnitReady

TARGET = "iqn.2026-11.test.splitbrain:fake"
TIMEOUTS = SessionTimeouts(connect=2, login=1.5, command=1.0, nop=1.0, task_management=1.0,
                           logout=1.0)
OUTER_DEADLINE = 20

Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter, ScsiCommand], Awaitable[None]]


class FakeTarget:
    """Logs one initiator in, then runs ``behaviour`` on its first SCSI command."""

    def __init__(self, behaviour: Behaviour | None, *, digests: bool = False,
                 login_behaviour: Callable[[asyncio.StreamWriter], Awaitable[None]] | None = None
                 ) -> None:
        self.behaviour = behaviour
        self.login_behaviour = login_behaviour
        self.digests = digests
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._hold = asyncio.Event()

    async def __aenter__(self) -> FakeTarget:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._hold.set()
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        with contextlib.suppress(Exception):
            await self._server.wait_closed()

    async def hold(self) -> None:
        """Keep the connection open and silent until the test ends."""
        await self._hold.wait()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        with contextlib.suppress(SplitbrainError, ConnectionError, asyncio.CancelledError):
            if self.login_behaviour is not None:
                await codec.read_pdu(reader, max_data_segment_length=65536)
                await self.login_behaviour(writer)
                return
            await self._login(reader, writer)
            while True:
                pdu = await codec.read_pdu(reader, header_digest=self.digests,
                                           data_digest=self.digests,
                                           max_data_segment_length=1 << 20)
                if isinstance(pdu, ScsiCommand):
                    assert self.behaviour is not None
                    await self.behaviour(reader, writer, pdu)
                    return

    async def _login(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        digest = "CRC32C" if self.digests else "None"
        negotiation = Negotiation(role="target", preferences={
            "HeaderDigest": digest, "DataDigest": digest, "InitialR2T": "Yes",
            "ImmediateData": "Yes", "MaxRecvDataSegmentLength": "65536"})
        stat_sn = 1
        while True:
            request = await codec.read_pdu(reader, max_data_segment_length=65536)
            assert isinstance(request, LoginRequest)
            answers = negotiation.receive(decode_keys(request.data))
            if request.csg == 1:
                answers += negotiation.offer(["MaxRecvDataSegmentLength"])
            writer.write(codec.encode(LoginResponse(
                transit=request.transit, csg=request.csg, nsg=request.nsg,
                isid=request.isid, tsih=1 if request.transit and request.nsg == 3 else 0,
                initiator_task_tag=request.initiator_task_tag, stat_sn=stat_sn,
                exp_cmd_sn=request.cmd_sn, max_cmd_sn=request.cmd_sn + 16,
                data=encode_keys(answers))))
            stat_sn += 1
            if request.transit and request.nsg == 3:
                return


def good_response(cmd: ScsiCommand) -> ScsiResponse:
    return ScsiResponse(initiator_task_tag=cmd.initiator_task_tag, stat_sn=2,
                        exp_cmd_sn=cmd.cmd_sn + 1, max_cmd_sn=cmd.cmd_sn + 16)


async def attempt(target: FakeTarget, *, digests: bool = False
                  ) -> tuple[BaseException, Session]:
    """Log in to ``target`` and run TEST UNIT READY; return the error it ended in."""
    prefs = {"HeaderDigest": "CRC32C,None", "DataDigest": "CRC32C,None"} if digests else {}
    session = Session("127.0.0.1", target.port, TARGET, timeouts=TIMEOUTS, preferences=prefs)
    try:
        await session.login()
        await session.execute(TestUnitReady().encode())
    except SplitbrainError as exc:
        return exc, session
    raise AssertionError("the misbehaving target did not cause an error")


def run_against(behaviour: Behaviour | None, **kwargs: Any) -> tuple[BaseException, Session]:
    digests = kwargs.get("digests", False)

    async def scenario() -> tuple[BaseException, Session]:
        async with FakeTarget(behaviour, **kwargs) as target:
            return await attempt(target, digests=digests)

    async def bounded() -> tuple[BaseException, Session]:
        async with asyncio.timeout(OUTER_DEADLINE):
            return await scenario()

    return asyncio.run(bounded())


# -- behaviours -----------------------------------------------------------------------------


async def send_http(reader, writer, cmd) -> None:  # a web server on the iSCSI port
    writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n" + bytes(16))
    await writer.drain()


async def send_undefined_opcode(reader, writer, cmd) -> None:
    bhs = bytearray(48)
    bhs[0] = 0x1D  # not an RFC 7143 opcode
    writer.write(bytes(bhs))
    await writer.drain()


async def send_truncated_and_close(reader, writer, cmd) -> None:
    writer.write(codec.encode(good_response(cmd))[:30])
    await writer.drain()
    writer.close()


async def send_wrong_header_digest(reader, writer, cmd) -> None:
    raw = bytearray(codec.encode(good_response(cmd), header_digest=True))
    raw[48] ^= 0xFF
    writer.write(bytes(raw))
    await writer.drain()


async def send_login_response_in_full_feature_phase(reader, writer, cmd) -> None:
    writer.write(codec.encode(LoginResponse(initiator_task_tag=cmd.initiator_task_tag)))
    await writer.drain()


async def close_connection(reader, writer, cmd) -> None:
    writer.close()


def stay_silent(target_holder: list[FakeTarget]) -> Behaviour:
    async def silent(reader, writer, cmd) -> None:
        await target_holder[0].hold()
    return silent


# -- tests ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("behaviour", "error"), [
    (send_http, PduTooLarge),
    (send_undefined_opcode, UnknownOpcode),
    (send_truncated_and_close, TruncatedPdu),
    (send_login_response_in_full_feature_phase, UnexpectedPdu),
    (close_connection, ConnectionLost),
], ids=["garbage", "undefined-opcode", "truncated", "unexpected-opcode", "closed"])
def test_bad_input_fails_the_session_with_a_typed_error(behaviour: Behaviour,
                                                        error: type[Exception]) -> None:
    exc, session = run_against(behaviour)
    assert isinstance(exc, error), repr(exc)
    assert isinstance(exc, SplitbrainError)
    assert "\n" not in str(exc) and "127.0.0.1" in str(exc) + session.where
    assert session.failed

    async def again() -> None:
        await session.execute(TestUnitReady().encode())

    with pytest.raises(SessionFailed):
        asyncio.run(again())


def test_wrong_digest_is_a_digest_error() -> None:
    exc, session = run_against(send_wrong_header_digest, digests=True)
    assert isinstance(exc, DigestError) and exc.header
    assert session.params.header_digest
    assert session.failed


def test_silent_target_times_out_then_the_session_fails() -> None:
    async def scenario() -> tuple[BaseException, BaseException]:
        holder: list[FakeTarget] = []
        async with FakeTarget(stay_silent(holder)) as target:
            holder.append(target)
            exc, session = await attempt(target)
            failure = await session.wait_failed()  # the ABORT TASK went unanswered too
            return exc, failure

    async def bounded() -> tuple[BaseException, BaseException]:
        async with asyncio.timeout(OUTER_DEADLINE):
            return await scenario()

    exc, failure = asyncio.run(bounded())
    assert isinstance(exc, Timeout)
    assert exc.seconds == TIMEOUTS.command and "TEST UNIT READY" in str(exc)
    assert isinstance(failure, Timeout) and "ABORT TASK" in str(failure)


@pytest.mark.parametrize("login_behaviour", ["silence", "garbage", "truncated", "close"])
def test_bad_input_during_login(login_behaviour: str) -> None:
    async def misbehave(writer: asyncio.StreamWriter) -> None:
        if login_behaviour == "garbage":
            writer.write(struct.pack(">B47x", 0x1D))
        elif login_behaviour == "truncated":
            writer.write(codec.encode(LoginResponse(data=b"AuthMethod=None\x00"))[:52])
            writer.close()
        elif login_behaviour == "close":
            writer.close()
        else:
            await asyncio.sleep(OUTER_DEADLINE)  # silence until the login deadline passes

    expected = {"silence": Timeout, "garbage": ProtocolError, "truncated": TruncatedPdu,
                "close": ConnectionLost}[login_behaviour]
    exc, session = run_against(None, login_behaviour=misbehave)
    assert isinstance(exc, expected), repr(exc)
    assert session.failed


def test_refused_connection_is_connection_lost() -> None:
    async def scenario() -> BaseException:
        async with FakeTarget(None) as target:
            port = target.port
        session = Session("127.0.0.1", port, TARGET, timeouts=TIMEOUTS)
        with pytest.raises(ConnectionLost, match="cannot connect") as info:
            await session.login()
        return info.value

    assert "127.0.0.1" in str(asyncio.run(scenario()))


def test_timed_out_command_is_aborted_and_the_session_lives_on() -> None:
    seen: list[Any] = []
    ignored: list[ScsiCommand] = []

    async def ignore_then_abort(reader, writer, cmd) -> None:
        """Never answer ``cmd``; answer the ABORT TASK and the next command."""
        ignored.append(cmd)
        stat_sn, answered = 2, 0
        while answered < 2:
            pdu = await codec.read_pdu(reader, max_data_segment_length=65536)
            seen.append(pdu)
            if isinstance(pdu, TaskManagementRequest):
                reply: Any = TaskManagementResponse(initiator_task_tag=pdu.initiator_task_tag)
            else:
                reply = good_response(pdu)
            reply.stat_sn, reply.exp_cmd_sn, reply.max_cmd_sn = (
                stat_sn, cmd.cmd_sn + 2, cmd.cmd_sn + 16)
            writer.write(codec.encode(reply))
            stat_sn += 1
            answered += 1
        await writer.drain()
        await asyncio.sleep(OUTER_DEADLINE)

    async def scenario() -> tuple[BaseException, Any, Session, bool]:
        async with FakeTarget(ignore_then_abort) as target:
            exc, session = await attempt(target)
            after = await session.execute(TestUnitReady().encode())
            return exc, after, session, session.failed

    async def bounded() -> tuple[BaseException, Any, Session, bool]:
        async with asyncio.timeout(OUTER_DEADLINE):
            return await scenario()

    exc, after, session, failed = asyncio.run(bounded())
    assert isinstance(exc, Timeout)
    (tmf,) = [pdu for pdu in seen if isinstance(pdu, TaskManagementRequest)]
    assert tmf.function == TaskManagementFunction.ABORT_TASK
    assert (tmf.referenced_task_tag, tmf.ref_cmd_sn) == (ignored[0].initiator_task_tag,
                                                         ignored[0].cmd_sn)
    assert after.good and not failed and session.outstanding == 0


def test_target_failure_response_fails_only_that_command() -> None:
    async def fail_then_serve(reader, writer, cmd) -> None:
        failed = good_response(cmd)
        failed.response = 0x01  # iSCSI "Target Failure": no SCSI status
        writer.write(codec.encode(failed))
        follow = await codec.read_pdu(reader, max_data_segment_length=65536)
        answer = good_response(follow)
        answer.stat_sn = 3
        writer.write(codec.encode(answer))
        await writer.drain()
        await asyncio.sleep(OUTER_DEADLINE)

    async def scenario() -> tuple[BaseException, Any, bool]:
        async with FakeTarget(fail_then_serve) as target:
            exc, session = await attempt(target)
            after = await session.execute(TestUnitReady().encode())
            return exc, after, session.failed

    async def bounded() -> tuple[BaseException, Any, bool]:
        async with asyncio.timeout(OUTER_DEADLINE):
            return await scenario()

    exc, after, failed = asyncio.run(bounded())
    assert isinstance(exc, TaskFailedAtTarget) and "target failure" in str(exc)
    assert after.good and not failed
