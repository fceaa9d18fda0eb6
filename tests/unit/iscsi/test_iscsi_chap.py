"""CHAP: value encodings, known responses, one-way and mutual exchanges between
:class:`ChapInitiator` and :class:`ChapTarget`, and every refusal."""

from __future__ import annotations

import hashlib

import pytest

from harness.iscsi.chap import (
    ChapAlgorithm,
    ChapCredentials,
    ChapInitiator,
    ChapTarget,
    chap_response,
    decode_binary,
    encode_binary,
)
from harness.iscsi.errors import AuthenticationError

USER = ChapCredentials("node1", b"initiator-secret-12")
TARGET = ChapCredentials("iqn.2026-01.org.example:ha1", b"target-secret-123")


def test_binary_values_in_hex_and_base64() -> None:
    value = bytes.fromhex("00ff10a5")
    assert encode_binary(value) == "0x00ff10a5"
    assert encode_binary(value, use_base64=True) == "0bAP8QpQ=="
    for text in ("0x00ff10a5", "0X00FF10A5", "0bAP8QpQ=="):
        assert decode_binary(text) == value
    assert decode_binary("0xf") == b"\x0f"  # odd digit count: leading zero implied
    for bad in ("00ff", "0xzz", "0b!!!", "plain"):
        with pytest.raises(AuthenticationError):
            decode_binary(bad)


def test_known_responses() -> None:
    challenge = bytes(range(16))
    assert chap_response(ChapAlgorithm.MD5, 1, b"secret", challenge) == hashlib.md5(
        b"\x01secret" + challenge).digest()
    assert chap_response(ChapAlgorithm.SHA256, 255, b"secret", challenge).hex() == (
        hashlib.sha256(b"\xffsecret" + challenge).hexdigest())
    assert ChapAlgorithm.MD5.size == 16 and ChapAlgorithm.SHA256.size == 32


@pytest.mark.parametrize("algorithms", [
    (ChapAlgorithm.MD5,), (ChapAlgorithm.SHA256, ChapAlgorithm.MD5), (ChapAlgorithm.SHA1,),
    (ChapAlgorithm.SHA3_256,),
])
def test_one_way_chap(algorithms: tuple[ChapAlgorithm, ...]) -> None:
    initiator = ChapInitiator(USER, algorithms=algorithms)
    target = ChapTarget({USER.name: USER.secret}, algorithms=list(ChapAlgorithm))
    challenge = dict(target.challenge(dict(initiator.start())))
    assert challenge["CHAP_A"] == str(int(algorithms[0]))
    assert len(decode_binary(challenge["CHAP_C"])) >= 16
    answer = dict(initiator.respond(challenge))
    assert set(answer) == {"CHAP_N", "CHAP_R"}
    assert target.verify(answer) == []
    assert target.authenticated_name == USER.name
    initiator.verify({})


def test_mutual_chap() -> None:
    initiator = ChapInitiator(USER, target=TARGET)
    target = ChapTarget({USER.name: USER.secret}, credentials=TARGET)
    answer = dict(initiator.respond(dict(target.challenge(dict(initiator.start())))))
    assert {"CHAP_I", "CHAP_C"} <= set(answer)
    proof = dict(target.verify(answer))
    assert proof["CHAP_N"] == TARGET.name
    initiator.verify(proof)


def test_wrong_secret_and_unknown_name_are_refused() -> None:
    target = ChapTarget({USER.name: USER.secret})
    for creds in (ChapCredentials(USER.name, b"wrong-secret-000"),
                  ChapCredentials("stranger", USER.secret)):
        initiator = ChapInitiator(creds)
        answer = dict(initiator.respond(dict(target.challenge(dict(initiator.start())))))
        with pytest.raises(AuthenticationError):
            target.verify(answer)


def test_target_with_wrong_mutual_secret_is_refused_by_the_initiator() -> None:
    initiator = ChapInitiator(USER, target=TARGET)
    impostor = ChapTarget({USER.name: USER.secret},
                          credentials=ChapCredentials(TARGET.name, b"not-the-right-one"))
    answer = dict(initiator.respond(dict(impostor.challenge(dict(initiator.start())))))
    with pytest.raises(AuthenticationError):
        initiator.verify(dict(impostor.verify(answer)))


def test_target_refuses_a_reflected_challenge() -> None:
    target = ChapTarget({USER.name: USER.secret}, credentials=TARGET)
    challenge = dict(target.challenge({"CHAP_A": "5"}))
    own = decode_binary(challenge["CHAP_C"])
    response = chap_response(ChapAlgorithm.MD5, int(challenge["CHAP_I"]), USER.secret, own)
    with pytest.raises(AuthenticationError, match="reflection"):
        target.verify({"CHAP_N": USER.name, "CHAP_R": encode_binary(response),
                       "CHAP_I": challenge["CHAP_I"], "CHAP_C": challenge["CHAP_C"]})


def test_mutual_request_without_target_credentials_is_refused() -> None:
    initiator = ChapInitiator(USER, target=TARGET)
    target = ChapTarget({USER.name: USER.secret})
    answer = dict(initiator.respond(dict(target.challenge(dict(initiator.start())))))
    with pytest.raises(AuthenticationError, match="mutual"):
        target.verify(answer)


def test_algorithm_mismatches_are_refused() -> None:
    with pytest.raises(AuthenticationError):
        ChapTarget({}, algorithms=[ChapAlgorithm.MD5]).challenge({"CHAP_A": "7,99"})
    initiator = ChapInitiator(USER, algorithms=[ChapAlgorithm.SHA256])
    with pytest.raises(AuthenticationError):
        initiator.respond({"CHAP_A": "5", "CHAP_I": "1", "CHAP_C": "0x" + "00" * 16})
    with pytest.raises(AuthenticationError):
        initiator.respond({"CHAP_A": "7", "CHAP_I": "300", "CHAP_C": "0x" + "00" * 16})
    with pytest.raises(AuthenticationError):
        initiator.respond({"CHAP_A": "7", "CHAP_I": "1"})  # no challenge


def test_credentials_hide_the_secret() -> None:
    assert "secret-12" not in repr(USER)
    assert ChapCredentials("n", "text-secret").secret == b"text-secret"
    with pytest.raises(AuthenticationError):
        ChapCredentials("n", b"")
