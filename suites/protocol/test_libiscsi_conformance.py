"""libiscsi's iscsi-test-cu against the bundled reference target, held to a floor.

The whole ``ALL`` family runs (about a minute on two cores) with ``--dataloss`` and
two initiator names against a fresh node. The node must survive the run, and the
number of tests that pass (skips not counted) must not fall below the floor
recorded in ``libiscsi_floor.json`` by ``python -m suites.protocol.libiscsi
--write`` (which also writes the tables of docs/conformance.md, next to tgtd's).
"""

from __future__ import annotations

import shutil

import pytest

from harness.peers.reference_target import ReferenceTargetFactory, lun_target
from suites.protocol.libiscsi import run_suite


@pytest.mark.slow
def test_iscsi_test_cu_pass_count_holds_the_floor(
        reference_target_factory: ReferenceTargetFactory) -> None:
    if shutil.which("iscsi-test-cu") is None:
        pytest.skip("needs the Debian package libiscsi-bin (iscsi-test-cu)")
    node = reference_target_factory.start(name="conformance", addresses=("127.0.0.1",),
                                          targets=(lun_target(size="64MiB"),))
    run = run_suite(node.url(), timeout=600)
    assert node.alive(), f"the target died during iscsi-test-cu: {node.log_text()[-2000:]}"
    short = run.short_of_floor()
    assert not short, short
