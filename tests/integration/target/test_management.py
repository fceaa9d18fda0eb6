"""The management API over real HTTP on loopback: token auth, routing, bounded requests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from harness.target.management import (
    ApiError,
    ManagementApi,
    ManagementClient,
    ManagementError,
)


class FakeNode:
    """A NodeControl that records what the API asked of it."""

    def __init__(self) -> None:
        self.targets: dict[str, dict[str, Any]] = {}
        self.shutdowns = 0

    def status(self) -> dict[str, Any]:
        return {"node": "n1", "targets": len(self.targets)}

    def list_targets(self) -> list[dict[str, Any]]:
        return list(self.targets.values())

    async def create_target(self, spec: dict[str, Any]) -> dict[str, Any]:
        if spec["iqn"] in self.targets:
            raise ApiError(409, "exists")
        self.targets[spec["iqn"]] = {"iqn": spec["iqn"], "luns": []}
        return self.targets[spec["iqn"]]

    async def delete_target(self, iqn: str, force: bool) -> None:
        if iqn not in self.targets:
            raise ApiError(404, f"no target {iqn}")
        del self.targets[iqn]

    async def create_lun(self, iqn: str, spec: dict[str, Any]) -> dict[str, Any]:
        self.targets[iqn]["luns"].append(spec["lun"])
        return self.targets[iqn]

    async def delete_lun(self, iqn: str, lun: int, force: bool) -> None:
        self.targets[iqn]["luns"].remove(lun)

    def list_sessions(self) -> list[dict[str, Any]]:
        return [{"initiator": "iqn.x:y", "isid": "0x023d00000001", "tsih": 1}]

    def request_shutdown(self) -> None:
        self.shutdowns += 1


@pytest.fixture
def api() -> Iterator[tuple[ManagementApi, FakeNode]]:
    node = FakeNode()
    loop = asyncio.new_event_loop()
    server = ManagementApi(node, token="s3cret-token")
    loop.run_until_complete(server.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield server, node
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_requests_need_the_token(api: tuple[ManagementApi, FakeNode]) -> None:
    server, _ = api
    with pytest.raises(ManagementError, match="401"):
        ManagementClient(server.url, "wrong").status()
    assert ManagementClient(server.url, "s3cret-token").status() == {"node": "n1", "targets": 0}


def test_no_token_no_server() -> None:
    with pytest.raises(ManagementError, match="no token"):
        ManagementApi(FakeNode(), token="")


def test_target_and_lun_lifecycle(api: tuple[ManagementApi, FakeNode]) -> None:
    server, node = api
    client = ManagementClient(server.url, "s3cret-token")
    iqn = "iqn.2026-11.org.splitbrain:t1"
    client.create_target({"iqn": iqn})
    with pytest.raises(ManagementError, match="409 exists"):
        client.create_target({"iqn": iqn})
    assert client.create_lun(iqn, {"lun": 3})["luns"] == [3]
    client.delete_lun(iqn, 3)
    assert client.targets() == [{"iqn": iqn, "luns": []}]
    client.delete_target(iqn)
    with pytest.raises(ManagementError, match="404"):
        client.delete_target(iqn)
    assert client.sessions()[0]["tsih"] == 1
    assert client.shutdown() == {"shutting_down": True}
    client.status()  # the shutdown was scheduled for the loop turn after the answer
    assert node.shutdowns == 1


def test_unknown_route_and_wrong_method(api: tuple[ManagementApi, FakeNode]) -> None:
    server, _ = api
    client = ManagementClient(server.url, "s3cret-token")
    with pytest.raises(ManagementError, match="404 no such endpoint"):
        client.request("GET", "/v1/nothing")
    with pytest.raises(ManagementError, match="405"):
        client.request("PUT", "/v1/status")


def test_extension_routes(api: tuple[ManagementApi, FakeNode]) -> None:
    server, _ = api

    async def replica(r: Any) -> Any:
        return {"device": r.params["name"], "state": "synchronized"}

    server.add_route("GET", "/v1/devices/{name}", replica)
    got = ManagementClient(server.url, "s3cret-token").request("GET", "/v1/devices/HA1")
    assert got == {"device": "HA1", "state": "synchronized"}


def test_oversized_header_is_refused_without_killing_the_server(
        api: tuple[ManagementApi, FakeNode]) -> None:
    import socket
    server, _ = api
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"GET /v1/status HTTP/1.1\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")
        reply = s.recv(4096)
    assert reply.startswith(b"HTTP/1.1 400")
    assert ManagementClient(server.url, "s3cret-token").status()["node"] == "n1"
