"""The node process as an operator sees it: management API, CLI, start and stop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.iscsi import codec
from harness.iscsi.codes import AsyncEvent
from harness.peers.reference_target import TOKEN_ENV, ReferenceTarget, ReferenceTargetFactory
from harness.scsi.report_luns import ReportLunsData
from harness.scsi.sense import SenseData
from harness.scsi.status import ScsiStatus
from harness.target.management import ManagementError
from suites.protocol.wire import RawConnection

INITIATOR = "iqn.2026-11.org.splitbrain.test:operator"


def report_luns(conn: RawConnection) -> tuple[int, ...]:
    cdb = bytes([0xA0, 0, 0, 0, 0, 0]) + (4096).to_bytes(4, "big") + bytes(2)
    got = conn.command(cdb, read_length=4096)
    assert got.status == ScsiStatus.GOOD
    return ReportLunsData.decode(got.data).luns


def test_luns_added_and_removed_through_the_api(reference_target: ReferenceTarget) -> None:
    conn = RawConnection(*reference_target.portals[0])
    try:
        assert conn.login(INITIATOR, reference_target.iqn).ok
        assert report_luns(conn) == (0,)
        api = reference_target.management
        api.create_lun(reference_target.iqn, {"lun": 3, "image": "extra.img", "size": "8MiB"})
        assert (reference_target.data_dir / "extra.img").stat().st_size == 8 << 20
        # The session learns of the change through a unit attention, then sees LUN 3.
        seen = conn.command(bytes(6))
        assert seen.status == ScsiStatus.CHECK_CONDITION
        assert (SenseData.decode(seen.sense).asc, SenseData.decode(seen.sense).ascq) in {
            (0x3F, 0x0E), (0x29, 0x00)}
        assert report_luns(conn) == (0, 3)
        with pytest.raises(ManagementError, match="409"):
            api.create_lun(reference_target.iqn, {"lun": 3, "image": "x.img", "size": "8MiB"})
        api.delete_lun(reference_target.iqn, 3)
        luns = report_luns(conn)
        if luns != (0,):   # a unit attention may come first
            luns = report_luns(conn)
        assert luns == (0,)
        assert next(t["luns"] for t in api.targets())[0]["lun"] == 0
    finally:
        conn.close()


def test_targets_created_deleted_and_forced_off(reference_target: ReferenceTarget) -> None:
    api = reference_target.management
    iqn = "iqn.2026-11.org.splitbrain.test:created-by-api"
    api.create_target({"iqn": iqn, "alias": "API", "lun": [
        {"lun": 0, "image": "api.img", "size": "4MiB"}]})
    with RawConnection(*reference_target.portals[0]) as disc:
        assert disc.login(INITIATOR).ok
        assert iqn in disc.text([("SendTargets", "All")])["TargetName"]
    conn = RawConnection(*reference_target.portals[0])
    try:
        assert conn.login(INITIATOR, iqn).ok
        with pytest.raises(ManagementError, match=r"409 .*session"):
            api.delete_target(iqn)
        api.delete_target(iqn, force=True)
        assert conn.closed_by_peer()
        assert iqn not in [t["iqn"] for t in api.targets()]
    finally:
        conn.close()
    with pytest.raises(ManagementError, match=r"400 .*iqn"):
        api.create_target({"iqn": "not a name"})


def cli(node: ReferenceTarget, *args: str, token: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, TOKEN_ENV: node.token if token is None else token}
    return subprocess.run([sys.executable, "-m", "harness", "target", *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_cli_status_sessions_and_luns(reference_target: ReferenceTarget) -> None:
    config = str(reference_target.config_path)
    status = cli(reference_target, "status", "--config", config)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["portals"] == reference_target.ready["portals"]
    with RawConnection(*reference_target.portals[0]) as conn:
        assert conn.login(INITIATOR, reference_target.iqn).ok
        sessions = json.loads(cli(reference_target, "sessions", "--config", config).stdout)
        assert [s["initiator"] for s in sessions] == [INITIATOR]
    created = cli(reference_target, "create-lun", "--config", config, "--target",
                  reference_target.iqn, "--lun", "5", "--size", "1MiB")
    assert created.returncode == 0, created.stderr
    assert 5 in [lun["lun"] for lun in json.loads(created.stdout)["luns"]]
    assert cli(reference_target, "delete-lun", "--config", config, "--target",
               reference_target.iqn, "--lun", "5").returncode == 0
    refused = cli(reference_target, "status", "--config", config, token="wrong-token")
    assert refused.returncode != 0
    assert "401" in refused.stderr and "Traceback" not in refused.stderr


def test_node_refuses_to_start_without_a_token(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text(f'[node]\nname = "n"\ndata_dir = "{tmp_path}"\n'
                      '[[portal]]\naddress = "127.0.0.1"\nport = 0\n'
                      '[management]\ntoken_env = "SB_TEST_ABSENT_TOKEN"\n')
    env = {k: v for k, v in os.environ.items() if k != "SB_TEST_ABSENT_TOKEN"}
    done = subprocess.run([sys.executable, "-m", "harness.target", "serve", "--config",
                           str(config)], env=env, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode != 0
    assert "SB_TEST_ABSENT_TOKEN" in done.stderr and "Traceback" not in done.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('[node]\nname = "n"\n')
    done = subprocess.run([sys.executable, "-m", "harness.target", "serve", "--config",
                           str(bad)], env=env, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 2 and "node.data_dir" in done.stderr


def test_sigterm_stops_cleanly(reference_target_factory: ReferenceTargetFactory) -> None:
    node = reference_target_factory.start(name="stopping")
    conn = RawConnection(*node.portals[0])
    try:
        assert conn.login(INITIATOR, node.iqn).ok
        assert node.stop() == 0
        notice = conn.recv()   # the session is announced as dropped, then closed
        assert isinstance(notice, codec.AsyncMessage)
        assert notice.async_event == AsyncEvent.SESSION_WILL_BE_DROPPED
        assert notice.parameter2 == 2   # Time2Wait before logging in again
        assert conn.closed_by_peer()
        assert not node.ready_file.exists()
        assert not (node.data_dir / "node.json").exists()
        assert '"event": "stopped"' in node.log_text()
        assert "Traceback" not in node.log_text()
    finally:
        conn.close()
