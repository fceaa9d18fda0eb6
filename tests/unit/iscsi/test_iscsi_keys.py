"""Text keys: encoding, continued text, every negotiation rule of RFC 7143 section 6,
and a whole initiator/target exchange."""

from __future__ import annotations

import pytest

from harness.iscsi.errors import NegotiationError, ProtocolError
from harness.iscsi.keys import (
    SessionParameters,
    TextAssembler,
    decode_keys,
    encode_keys,
    negotiate,
    resolve,
    split_text,
)
from harness.iscsi.negotiation import Negotiation


def test_encode_and_decode_keys() -> None:
    wire = encode_keys({"InitiatorName": "iqn.2026-01.org.example:host", "SessionType": "Normal"})
    assert wire == b"InitiatorName=iqn.2026-01.org.example:host\x00SessionType=Normal\x00"
    assert decode_keys(wire) == [
        ("InitiatorName", "iqn.2026-01.org.example:host"), ("SessionType", "Normal")]
    assert decode_keys(b"TargetAddress=127.0.0.1:3260,1\x00") == [
        ("TargetAddress", "127.0.0.1:3260,1")]  # '=' only splits once
    assert decode_keys(b"") == []


@pytest.mark.parametrize("bad", [b"NoEquals\x00", b"Key=value", b"B@d Key=1\x00"])
def test_malformed_text_is_a_protocol_error(bad: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_keys(bad)


def test_illegal_key_names_are_refused_when_encoding() -> None:
    with pytest.raises(NegotiationError):
        encode_keys([("has space", "1")])
    with pytest.raises(NegotiationError):
        encode_keys([("X", "a\x00b")])


def test_text_spanning_pdus_is_assembled() -> None:
    wire = encode_keys([(f"X-org.example.key{i}", "v" * 50) for i in range(20)])
    chunks = split_text(wire, 100)
    assert len(chunks) > 5 and all(len(c) <= 100 for c in chunks)
    assembler = TextAssembler()
    results = [assembler.feed(c, continue_=i < len(chunks) - 1) for i, c in enumerate(chunks)]
    assert results[:-1] == [None] * (len(chunks) - 1)
    assert results[-1] == decode_keys(wire)
    assert not assembler.pending


def test_endless_continued_text_is_refused() -> None:
    assembler = TextAssembler(limit=1000)
    assembler.feed(b"a" * 600, continue_=True)
    with pytest.raises(ProtocolError):
        assembler.feed(b"a" * 600, continue_=True)


# ------------------------------------------------------------------ acceptor rules


@pytest.mark.parametrize(("key", "offered", "own", "answer"), [
    ("HeaderDigest", "CRC32C,None", "None,CRC32C", "CRC32C"),  # the offer's order wins
    ("HeaderDigest", "CRC32C,None", "None", "None"),
    ("HeaderDigest", "CRC32C", "None", "Reject"),
    ("DataDigest", "MD5,None", "CRC32C,None", "None"),  # unknown values are skipped
    ("AuthMethod", "CHAP,None", "CHAP", "CHAP"),
    ("MaxBurstLength", "1048576", "262144", "262144"),  # minimum
    ("MaxBurstLength", "65536", "262144", "65536"),
    ("MaxBurstLength", "0x10000", "262144", "65536"),  # hex numbers
    ("DefaultTime2Wait", "0", "2", "2"),  # maximum
    ("DefaultTime2Wait", "10", "2", "10"),
    ("ErrorRecoveryLevel", "2", "0", "0"),
    ("ErrorRecoveryLevel", "3", "0", "Reject"),  # outside 0..2
    ("MaxBurstLength", "100", "262144", "Reject"),  # below 512
    ("MaxBurstLength", "lots", "262144", "Reject"),
    ("MaxOutstandingR2T", "4~16", "8", "8"),  # a range
    ("MaxOutstandingR2T", "4~16", "1", "Reject"),
    ("ImmediateData", "Yes", "No", "No"),  # and
    ("ImmediateData", "Yes", "Yes", "Yes"),
    ("InitialR2T", "No", "Yes", "Yes"),  # or
    ("InitialR2T", "No", "No", "No"),
    ("InitialR2T", "Maybe", "No", "Reject"),
    ("X-com.example.Feature", "On", None, "NotUnderstood"),
    ("OFMarker", "No", None, "Reject"),  # obsoleted by RFC 7143
    ("IFMarkInt", "2048~8192", None, "Reject"),
])
def test_acceptor_answers(key: str, offered: str, own: str | None, answer: str) -> None:
    assert negotiate(key, offered, own) == answer


def test_defaults_apply_when_the_acceptor_has_no_preference() -> None:
    assert negotiate("MaxBurstLength", "1048576") == "262144"
    assert negotiate("ImmediateData", "Yes") == "Yes"


def test_declaratives_are_not_answered_but_validated() -> None:
    assert negotiate("MaxRecvDataSegmentLength", "65536") is None
    assert negotiate("InitiatorName", "iqn.x") is None
    with pytest.raises(NegotiationError):
        negotiate("MaxRecvDataSegmentLength", "100")


def test_irrelevant_in_discovery_and_for_first_burst() -> None:
    discovery = {"SessionType": "Discovery"}
    assert negotiate("MaxBurstLength", "65536", context=discovery) == "Irrelevant"
    assert negotiate("HeaderDigest", "None", context=discovery) == "None"
    no_unsolicited = {"InitialR2T": "Yes", "ImmediateData": "No"}
    assert negotiate("FirstBurstLength", "65536", context=no_unsolicited) == "Irrelevant"


# ------------------------------------------------------------------ originator checks


@pytest.mark.parametrize(("key", "offered", "answer", "agreed"), [
    ("HeaderDigest", "CRC32C,None", "None", "None"),
    ("MaxBurstLength", "1048576", "262144", "262144"),
    ("DefaultTime2Wait", "2", "5", "5"),
    ("ImmediateData", "Yes", "No", "No"),
    ("InitialR2T", "No", "Yes", "Yes"),
    ("HeaderDigest", "CRC32C", "Reject", "None"),  # back to the default
    ("X-vendor", "1", "NotUnderstood", "NotUnderstood"),
    ("MaxBurstLength", "65536", "Irrelevant", "262144"),
])
def test_originator_resolves_legal_answers(key: str, offered: str, answer: str,
                                           agreed: str) -> None:
    assert resolve(key, offered, answer) == agreed


@pytest.mark.parametrize(("key", "offered", "answer"), [
    ("HeaderDigest", "None", "CRC32C"),  # not in the offer
    ("MaxBurstLength", "65536", "262144"),  # a minimum cannot grow
    ("DefaultTime2Wait", "5", "2"),  # a maximum cannot shrink
    ("ImmediateData", "No", "Yes"),  # and: No stays No
    ("InitialR2T", "Yes", "No"),  # or: Yes stays Yes
    ("ErrorRecoveryLevel", "2", "7"),
])
def test_originator_refuses_illegal_answers(key: str, offered: str, answer: str) -> None:
    with pytest.raises(NegotiationError):
        resolve(key, offered, answer)


# ------------------------------------------------------------------ whole exchanges


def exchange(initiator: Negotiation, target: Negotiation,
             keys: list[str]) -> list[tuple[str, str]]:
    offers = initiator.offer(keys)
    answers = target.receive(offers)
    assert initiator.receive(answers) == []
    return answers


def test_initiator_and_target_agree_on_operational_parameters() -> None:
    initiator = Negotiation(role="initiator", preferences={
        "InitiatorName": "iqn.2026-01.org.example:node1", "SessionType": "Normal",
        "TargetName": "iqn.2026-01.org.example:ha1", "HeaderDigest": "CRC32C,None",
        "DataDigest": "None", "InitialR2T": "No", "ImmediateData": "Yes",
        "MaxRecvDataSegmentLength": "262144", "MaxBurstLength": "16776192",
        "FirstBurstLength": "262144", "MaxOutstandingR2T": "8", "DefaultTime2Wait": "0",
    })
    target = Negotiation(role="target", preferences={
        "HeaderDigest": "CRC32C,None", "InitialR2T": "Yes", "MaxBurstLength": "1048576",
        "MaxRecvDataSegmentLength": "65536", "MaxOutstandingR2T": "1",
    })
    answers = dict(exchange(initiator, target, list(initiator.preferences)))
    assert "InitiatorName" not in answers and "MaxRecvDataSegmentLength" not in answers
    target_declared = target.offer(["MaxRecvDataSegmentLength"])
    assert target_declared == [("MaxRecvDataSegmentLength", "65536")]
    assert initiator.receive(target_declared) == []
    assert not initiator.pending
    for side in (initiator, target):
        p = side.parameters
        assert p.header_digest is True and p.data_digest is False
        assert p.initial_r2t is True and p.immediate_data is True
        assert p.max_burst_length == 1048576 and p.first_burst_length == 65536
        assert p.max_outstanding_r2t == 1 and p.default_time2wait == 2
    assert initiator.parameters.max_recv_data_segment_length == 262144
    assert initiator.parameters.peer_max_recv_data_segment_length == 65536
    assert target.parameters.peer_max_recv_data_segment_length == 262144
    assert target.parameters.initiator_name == "iqn.2026-01.org.example:node1"


def test_discovery_session_marks_normal_only_keys_irrelevant() -> None:
    initiator = Negotiation(role="initiator", preferences={
        "SessionType": "Discovery", "MaxBurstLength": "65536", "HeaderDigest": "None"})
    target = Negotiation(role="target")
    answers = dict(exchange(initiator, target, ["SessionType", "MaxBurstLength",
                                                "HeaderDigest"]))
    assert answers == {"MaxBurstLength": "Irrelevant", "HeaderDigest": "None"}
    assert initiator.rejected == {"MaxBurstLength": "Irrelevant"}
    assert initiator.parameters.max_burst_length == SessionParameters().max_burst_length


def test_peer_breaking_the_rules_is_a_negotiation_error() -> None:
    target = Negotiation(role="target")
    with pytest.raises(NegotiationError):
        target.receive([("MaxBurstLength", "65536"), ("MaxBurstLength", "4096")])
    with pytest.raises(NegotiationError):
        Negotiation(role="target").receive([("TargetAlias", "sneaky")])  # target-only key
    initiator = Negotiation(role="initiator", preferences={"ImmediateData": "No"})
    initiator.offer()
    with pytest.raises(NegotiationError):
        initiator.receive([("ImmediateData", "Yes")])


def test_chap_keys_are_collected_not_negotiated() -> None:
    target = Negotiation(role="target")
    assert target.receive([("CHAP_A", "5,7"), ("AuthMethod", "CHAP,None")]) == [
        ("AuthMethod", "None")]
    assert target.security == {"CHAP_A": "5,7"}
