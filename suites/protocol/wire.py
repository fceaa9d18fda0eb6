"""A deliberately plain, blocking iSCSI initiator over one socket, for probes.

Model: ``RawConnection`` is the smallest thing that can log in and run a command
with ``harness.iscsi.codec``, and then send *anything* — crafted bytes included —
and observe exactly what comes back: a PDU, silence, or a closed connection. It
has no retries, no recovery and no window management beyond keeping CmdSN and
ExpStatSN in step, which is what a protocol probe wants; real I/O goes through
``harness.initiator``.
"""

from __future__ import annotations

import itertools
import os
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from harness.errors import SplitbrainError
from harness.iscsi import codec, keys
from harness.iscsi.chap import ChapInitiator
from harness.iscsi.codes import Opcode, Stage
from harness.iscsi.pdu import BHS_LENGTH, NO_TAG


class WireError(SplitbrainError):
    """The peer answered something a probe did not expect."""


class PeerClosed(WireError):
    """The target closed the connection."""


@dataclass
class LoginResult:
    status: int
    tsih: int
    keys: dict[str, str]
    response: codec.LoginResponse

    @property
    def ok(self) -> bool:
        return self.status == 0


@dataclass
class CommandResult:
    status: int
    data: bytes
    sense: bytes
    response: codec.Pdu


class RawConnection:
    """One TCP connection to a portal, driven PDU by PDU."""

    def __init__(self, host: str, port: int, *, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.header_digest = False
        self.data_digest = False
        self.cmd_sn = 1
        self.exp_stat_sn = 0
        self.isid = 0x80_0000_0000 | int.from_bytes(os.urandom(3), "big")
        self.tsih = 0
        self.max_cmd_sn = 1
        self.max_send_dsl = 8192
        self.first_burst = 65536
        self.max_burst = 262144
        self.immediate_data = True
        self.initial_r2t = True
        self._itt = itertools.count(1)
        self.responses = 0   # Text Response PDUs the last text() exchange took

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- raw I/O ----------------------------------------------------------------------------

    def send_bytes(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, pdu: codec.Pdu) -> None:
        self.sock.sendall(codec.encode(pdu, header_digest=self.header_digest,
                                       data_digest=self.data_digest))

    def _recv_exact(self, n: int) -> bytes:
        chunks = []
        while n:
            chunk = self.sock.recv(min(n, 1 << 20))
            if not chunk:
                raise PeerClosed("the target closed the connection")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def recv(self) -> codec.Pdu:
        """The next PDU from the target (raises PeerClosed on EOF or reset)."""
        try:
            bhs = self._recv_exact(BHS_LENGTH)
            rest = codec.pdu_length(bhs, header_digest=self.header_digest,
                                    data_digest=self.data_digest) - BHS_LENGTH
            pdu = codec.decode(bhs + self._recv_exact(rest), header_digest=self.header_digest,
                               data_digest=self.data_digest)
        except ConnectionResetError:
            raise PeerClosed("the target reset the connection") from None
        stat_sn = getattr(pdu, "stat_sn", None)
        if stat_sn is not None and pdu.opcode in _ADVANCES_STAT_SN and \
                not (pdu.opcode == Opcode.DATA_IN and not pdu.status_present):
            self.exp_stat_sn = (stat_sn + 1) & 0xFFFFFFFF
        max_cmd_sn = getattr(pdu, "max_cmd_sn", None)
        if max_cmd_sn is not None and pdu.opcode != Opcode.LOGIN_RESPONSE:
            self.max_cmd_sn = max_cmd_sn
        return pdu

    def closed_by_peer(self, timeout: float = 5.0) -> bool:
        """True when the target closes the connection within ``timeout`` (PDUs skipped)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                if not self.sock.recv(65536):
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False

    def next_itt(self) -> int:
        return next(self._itt)

    # -- login ------------------------------------------------------------------------------

    def login(self, initiator: str, target: str | None = None, *,
              extra: Iterable[tuple[str, str]] = (), isid: int | None = None,
              tsih: int = 0, cid: int = 0, digests: bool = False,
              chap: ChapInitiator | None = None) -> LoginResult:
        """Security stage (CHAP when ``chap`` is given), then one operational round."""
        if isid is not None:
            self.isid = isid
        ident = [("InitiatorName", initiator),
                 ("SessionType", "Normal" if target else "Discovery")]
        if target:
            ident.append(("TargetName", target))
        if chap is None:
            first = self._login_pdu(Stage.SECURITY_NEGOTIATION,
                                    Stage.LOGIN_OPERATIONAL_NEGOTIATION,
                                    [*ident, ("AuthMethod", "None")], tsih, cid)
            result = self._login_exchange(first)
            if not result.ok:
                return result
            security_keys = result.keys
        else:
            result = self._chap_exchange(ident, chap, tsih, cid)
            if not result.ok or result.response.nsg != Stage.LOGIN_OPERATIONAL_NEGOTIATION:
                return result
            security_keys = result.keys
        op = [("HeaderDigest", "CRC32C" if digests else "None"),
              ("DataDigest", "CRC32C" if digests else "None"),
              ("MaxRecvDataSegmentLength", "262144"), ("InitialR2T", "No"),
              ("ImmediateData", "Yes"), ("MaxBurstLength", "262144"),
              ("FirstBurstLength", "65536"), ("MaxOutstandingR2T", "1")]
        overridden = {k for k, _ in extra}
        op = [(k, v) for k, v in op if k not in overridden] + list(extra)
        result = self._login_exchange(self._login_pdu(
            Stage.LOGIN_OPERATIONAL_NEGOTIATION, Stage.FULL_FEATURE_PHASE, op, tsih, cid))
        result.keys = {**security_keys, **result.keys}
        if result.ok:
            k = {key: value for key, value in result.keys.items()
                 if value not in keys.SPECIAL_VALUES}   # Irrelevant etc.: defaults apply
            self.tsih = result.tsih
            self.header_digest = digests and k.get("HeaderDigest") == "CRC32C"
            self.data_digest = digests and k.get("DataDigest") == "CRC32C"
            self.max_send_dsl = int(k.get("MaxRecvDataSegmentLength", "8192"))
            self.first_burst = int(k.get("FirstBurstLength", "65536"))
            self.max_burst = int(k.get("MaxBurstLength", "262144"))
            self.immediate_data = k.get("ImmediateData", "Yes") == "Yes"
            self.initial_r2t = k.get("InitialR2T", "Yes") == "Yes"
            self.max_cmd_sn = result.response.max_cmd_sn
        return result

    def _chap_exchange(self, ident: list[tuple[str, str]], chap: ChapInitiator, tsih: int,
                       cid: int) -> LoginResult:
        def step(pairs: list[tuple[str, str]], transit: bool) -> LoginResult:
            pdu = self._login_pdu(Stage.SECURITY_NEGOTIATION,
                                  Stage.LOGIN_OPERATIONAL_NEGOTIATION, pairs, tsih, cid)
            pdu.transit = transit
            return self._login_exchange(pdu)

        result = step([*ident, ("AuthMethod", "CHAP,None")], False)
        if not result.ok:
            return result
        if result.keys.get("AuthMethod") != "CHAP":
            raise WireError(f"target chose AuthMethod={result.keys.get('AuthMethod')}")
        result = step(chap.start(), False)
        if not result.ok:
            return result
        result = step(chap.respond(result.keys), True)
        if result.ok:
            chap.verify(result.keys)
        return result

    def _login_pdu(self, csg: int, nsg: int, pairs: list[tuple[str, str]], tsih: int,
                   cid: int) -> codec.LoginRequest:
        return codec.LoginRequest(transit=True, csg=csg, nsg=nsg, isid=self.isid, tsih=tsih,
                                  initiator_task_tag=self.next_itt(), cid=cid,
                                  cmd_sn=self.cmd_sn, exp_stat_sn=self.exp_stat_sn,
                                  data=keys.encode_keys(pairs))

    def _login_exchange(self, req: codec.LoginRequest) -> LoginResult:
        self.send(req)
        rsp = self.recv()
        if not isinstance(rsp, codec.LoginResponse):
            raise WireError(f"expected a Login Response, got {type(rsp).__name__}")
        self.exp_stat_sn = (rsp.stat_sn + 1) & 0xFFFFFFFF
        status = (rsp.status_class << 8) | rsp.status_detail
        return LoginResult(status, rsp.tsih, dict(keys.decode_keys(rsp.data)), rsp)

    # -- full feature phase -----------------------------------------------------------------

    def take_cmd_sn(self, immediate: bool = False) -> int:
        sn = self.cmd_sn
        if not immediate:
            self.cmd_sn = (sn + 1) & 0xFFFFFFFF
        return sn

    def command(self, cdb: bytes, *, lun: int = 0, read_length: int = 0,
                data_out: bytes = b"") -> CommandResult:
        """Run one SCSI command to completion (immediate/unsolicited data, then R2Ts)."""
        itt = self.next_itt()
        edtl = len(data_out) if data_out else read_length
        immediate = b""
        if data_out and self.immediate_data:
            immediate = data_out[: min(self.first_burst, self.max_send_dsl)]
        cmd = codec.ScsiCommand(read=read_length > 0, write=bool(data_out),
                                lun=codec.lun_to_wire(lun),
                                initiator_task_tag=itt, expected_data_transfer_length=edtl,
                                cmd_sn=self.take_cmd_sn(), exp_stat_sn=self.exp_stat_sn,
                                cdb=cdb, data=immediate,
                                final=not data_out or self.initial_r2t
                                or len(immediate) >= min(self.first_burst, edtl))
        self.send(cmd)
        sent = len(immediate)
        if data_out and not self.initial_r2t:
            end = min(self.first_burst, edtl)
            self._send_data(itt, NO_TAG, data_out, sent, end, lun)
            sent = end
        data = bytearray(read_length)
        while True:
            pdu = self.recv()
            if isinstance(pdu, codec.R2T) and pdu.initiator_task_tag == itt:
                off, length = pdu.buffer_offset, pdu.desired_data_transfer_length
                self._send_data(itt, pdu.target_transfer_tag, data_out, off, off + length, lun)
            elif isinstance(pdu, codec.DataIn) and pdu.initiator_task_tag == itt:
                data[pdu.buffer_offset : pdu.buffer_offset + len(pdu.data)] = pdu.data
                if pdu.status_present:
                    got = read_length - (pdu.residual_count if pdu.residual_underflow else 0)
                    return CommandResult(pdu.status, bytes(data[:got]), b"", pdu)
            elif isinstance(pdu, codec.ScsiResponse) and pdu.initiator_task_tag == itt:
                sense = b""
                if len(pdu.data) >= 2:
                    n = struct.unpack_from(">H", pdu.data)[0]
                    sense = pdu.data[2 : 2 + n]
                got = read_length - (pdu.residual_count if pdu.residual_underflow else 0)
                return CommandResult(pdu.status, bytes(data[:max(0, got)]), sense, pdu)
            elif isinstance(pdu, codec.NopIn) and pdu.target_transfer_tag != NO_TAG:
                self.send(codec.NopOut(immediate=True, initiator_task_tag=NO_TAG,
                                       target_transfer_tag=pdu.target_transfer_tag,
                                       lun=pdu.lun, cmd_sn=self.cmd_sn,
                                       exp_stat_sn=self.exp_stat_sn))
            elif isinstance(pdu, codec.Reject):
                raise WireError(f"target rejected the command: reason 0x{pdu.reason:02x}")

    def _send_data(self, itt: int, ttt: int, data: bytes, start: int, end: int,
                   lun: int) -> None:
        data_sn = 0
        offset = start
        while offset < end:
            size = min(self.max_send_dsl, end - offset)
            self.send(codec.DataOut(final=offset + size >= end, lun=codec.lun_to_wire(lun),
                                    initiator_task_tag=itt, target_transfer_tag=ttt,
                                    exp_stat_sn=self.exp_stat_sn, data_sn=data_sn,
                                    buffer_offset=offset, data=data[offset : offset + size]))
            data_sn += 1
            offset += size

    def nop(self, payload: bytes = b"") -> codec.NopIn:
        itt = self.next_itt()
        self.send(codec.NopOut(immediate=True, initiator_task_tag=itt, cmd_sn=self.cmd_sn,
                               exp_stat_sn=self.exp_stat_sn, data=payload))
        while True:
            pdu = self.recv()
            if isinstance(pdu, codec.NopIn) and pdu.initiator_task_tag == itt:
                return pdu

    def text(self, pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
        """One Text Request; a long answer is collected over its continuation PDUs."""
        itt = self.next_itt()
        data = keys.encode_keys(pairs)
        ttt = NO_TAG
        collected = bytearray()
        self.responses = 0
        while True:
            self.send(codec.TextRequest(immediate=True, final=True, initiator_task_tag=itt,
                                        target_transfer_tag=ttt, cmd_sn=self.cmd_sn,
                                        exp_stat_sn=self.exp_stat_sn, data=data))
            pdu = self.recv()
            if not isinstance(pdu, codec.TextResponse):
                raise WireError(f"expected a Text Response, got {type(pdu).__name__}")
            self.responses += 1
            collected += pdu.data
            if pdu.final and not pdu.continue_:
                break
            ttt, data = pdu.target_transfer_tag, b""
        out: dict[str, list[str]] = {}
        for k, v in keys.decode_keys(bytes(collected)):
            out.setdefault(k, []).append(v)
        return out

    def logout(self) -> codec.LogoutResponse:
        self.send(codec.LogoutRequest(immediate=True, reason_code=0,
                                      initiator_task_tag=self.next_itt(), cmd_sn=self.cmd_sn,
                                      exp_stat_sn=self.exp_stat_sn))
        pdu = self.recv()
        if not isinstance(pdu, codec.LogoutResponse):
            raise WireError(f"expected a Logout Response, got {type(pdu).__name__}")
        return pdu


_ADVANCES_STAT_SN = frozenset({Opcode.SCSI_RESPONSE, Opcode.DATA_IN, Opcode.NOP_IN,
                               Opcode.TASK_MANAGEMENT_RESPONSE, Opcode.TEXT_RESPONSE,
                               Opcode.LOGOUT_RESPONSE, Opcode.REJECT, Opcode.LOGIN_RESPONSE,
                               Opcode.ASYNC_MESSAGE})

