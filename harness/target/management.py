"""The node's management API: JSON over HTTP/1.1 on loopback, bearer-token auth.

Model: the API is a table of routes (method, path pattern, handler). Each handler
gets an ``ApiRequest`` (path parameters, query, parsed JSON body) and returns a
JSON-serialisable value, or raises ``ApiError`` with an HTTP status. The node
behind it is anything implementing ``NodeControl``; the HA layer adds its own
routes with ``ManagementApi.add_route`` (device and replica endpoints) without
touching this module.

There is no default token: the server refuses to start with an empty one, and
every request must carry ``Authorization: Bearer <token>`` (compared in constant
time). Requests are bounded (header and body size, read deadline) so a
misbehaving client cannot grow the node's memory.

Routes of the base node (all under ``/v1``)::

    GET    /status                      node name, pid, uptime, portals, counts
    GET    /targets                     targets with their LUNs
    POST   /targets                     create a target  {iqn, alias, initiators, chap, lun: [...]}
    DELETE /targets/{iqn}               delete a target (?force=1 drops its sessions)
    POST   /targets/{iqn}/luns          create a LUN     {lun, image, size, serial, naa, ...}
    DELETE /targets/{iqn}/luns/{lun}    delete a LUN (the image file stays)
    GET    /sessions                    sessions: initiator, ISID, TSIH, connections, portals
    POST   /shutdown                    clean shutdown, answered before the node stops

``ManagementClient`` is the matching synchronous client (stdlib only) used by the
CLI and the test fixtures.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Protocol

from harness.errors import SplitbrainError

MAX_HEADER_BYTES = 16 * 1024
MAX_BODY_BYTES = 1024 * 1024
READ_DEADLINE_S = 10.0


class ApiError(Exception):
    """A handler's refusal: becomes ``{"error": message}`` with this HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ManagementError(SplitbrainError):
    """The management API refused a request or could not be reached."""


class NodeControl(Protocol):
    """What the management API needs from a node."""

    def status(self) -> dict[str, Any]: ...
    def list_targets(self) -> list[dict[str, Any]]: ...
    async def create_target(self, spec: dict[str, Any]) -> dict[str, Any]: ...
    async def delete_target(self, iqn: str, force: bool) -> None: ...
    async def create_lun(self, iqn: str, spec: dict[str, Any]) -> dict[str, Any]: ...
    async def delete_lun(self, iqn: str, lun: int, force: bool) -> None: ...
    def list_sessions(self) -> list[dict[str, Any]]: ...
    def request_shutdown(self) -> None: ...


@dataclass
class ApiRequest:
    method: str
    path: str
    params: dict[str, str]
    query: dict[str, str]
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def flag(self, name: str) -> bool:
        return self.query.get(name, "").lower() in {"1", "true", "yes"}

    def json_object(self) -> dict[str, Any]:
        if not isinstance(self.body, dict):
            raise ApiError(HTTPStatus.BAD_REQUEST, "the request body must be a JSON object")
        return self.body


Handler = Callable[[ApiRequest], Awaitable[Any]]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler


def _compile(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", template)
    regex = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[^/]+)"
                    for i, p in enumerate(parts))
    return re.compile(f"^{regex}$")


class ManagementApi:
    """The HTTP server; ``add_route`` lets other layers extend it."""

    def __init__(self, node: NodeControl, *, token: str, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        if not token:
            raise ManagementError("management API: no token configured; export the variable "
                                  "that management.token_env names (there is no default)")
        self.node, self._token, self.host, self.port = node, token.encode(), host, port
        self.routes: list[Route] = []
        self._server: asyncio.base_events.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()
        self._install_node_routes()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def add_route(self, method: str, template: str, handler: Handler) -> None:
        """Serve ``method template`` (``/v1/x/{name}``) with ``handler``."""
        self.routes.append(Route(method.upper(), _compile(template), handler))

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve_client, self.host, self.port,
                                                  limit=MAX_HEADER_BYTES)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._clients):
                task.cancel()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    # -- request handling -------------------------------------------------------------------

    async def _serve_client(self, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        try:
            status, payload = await asyncio.wait_for(self._answer(reader), READ_DEADLINE_S)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError,
                asyncio.LimitOverrunError, ValueError):
            status, payload = HTTPStatus.BAD_REQUEST, {"error": "malformed or slow request"}
        except asyncio.CancelledError:
            writer.close()
            raise
        finally:
            self._clients.discard(task)
        body = json.dumps(payload).encode()
        head = (f"HTTP/1.1 {int(status)} {HTTPStatus(status).phrase}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n").encode()
        with contextlib.suppress(ConnectionError):
            writer.write(head + body)
            await writer.drain()
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[int, Any]:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        if length < 0 or length > MAX_BODY_BYTES:
            return HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "body too large"}
        raw_body = await reader.readexactly(length) if length else b""
        auth = headers.get("authorization", "")
        scheme, _, presented = auth.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented.encode(),
                                                                 self._token):
            return HTTPStatus.UNAUTHORIZED, {"error": "missing or wrong bearer token"}
        url = urllib.parse.urlsplit(target)
        query = dict(urllib.parse.parse_qsl(url.query))
        path = url.path.rstrip("/") or "/"
        try:
            body = json.loads(raw_body) if raw_body else None
        except json.JSONDecodeError:
            return HTTPStatus.BAD_REQUEST, {"error": "the body is not JSON"}
        allowed = []
        for route in self.routes:
            m = route.pattern.match(path)
            if not m:
                continue
            if route.method != method.upper():
                allowed.append(route.method)
                continue
            params = {k: urllib.parse.unquote(v) for k, v in m.groupdict().items()}
            request = ApiRequest(method.upper(), path, params, query, body, headers)
            try:
                result = await route.handler(request)
            except ApiError as exc:
                return exc.status, {"error": exc.message}
            except SplitbrainError as exc:
                return HTTPStatus.BAD_REQUEST, {"error": str(exc)}
            return HTTPStatus.OK, result if result is not None else {"ok": True}
        if allowed:
            return HTTPStatus.METHOD_NOT_ALLOWED, {"error": f"use {', '.join(allowed)}"}
        return HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: {method} {path}"}

    # -- the base node's routes -------------------------------------------------------------

    def _install_node_routes(self) -> None:
        node = self.node

        async def status(_: ApiRequest) -> Any:
            return node.status()

        async def targets(_: ApiRequest) -> Any:
            return node.list_targets()

        async def create_target(r: ApiRequest) -> Any:
            return await node.create_target(r.json_object())

        async def delete_target(r: ApiRequest) -> Any:
            await node.delete_target(r.params["iqn"], r.flag("force"))
            return {"deleted": r.params["iqn"]}

        async def create_lun(r: ApiRequest) -> Any:
            return await node.create_lun(r.params["iqn"], r.json_object())

        async def delete_lun(r: ApiRequest) -> Any:
            if not r.params["lun"].isdigit():
                raise ApiError(HTTPStatus.BAD_REQUEST, "the LUN must be a number")
            await node.delete_lun(r.params["iqn"], int(r.params["lun"]), r.flag("force"))
            return {"deleted": int(r.params["lun"])}

        async def sessions(_: ApiRequest) -> Any:
            return node.list_sessions()

        async def shutdown(_: ApiRequest) -> Any:
            asyncio.get_running_loop().call_soon(node.request_shutdown)
            return {"shutting_down": True}

        self.add_route("GET", "/v1/status", status)
        self.add_route("GET", "/v1/targets", targets)
        self.add_route("POST", "/v1/targets", create_target)
        self.add_route("DELETE", "/v1/targets/{iqn}", delete_target)
        self.add_route("POST", "/v1/targets/{iqn}/luns", create_lun)
        self.add_route("DELETE", "/v1/targets/{iqn}/luns/{lun}", delete_lun)
        self.add_route("GET", "/v1/sessions", sessions)
        self.add_route("POST", "/v1/shutdown", shutdown)


class ManagementClient:
    """Synchronous client of a node's management API."""

    def __init__(self, url: str, token: str, *, timeout: float = 10.0) -> None:
        if not token:
            raise ManagementError(f"management API {url}: no token given; export the node's "
                                  "token variable or pass --token-env")
        self.url, self._token, self.timeout = url.rstrip("/"), token, timeout

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self._token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read()).get("error", exc.reason)
            except (ValueError, AttributeError):
                message = exc.reason
            raise ManagementError(f"{method} {self.url}{path}: {exc.code} {message}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ManagementError(f"management API {self.url} unreachable ({reason}); is the "
                                  "node running?") from None

    def status(self) -> dict[str, Any]:
        return self.request("GET", "/v1/status")

    def targets(self) -> list[dict[str, Any]]:
        return self.request("GET", "/v1/targets")

    def create_target(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", "/v1/targets", spec)

    def delete_target(self, iqn: str, *, force: bool = False) -> Any:
        q = "?force=1" if force else ""
        return self.request("DELETE", f"/v1/targets/{urllib.parse.quote(iqn, safe='')}{q}")

    def create_lun(self, iqn: str, spec: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", f"/v1/targets/{urllib.parse.quote(iqn, safe='')}/luns", spec)

    def delete_lun(self, iqn: str, lun: int, *, force: bool = False) -> Any:
        q = "?force=1" if force else ""
        return self.request("DELETE",
                            f"/v1/targets/{urllib.parse.quote(iqn, safe='')}/luns/{lun}{q}")

    def sessions(self) -> list[dict[str, Any]]:
        return self.request("GET", "/v1/sessions")

    def shutdown(self) -> Any:
        return self.request("POST", "/v1/shutdown")
