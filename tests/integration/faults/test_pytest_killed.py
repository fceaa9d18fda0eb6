"""``kill -9`` of a pytest run in the middle of a black-hole fault on the session lab, then
``splitbrain heal`` (finding the lab's journal by itself) restores the link; the orphaned lab
is then reaped, leaving no process or file behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from harness.lab.backends import open_lab, reap_orphan_labs
from harness.lab.proxy import ProxyControl

REPO = Path(__file__).parents[3]
LAB = REPO / "fixtures" / "inventories" / "lab.toml"

INNER = textwrap.dedent("""
    import time
    from pathlib import Path

    def test_holds_a_black_hole(sut):
        sut.faults.blackhole("iscsi1/SWS-Store1").inject()
        marker = Path(__file__).with_name("lab-state")
        marker.write_text(str(sut.lab.state.root))
        time.sleep(600)
""")


def wait_for(path: Path, deadline_s: float = 120.0) -> str:
    for attempt in Retrying(
        stop=stop_after_delay(deadline_s),
        wait=wait_fixed(0.1),
        retry=retry_if_exception_type(FileNotFoundError),
        reraise=True,
    ):
        with attempt:
            return path.read_text()
    raise AssertionError("unreachable")


def link_mode(state: Path, link: str) -> str:
    endpoint = json.loads((state / "proxy.json").read_text())
    return ProxyControl.from_endpoint(endpoint).status()[link]["state"]["mode"]


def inner_pytest(tmp_path: Path, source: str, *options: str) -> tuple[list[str], dict[str, str],
                                                                     Path]:
    """Command line, environment and directory of a pytest run of ``source`` on the lab,
    isolated in ``tmp_path`` (its own runtime and state directories)."""
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "test_inner.py").write_text(source)
    (tmp_path / "run").mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(REPO),
        "XDG_RUNTIME_DIR": str(tmp_path / "run"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "HOME": str(tmp_path),
    }
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *options,
            "--rootdir", str(inner), "--inventory", str(LAB), str(inner)]
    return argv, env, inner


@pytest.mark.slow
def test_heal_after_kill_9_of_a_pytest_session(tmp_path: Path) -> None:
    if shutil.which("iscsi-inq") is None:
        pytest.skip("needs the Debian package libiscsi-bin (iscsi-inq)")
    argv, env, inner = inner_pytest(tmp_path, INNER)
    run = subprocess.Popen(
        argv,
        cwd=inner,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    state: Path | None = None
    try:
        state = Path(wait_for(inner / "lab-state"))
        assert state.is_relative_to(tmp_path / "run")
        assert link_mode(state, "iscsi1/SWS-Store1") == "blackhole"
        os.killpg(run.pid, signal.SIGKILL)  # the whole run, at once: no teardown of any kind
        run.wait(30)
        assert link_mode(state, "iscsi1/SWS-Store1") == "blackhole"  # nobody healed it

        heal = subprocess.run(
            [sys.executable, "-m", "harness", "heal"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert heal.returncode == 0, heal.stdout + heal.stderr
        assert "healed link iscsi1/SWS-Store1" in heal.stdout
        assert link_mode(state, "iscsi1/SWS-Store1") == "pass"
        record = open_lab(state).record()
        link = record.links["iscsi1/SWS-Store1"]
        target = "iqn.2008-08.com.starwindsoftware:sws-store1-ha1"
        inq = subprocess.run(
            ["iscsi-inq", f"iscsi://{link.listen[0]}:{link.listen[1]}/{target}/0"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert inq.returncode == 0, inq.stderr

        assert reap_orphan_labs(tmp_path / "run" / f"splitbrain-{os.getuid()}") == [state]
        assert not state.exists()
        assert not any(n.alive for n in record.nodes.values())
        assert record.proxy is not None and not record.proxy.alive
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
        if state is not None and state.exists():
            open_lab(state).down()


LEAKY = textwrap.dedent("""
    from pathlib import Path

    def test_leaves_faults_open(sut):
        Path(__file__).with_name("lab-state").write_text(str(sut.lab.state.root))
        sut.faults.blackhole("sync").inject()  # never healed by the test itself
        sut.faults.freeze("SWS-Store2").inject()
""")


@pytest.mark.slow
def test_session_end_heals_and_takes_the_lab_down(tmp_path: Path) -> None:
    argv, env, inner = inner_pytest(tmp_path, LEAKY, "-W", "error::fixtures.lab.HealWarning")
    done = subprocess.run(
        argv,
        cwd=inner,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    state = Path((inner / "lab-state").read_text())
    assert not state.exists()  # the lab is down and its state removed
    base = tmp_path / "run" / f"splitbrain-{os.getuid()}"
    assert not base.exists() or not any(base.iterdir())
    from tests.integration.lab.conftest import lab_processes

    assert lab_processes(state) == []
