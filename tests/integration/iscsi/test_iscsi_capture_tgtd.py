"""Dissecting REAL iSCSI conversations: libiscsi's tools talking to Debian's tgtd.

A live test captures loopback while ``iscsi-inq`` (CHAP with header digests forced
on by the target, then mutual CHAP) and ``iscsi-ls -s`` (SendTargets discovery,
then a session per target) run against a private tgtd, and a regression test replays the capture
committed in ``tests/data/iscsi/``. Both run the same checks:

- every byte of every TCP payload belongs to a PDU of a known opcode;
- scapy rebuilds each captured PDU to its exact bytes, and the codec decodes it
  (digests verified) and re-encodes it to the identical bytes;
- login keys, CHAP (the harness ``ChapTarget`` and ``ChapInitiator``, seeded with
  the real peers' identifiers and challenges, must say exactly what tgtd and
  libiscsi said, one-way and mutual), the
  operational negotiation replayed through :class:`Negotiation` on both sides,
  header digests after login, SendTargets, INQUIRY data and status, and that every
  SCSI command got its status on the same Initiator Task Tag.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from iscsi_capture import CapturedPdu, capture_conversation, dissect
from scapy.utils import rdpcap, wrpcap

from harness.iscsi import codec, layers
from harness.iscsi.chap import (
    ChapAlgorithm,
    ChapCredentials,
    ChapInitiator,
    ChapTarget,
    chap_response,
    decode_binary,
)
from harness.iscsi.codes import Opcode
from harness.iscsi.keys import IRRELEVANT, OBSOLETE_KEYS, REJECT, SECURITY_KEYS, decode_keys
from harness.iscsi.negotiation import Negotiation
from harness.peers.tgtd import ChapCredentials as TgtdChap

DATA = Path(__file__).resolve().parents[2] / "data" / "iscsi"
RECORDED = DATA / "tgtd-libiscsi.pcap"
RECORDED_FACTS = DATA / "tgtd-libiscsi.json"
INQUIRY = 0x12


def check_conversation(pdus: list[CapturedPdu], payload_bytes: dict[bool, int],
                       facts: dict[str, object]) -> None:
    # Every payload byte is inside a dissected PDU of a known opcode.
    for direction in (True, False):
        assert sum(len(p.raw) for p in pdus if p.from_initiator == direction) == (
            payload_bytes[direction])
    assert all(type(p.layer) is not layers.ISCSI for p in pdus)
    assert {p.layer.opcode for p in pdus} <= set(Opcode)
    initiator_opcodes = {Opcode(p.layer.opcode) for p in pdus if p.from_initiator}
    assert all(op < 0x20 for op in initiator_opcodes)
    assert all(p.layer.opcode >= 0x20 for p in pdus if not p.from_initiator)

    # Scapy and the codec both read every real PDU and write the same bytes back.
    for pdu in pdus:
        alone = pdu.layer.copy()
        alone.remove_payload()
        assert bytes(alone) == pdu.raw
        hd, dd = pdu.layer.with_header_digest, pdu.layer.with_data_digest
        decoded = codec.decode(pdu.raw, header_digest=hd, data_digest=dd)
        assert decoded.opcode == pdu.layer.opcode
        assert codec.encode(decoded, header_digest=hd, data_digest=dd) == pdu.raw

    connections = sorted({p.connection for p in pdus}, key=lambda c: next(
        i for i, p in enumerate(pdus) if p.connection == c))
    assert len(connections) == facts["connections"]
    digest_connections = 0
    for connection in connections:
        flow = [p for p in pdus if p.connection == connection]
        digest_connections += check_login(flow, facts)
        check_commands(flow)
    assert digest_connections == facts["header_digest_connections"]
    assert facts.get("mutual_logins", 0) == facts["mutual_chap_connections"]

    discovery = [p for p in pdus if isinstance(p.layer, layers.ISCSITextRequest)]
    assert discovery and discovery[0].keys == {"SendTargets": "All"}
    answer = next(p for p in pdus if isinstance(p.layer, layers.ISCSITextResponse))
    assert answer.layer.initiator_task_tag == discovery[0].layer.initiator_task_tag
    text = bytes(answer.layer.data).decode()
    for iqn in facts["targets"]:  # type: ignore[attr-defined]
        assert f"TargetName={iqn}\x00" in text
    assert f":{facts['port']},1\x00" in text


def check_login(flow: list[CapturedPdu], facts: dict[str, object]) -> bool:
    """Check one connection's login; returns whether it went on with header digests."""
    first = flow[0]
    assert isinstance(first.layer, layers.ISCSILoginRequest) and first.from_initiator
    assert first.layer.immediate == 1 and first.layer.csg == 0
    assert first.keys["InitiatorName"].startswith("iqn.")
    login = [p for p in flow if isinstance(p.layer, layers.ISCSILoginRequest
                                           | layers.ISCSILoginResponse)]
    assert all(p.layer.initiator_task_tag == first.layer.initiator_task_tag for p in login)
    assert all(p.layer.isid == first.layer.isid for p in login)
    final = login[-1]
    assert isinstance(final.layer, layers.ISCSILoginResponse)
    assert (final.layer.transit, final.layer.nsg, final.layer.status_class) == (1, 3, 0)
    assert final.layer.tsih != 0
    keys: dict[str, str] = {}
    for pdu in login:
        keys.update(pdu.keys)
    if "CHAP_C" in keys:
        facts.setdefault("mutual_logins", 0)
        facts["mutual_logins"] += check_chap(login, facts)  # type: ignore[operator]
    check_negotiation(login, facts)
    after = flow[len(login):]
    digests = keys.get("HeaderDigest") == "CRC32C"
    assert all(p.layer.with_header_digest == digests for p in after)
    assert not any(p.layer.with_header_digest for p in login)
    return digests and bool(after)


def check_chap(login: list[CapturedPdu], facts: dict[str, object]) -> bool:
    """Check the CHAP exchange of one login against the harness CHAP; True if mutual.

    Seeded with the identifiers and challenges both real peers chose, the harness
    ``ChapTarget`` must accept libiscsi's response and prove itself exactly as tgtd
    did, and the harness ``ChapInitiator`` must answer exactly as libiscsi did."""
    steps = [p.keys for p in login if any(k.startswith("CHAP_") for k in p.keys)]
    offer, challenge, answer = steps[0], steps[1], steps[2]
    proof = steps[3] if len(steps) > 3 else {}
    assert answer["CHAP_N"] == facts["chap_user"]
    secret = str(facts["chap_secret"]).encode()
    expected = chap_response(ChapAlgorithm(int(challenge["CHAP_A"])), int(challenge["CHAP_I"]),
                             secret, decode_binary(challenge["CHAP_C"]))
    assert decode_binary(answer["CHAP_R"]) == expected
    mutual = "CHAP_C" in answer
    own = (ChapCredentials(str(facts["chap_target_user"]), str(facts["chap_target_secret"]))
           if mutual else None)

    def replaying(identifier: str, challenge_text: str) -> Callable[[int], bytes]:
        chosen = iter([bytes([int(identifier)]), decode_binary(challenge_text)])
        return lambda _size: next(chosen)

    target = ChapTarget({answer["CHAP_N"]: secret}, credentials=own,
                        algorithms=[ChapAlgorithm.MD5],
                        random_bytes=replaying(challenge["CHAP_I"], challenge["CHAP_C"]))
    assert dict(target.challenge(offer)) == {
        "CHAP_A": challenge["CHAP_A"], "CHAP_I": challenge["CHAP_I"],
        "CHAP_C": challenge["CHAP_C"].lower()}
    our_proof = dict(target.verify(answer))
    assert {k: v.lower() for k, v in our_proof.items()} == {
        k: v.lower() for k, v in proof.items()}

    initiator = ChapInitiator(
        ChapCredentials(answer["CHAP_N"], secret), target=own,
        algorithms=[ChapAlgorithm(int(a)) for a in offer["CHAP_A"].split(",")],
        random_bytes=replaying(answer.get("CHAP_I", "0"), answer.get("CHAP_C", "0x00")))
    ours = dict(initiator.respond(challenge))
    assert {k: v.lower() for k, v in ours.items()} == {k: v.lower() for k, v in answer.items()}
    initiator.verify(proof)
    return mutual


TGTD_DEFAULTS = {
    "HeaderDigest": "None,CRC32C", "DataDigest": "None,CRC32C", "MaxConnections": "1",
    "InitialR2T": "Yes", "ImmediateData": "Yes", "MaxBurstLength": "262144",
    "FirstBurstLength": "65536", "DefaultTime2Wait": "2", "DefaultTime2Retain": "20",
    "MaxOutstandingR2T": "1", "DataPDUInOrder": "Yes", "DataSequenceInOrder": "Yes",
    "ErrorRecoveryLevel": "0",
}
"""tgtd's operational settings, as its answers show; HeaderDigest is forced to CRC32C
on the CHAP target."""


def check_negotiation(login: list[CapturedPdu], facts: dict[str, object]) -> None:
    """Replay the operational stage through harness negotiations: as the initiator,
    every answer of tgtd is legal and lands in the parameters; as a target with
    tgtd's settings, the harness answers what tgtd answered (RFC 7143 differs only on
    the obsolete marker keys and on keys irrelevant to a discovery session)."""
    request = next(p for p in login if p.from_initiator and p.layer.csg == 1)
    answer = next(p for p in login if not p.from_initiator and p.layer.csg == 1)
    offered = [(k, v) for k, v in decode_keys(bytes(request.layer.data))
               if k not in SECURITY_KEYS]
    replies = decode_keys(bytes(answer.layer.data))

    initiator = Negotiation(role="initiator", preferences=dict(offered))
    assert initiator.offer([k for k, _ in offered]) == offered
    assert initiator.receive(replies) == []
    assert not initiator.pending
    agreed = dict(replies)
    params = initiator.parameters
    assert params.header_digest == (agreed["HeaderDigest"] == "CRC32C")
    assert params.initial_r2t == (agreed["InitialR2T"] == "Yes")
    assert params.first_burst_length == int(agreed["FirstBurstLength"])
    assert params.max_burst_length == int(agreed["MaxBurstLength"])
    assert params.default_time2retain == int(agreed["DefaultTime2Retain"])

    preferences = dict(TGTD_DEFAULTS)
    chap_target = facts["targets"][0]  # type: ignore[index]
    if login[0].keys.get("TargetName") == chap_target:
        preferences["HeaderDigest"] = "CRC32C"
    target = Negotiation(role="target", preferences=preferences)
    ours = dict(target.receive(offered))
    for key, value in ours.items():
        if key in OBSOLETE_KEYS:
            assert value == REJECT
        elif value != IRRELEVANT:
            assert value == agreed[key], key


def check_commands(flow: list[CapturedPdu]) -> None:
    commands = [p.layer for p in flow if isinstance(p.layer, layers.ISCSIScsiCommand)]
    for command in commands:
        replies = [p.layer for p in flow if not p.from_initiator
                   and p.layer.initiator_task_tag == command.initiator_task_tag]
        status = [r for r in replies if isinstance(r, layers.ISCSIScsiResponse)
                  or (isinstance(r, layers.ISCSIDataIn) and r.status_present)]
        assert len(status) == 1, f"command {command.initiator_task_tag:#x} has no single status"
        data_in = b"".join(bytes(r.data) for r in replies if isinstance(r, layers.ISCSIDataIn))
        assert len(data_in) <= command.expected_data_transfer_length
        if command.cdb[0] == INQUIRY and command.cdb[1] & 1 == 0 and status[0].status == 0:
            assert command.read == 1 and command.final == 1
            assert data_in[8:16] == b"IET     "  # T10 vendor of tgtd's LUNs
    sns = [c.cmd_sn for c in commands if not c.immediate]
    assert sns == list(range(sns[0], sns[0] + len(sns))) if sns else True
    stat_sns = [p.layer.stat_sn for p in flow if isinstance(p.layer, layers.ISCSIScsiResponse)]
    assert stat_sns == sorted(stat_sns)


# ------------------------------------------------------------------ live and recorded


def test_recorded_tgtd_conversation_dissects() -> None:
    facts = json.loads(RECORDED_FACTS.read_text())
    pdus, payload_bytes = dissect(rdpcap(str(RECORDED)), int(facts["port"]))
    check_conversation(pdus, payload_bytes, facts)
    assert any(isinstance(p.layer, layers.ISCSILogoutResponse) for p in pdus)


@pytest.fixture
def capture_tools() -> None:
    for tool in ("iscsi-inq", "iscsi-ls"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed: install Debian package libiscsi-bin")
    if os.geteuid() != 0:
        pytest.skip("sniffing loopback needs root (CAP_NET_RAW)")


@pytest.mark.needs_root
@pytest.mark.usefixtures("capture_tools")
def test_live_tgtd_conversation_dissects(tgtd_target_factory: Callable[..., Any],
                                         tmp_path: Path) -> None:
    secret, target_secret = secrets.token_hex(8), secrets.token_hex(8)
    user = f"init-{secrets.token_hex(3)}"
    chap_target = tgtd_target_factory(name="chap", chap=TgtdChap(user, secret))
    chap_target.set_param("HeaderDigest", "CRC32C")  # tgtd then refuses None
    mutual_target = tgtd_target_factory(
        name="mutual", chap=TgtdChap(user, secret, f"tgt-{user}", target_secret))
    plain_target = tgtd_target_factory(name="plain")
    login = f"{user}%{secret}@"
    mutual = f"?target_user=tgt-{user}&target_password={target_secret}"
    portal = chap_target.portal
    packets, outputs = capture_conversation(chap_target.port, [
        ["iscsi-inq", f"iscsi://{login}{portal}/{chap_target.iqn}/{chap_target.lun}"],
        ["iscsi-inq", f"iscsi://{login}{portal}/{mutual_target.iqn}/1{mutual}"],
        ["iscsi-ls", "-s", f"iscsi://{login}{portal}"],
    ])
    assert "Vendor:IET" in outputs[0].replace(" ", "")
    facts = {"port": chap_target.port,
             "targets": [chap_target.iqn, mutual_target.iqn, plain_target.iqn],
             "chap_user": user, "chap_secret": secret, "chap_target_user": f"tgt-{user}",
             "chap_target_secret": target_secret,
             # two iscsi-inq, then iscsi-ls: discovery plus one session per target
             "connections": 6, "header_digest_connections": 2, "mutual_chap_connections": 1}
    wrpcap(str(tmp_path / "tgtd-libiscsi.pcap"), packets)  # to refresh tests/data/iscsi
    (tmp_path / "tgtd-libiscsi.json").write_text(json.dumps(facts, indent=1))
    pdus, payload_bytes = dissect(packets, chap_target.port)
    check_conversation(pdus, payload_bytes, facts)
