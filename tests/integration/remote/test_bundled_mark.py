"""The bundled target's administrator override over SSH: the mark-synchronized snippet,
run as a storage host runs it, against a stand-in management API on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json

from harness.remote.replicas.bundled import BundledReplicaStates
from harness.remote.result import CommandResult
from tests.unit.remote.test_replica_states import site


def test_bundled_marks_a_replica_through_its_api_with_a_stdlib_snippet(tmp_path):
    """The administrator's override after a split brain: the snippet, run as the host would
    run it, POSTs mark-synchronized for the device to the node's own API with its token."""
    import http.server
    import subprocess
    import threading

    seen: list[tuple[str, str, str]] = []

    class Api(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            seen.append(("POST", self.path, self.headers.get("Authorization", "")))
            body = b'{"alias": "HA1", "state": "Synchronized"}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            return None

    server = http.server.HTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        (tmp_path / "node.json").write_text(json.dumps(
            {"management": f"http://127.0.0.1:{server.server_port}/"}))
        (tmp_path / "token").write_text("s3cret\n")
        inv = site("bundled", f'ready_file = "{tmp_path}/node.json"\n'
                              f'token_file = "{tmp_path}/token"\n')
        ran: list[tuple[str, list[str]]] = []

        class Driver:
            def run_argv(self, argv, *, check=True, timeout=None):
                ran.append((self.host, list(argv)))
                out = subprocess.run(["python3", *argv[1:]], capture_output=True, text=True,
                                     timeout=30)
                return CommandResult(self.host, "x", out.returncode, out.stdout, out.stderr,
                                     1).check()

        def opener(inventory, host):
            d = Driver()
            d.host = host
            return contextlib.nullcontext(d)

        line = BundledReplicaStates(inv, opener=opener).mark_synchronized("HA1", "Store1")
    finally:
        server.shutdown()
    assert seen == [("POST", "/v1/ha/HA1/mark-synchronized", "Bearer s3cret")]
    assert [h for h, _ in ran] == ["Store1"] and "import harness" not in ran[0][1][2]
    assert line.startswith("marked HA1@Store1 synchronized")
