"""The command window and target-initiated PDUs, against a scripted loopback target.

The target keeps the CmdSN window at one command (MaxCmdSN = ExpCmdSN), answers
each command only after a while, pings the initiator with a NOP-In of its own and
sends an asynchronous SCSI event. The initiator must queue behind the window
(never send a CmdSN above MaxCmdSN), answer the ping with the target's transfer
tag, and record the event.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct

from harness.initiator.session import Session, SessionTimeouts
from harness.iscsi import codec
from harness.iscsi.codes import AsyncEvent
from harness.iscsi.initiator_pdus import LoginRequest, NopOut, ScsiCommand
from harness.iscsi.keys import decode_keys, encode_keys
from harness.iscsi.negotiation import Negotiation
from harness.iscsi.target_pdus import AsyncMessage, LoginResponse, NopIn, ScsiResponse
from harness.scsi.cdb import TestUnitReady
from harness.scsi.sense import Asc, SenseKey, unit_attention

TARGET = "iqn.2026-11.test.splitbrain:window"
PING_TAG = 0x1234
COMMANDS = 8


class WindowOfOne:
    def __init__(self) -> None:
        self.violations: list[str] = []
        self.max_in_flight = 0
        self.commands = 0
        self.nop_reply: NopOut | None = None

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            await self._serve(reader, writer)
        writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        negotiation = Negotiation(role="target", preferences={"MaxRecvDataSegmentLength": "65536"})
        stat_sn = 1
        while True:
            request = await codec.read_pdu(reader, max_data_segment_length=65536)
            assert isinstance(request, LoginRequest)
            answers = negotiation.receive(decode_keys(request.data))
            done = request.transit and request.nsg == 3
            exp_cmd_sn = request.cmd_sn
            writer.write(codec.encode(LoginResponse(
                transit=request.transit, csg=request.csg, nsg=request.nsg, isid=request.isid,
                tsih=1 if done else 0, initiator_task_tag=request.initiator_task_tag,
                stat_sn=stat_sn, exp_cmd_sn=exp_cmd_sn, max_cmd_sn=exp_cmd_sn,
                data=encode_keys(answers))))
            stat_sn += 1
            if done:
                break
        max_cmd_sn = exp_cmd_sn
        pending: list[ScsiCommand] = []
        writer.write(codec.encode(NopIn(target_transfer_tag=PING_TAG, stat_sn=stat_sn,
                                        exp_cmd_sn=exp_cmd_sn, max_cmd_sn=max_cmd_sn)))
        sense = unit_attention(Asc.POWER_ON_RESET).encode()
        writer.write(codec.encode(AsyncMessage(
            async_event=AsyncEvent.SCSI_ASYNC_EVENT, lun=codec.lun_to_wire(0), stat_sn=stat_sn,
            exp_cmd_sn=exp_cmd_sn, max_cmd_sn=max_cmd_sn,
            data=struct.pack(">H", len(sense)) + sense)))
        stat_sn += 1
        while self.commands < COMMANDS:
            try:
                async with asyncio.timeout(0.05):
                    pdu = await codec.read_pdu(reader, max_data_segment_length=65536)
            except TimeoutError:
                pdu = None
            if isinstance(pdu, NopOut):
                self.nop_reply = pdu
            elif isinstance(pdu, ScsiCommand):
                if pdu.cmd_sn != exp_cmd_sn or pdu.cmd_sn > max_cmd_sn:
                    self.violations.append(f"CmdSN {pdu.cmd_sn} with ExpCmdSN {exp_cmd_sn} "
                                           f"MaxCmdSN {max_cmd_sn}")
                exp_cmd_sn += 1
                pending.append(pdu)
                self.max_in_flight = max(self.max_in_flight, len(pending))
            elif pending:  # quiet for a while: answer the oldest, open one slot
                cmd = pending.pop(0)
                max_cmd_sn = exp_cmd_sn
                writer.write(codec.encode(ScsiResponse(
                    initiator_task_tag=cmd.initiator_task_tag, stat_sn=stat_sn,
                    exp_cmd_sn=exp_cmd_sn, max_cmd_sn=max_cmd_sn)))
                stat_sn += 1
                self.commands += 1
        await asyncio.sleep(1)


def test_initiator_waits_for_the_window_and_answers_target_pings() -> None:
    script = WindowOfOne()

    async def scenario() -> Session:
        server = await asyncio.start_server(script.serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        session = Session("127.0.0.1", port, TARGET,
                          timeouts=SessionTimeouts(command=10, login=5))
        try:
            await session.login()
            results = await asyncio.gather(*(session.execute(TestUnitReady().encode())
                                             for _ in range(COMMANDS)))
            assert all(r.good for r in results)
        finally:
            session.close()
            server.close()
        return session

    async def bounded() -> Session:
        async with asyncio.timeout(30):
            return await scenario()

    session = asyncio.run(bounded())
    assert script.violations == []
    assert script.max_in_flight == 1  # the window of one was respected
    assert script.commands == COMMANDS
    assert script.nop_reply is not None
    assert script.nop_reply.target_transfer_tag == PING_TAG
    assert script.nop_reply.initiator_task_tag == 0xFFFFFFFF
    assert session.target_nops_answered == 1
    (event,) = session.async_events
    assert event.event == AsyncEvent.SCSI_ASYNC_EVENT
    assert event.sense is not None and event.sense.key == SenseKey.UNIT_ATTENTION
