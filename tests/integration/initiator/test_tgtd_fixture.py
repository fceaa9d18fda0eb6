"""The tgtd fixture itself, checked with an independent initiator (libiscsi's tools).

If these fail, every test built on ``tgtd_target`` is suspect, so they use
nothing of the harness's own initiator.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from harness.peers.tgtd import TGTD_SOCKET_DIR, TgtdDaemon, TgtdError, TgtdTarget, start_tgtd


def _libiscsi(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} not installed: install Debian package libiscsi-bin")
    return path


def test_target_is_listed_by_sendtargets(tgtd_target: TgtdTarget) -> None:
    out = subprocess.run(
        [_libiscsi("iscsi-ls"), f"iscsi://{tgtd_target.portal}"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout
    assert tgtd_target.iqn in out
    shown = tgtd_target.show()
    assert shown.startswith(f"Target {tgtd_target.tid}: {tgtd_target.iqn}")
    assert str(tgtd_target.image) in shown and "ALL" in shown


def test_lun_is_file_backed_with_requested_size(tgtd_target_factory) -> None:
    target = tgtd_target_factory(luns=2, lun_size=8 * 1024 * 1024)
    assert target.luns == [1, 2]
    for image in target.images.values():
        assert image.stat().st_size == 8 * 1024 * 1024
    out = subprocess.run(
        [_libiscsi("iscsi-inq"), target.url(2)],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout
    assert "IET" in out  # tgtd's default vendor identification


def test_chap_target_refuses_login_without_secret(tgtd_target_factory) -> None:
    target = tgtd_target_factory(chap=True)
    assert target.chap is not None
    refused = subprocess.run([_libiscsi("iscsi-inq"), target.url()],
                             capture_output=True, text=True, timeout=30, check=False)
    assert refused.returncode != 0
    url = (f"iscsi://{target.chap.user}%{target.chap.secret}@{target.portal}/"
           f"{target.iqn}/{target.lun}")
    accepted = subprocess.run([_libiscsi("iscsi-inq"), url],
                              capture_output=True, text=True, timeout=30, check=False)
    assert accepted.returncode == 0, accepted.stderr


def test_acl_limits_initiators(tgtd_target_factory) -> None:
    allowed = "iqn.2026-11.test.splitbrain:allowed"
    target = tgtd_target_factory(initiators=[allowed])
    ok = subprocess.run([_libiscsi("iscsi-inq"), "-i", allowed, target.url()],
                        capture_output=True, text=True, timeout=30, check=False)
    denied = subprocess.run([_libiscsi("iscsi-inq"), "-i", allowed + "-not", target.url()],
                            capture_output=True, text=True, timeout=30, check=False)
    assert ok.returncode == 0, ok.stderr
    assert denied.returncode != 0


def test_deleted_target_takes_its_image_with_it(tgtd: TgtdDaemon) -> None:
    target = tgtd.new_target()
    image = target.image
    assert image.exists()
    tgtd.delete_target(target.tid)
    assert not image.exists()
    assert target.iqn not in tgtd.tgtadm("--op", "show", "--mode", "target")


def test_private_daemon_stops_and_leaves_no_files(tgtd: TgtdDaemon) -> None:
    daemon = start_tgtd()
    workdir, control = daemon.workdir, daemon.control_port
    assert daemon.port != tgtd.port and control != tgtd.control_port
    daemon.new_target()
    daemon.stop()
    assert daemon.process.poll() is not None
    assert not workdir.exists()
    assert not list(TGTD_SOCKET_DIR.glob(f"socket.{control}*"))


def test_sync_backing_store_is_opened_o_sync(tgtd_target_factory) -> None:
    """bench/ha_mirror.py compares the write-through reference node with a tgtd whose
    backing file is O_SYNC: tgtd must say it opened it so."""
    target = tgtd_target_factory(bsoflags="sync")
    assert "Backing store flags: sync" in target.show()
    cached = tgtd_target_factory()
    assert "Backing store flags: sync" not in cached.show()


def test_unknown_backing_store_flag_is_refused(tgtd) -> None:
    with pytest.raises(TgtdError, match="bsoflags 'fsync'"):
        tgtd.new_target(bsoflags="fsync")
