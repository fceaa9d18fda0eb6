"""The target's CHAP step in the security stage, on top of ``harness.iscsi.chap``.

Model: ``TargetChap`` holds one target's configured CHAP credentials (the
initiator's name and secret, and for mutual CHAP the target's own) and turns each
batch of received CHAP keys into the keys to answer: first the challenge (after
``CHAP_A``), then the verdict (after ``CHAP_N``/``CHAP_R``, with the target's own
response when the initiator challenged back). A wrong name or secret, a
reflected challenge or a malformed key raises ``AuthenticationError``, which the
login turns into status 0x0201 (authentication failure).
"""

from __future__ import annotations

from collections.abc import Mapping

from harness.iscsi.chap import ChapAlgorithm, ChapCredentials, ChapTarget
from harness.iscsi.errors import AuthenticationError
from harness.target.config import Chap


class TargetChap:
    def __init__(self, config: Chap) -> None:
        self.config = config
        mutual = (ChapCredentials(config.mutual_username, config.mutual_secret.encode())
                  if config.mutual_username and config.mutual_secret else None)
        secrets = {config.username: config.secret.encode()}
        self._chap = ChapTarget(secrets, credentials=mutual,
                                algorithms=(ChapAlgorithm.SHA256, ChapAlgorithm.SHA1,
                                            ChapAlgorithm.MD5))
        self._challenged = False

    def step(self, received: Mapping[str, str]) -> tuple[bool, list[tuple[str, str]]]:
        """(authenticated, keys to send) for one batch of CHAP keys."""
        if not self._challenged:
            if "CHAP_A" not in received:
                raise AuthenticationError("initiator sent CHAP keys before CHAP_A")
            self._challenged = True
            return False, self._chap.challenge(received)
        return True, self._chap.verify(received)
