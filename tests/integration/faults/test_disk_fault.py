"""Disk faults speak the node's management API: POST to apply, DELETE by id to heal, GET to
verify; a node that is not running holds nothing to heal.

The node here is a tiny HTTP endpoint implementing the proposed ``/v1/faults/disk`` routes
(see harness/faults/disk.py) in this process, registered in a lab state as a running node.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from harness.faults import DiskFault, FaultError, FaultJournal, heal_journal
from harness.lab.node_process import NodeProcess, process_start_ticks
from harness.lab.state import LabRecord, LabState

TOKEN = "t0ken"


class DiskFaults(BaseHTTPRequestHandler):
    active: dict[str, dict[str, Any]] = {}

    def _reply(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._reply(401, {"error": "bad token"})
            return False
        return True

    def do_POST(self) -> None:
        if self._authorized():
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            self.active[body["id"]] = body
            self._reply(201, body)

    def do_DELETE(self) -> None:
        if self._authorized():
            fid = self.path.rsplit("/", 1)[1]
            if self.active.pop(fid, None) is None:
                self._reply(404, {"error": f"no disk fault {fid}"})
            else:
                self._reply(200, {"deleted": fid})

    def do_GET(self) -> None:
        if self._authorized():
            self._reply(200, list(self.active.values()))

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def node_api(tmp_path: Path) -> Iterator[Path]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), DiskFaults)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state = LabState(tmp_path / "lab")
    state.create()
    (state.root / "token").write_text(TOKEN)
    ready = tmp_path / "ready.json"
    ready.write_text(json.dumps({"management": f"http://127.0.0.1:{server.server_port}"}))
    node = NodeProcess(
        "SWS-Store1",
        ("node",),
        str(tmp_path),
        str(tmp_path / "log"),
        str(ready),
        pid=os.getpid(),
        start_ticks=process_start_ticks(os.getpid()),
    )
    state.save(LabRecord("lab.toml", "loopback", "lab", nodes={"SWS-Store1": node}))
    DiskFaults.active = {}
    try:
        yield state.root
    finally:
        server.shutdown()
        server.server_close()


def test_eio_range_is_applied_then_healed_by_id(node_api: Path) -> None:
    journal = FaultJournal(node_api / "faults.jsonl")
    fault = DiskFault(
        "SWS-Store1",
        "iqn.2008-08.com.example:t",
        0,
        "eio",
        lba=100,
        count=8,
        state_dir=str(node_api),
        journal=journal,
    )
    with fault:
        [active] = DiskFaults.active.values()
        assert active == {
            "id": fault.id,
            "target": "iqn.2008-08.com.example:t",
            "lun": 0,
            "kind": "eio",
            "delay_ms": 0.0,
            "lba": 100,
            "count": 8,
        }
    assert DiskFaults.active == {} and journal.open_faults() == []


def test_journal_heal_after_the_injector_died_and_twice(node_api: Path) -> None:
    journal = FaultJournal(node_api / "faults.jsonl")
    DiskFault(
        "SWS-Store1",
        "iqn.2008-08.com.example:t",
        0,
        "slow",
        delay_ms=200,
        state_dir=str(node_api),
        journal=journal,
    ).inject()
    assert len(DiskFaults.active) == 1
    assert [o.healed for o in heal_journal(journal)] == [True]
    assert DiskFaults.active == {}
    assert heal_journal(journal) == []


def test_a_node_that_is_down_holds_no_disk_fault(node_api: Path) -> None:
    journal = FaultJournal(node_api / "faults.jsonl")
    journal.append(
        "inject",
        "disk-x",
        kind="disk",
        target="t",
        params={},
        undo={"state_dir": str(node_api / "gone"), "host": "SWS-Store1", "id": "x"},
    )
    assert [o.healed for o in heal_journal(journal)] == [True]


def test_bad_parameters_are_refused(node_api: Path) -> None:
    with pytest.raises(FaultError, match="needs delay_ms"):
        DiskFault("SWS-Store1", "iqn.x:t", 0, "slow", state_dir=str(node_api))
    with pytest.raises(FaultError, match="needs a range"):
        DiskFault("SWS-Store1", "iqn.x:t", 0, "eio", state_dir=str(node_api))
    with pytest.raises(FaultError, match="unknown disk fault"):
        DiskFault("SWS-Store1", "iqn.x:t", 0, "melt", state_dir=str(node_api))


def test_a_fault_the_node_already_forgot_counts_as_healed(node_api: Path) -> None:
    journal = FaultJournal(node_api / "faults.jsonl")
    fault = DiskFault("SWS-Store1", "iqn.2008-08.com.example:t", 0, "nospace",
                      state_dir=str(node_api), journal=journal).inject()
    DiskFaults.active.clear()  # e.g. the node restarted: its faults died with it (404 on DELETE)
    fault.heal()
    assert journal.open_faults() == []
