"""The control channel of a cluster process: one JSON request, one JSON answer, per line.

Cluster node services and VM processes each serve it on loopback (port chosen
by the kernel), or on a Unix socket when they run in a network namespace of
their own, and publish ``{"host", "port", "token"}`` (``"unix"`` for a socket)
in a ready file that only the owner can read; every request carries the token. A request is
``{"op": NAME, "token": T, ...}``; the answer is ``{"ok": true, ...}`` or
``{"ok": false, "error": "one line"}``. Handlers are coroutines, so a long
operation (a live migration) answers when it is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from harness.errors import SplitbrainError

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class ControlError(SplitbrainError):
    """A cluster process refused a request, or could not be reached."""


class ControlServer:
    """Serves named handlers on loopback to holders of the token."""

    def __init__(self, handlers: dict[str, Handler]) -> None:
        self.handlers = handlers
        self.token = secrets.token_hex(16)
        self._server: asyncio.Server | None = None
        self._unix: str | None = None

    async def start(self, ready_file: str | os.PathLike[str], *, unix_path: str | None = None,
                    **extra: Any) -> dict[str, Any]:
        """Listen on loopback TCP, or on ``unix_path`` (a process in another network
        namespace is reachable through the file system, not through its loopback)."""
        ready: dict[str, Any]
        if unix_path:
            Path(unix_path).unlink(missing_ok=True)
            self._server = await asyncio.start_unix_server(self._serve, unix_path)
            os.chmod(unix_path, 0o600)
            ready = {"unix": unix_path, "host": "unix", "port": unix_path}
        else:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
            ready = {"host": "127.0.0.1", "port": self._server.sockets[0].getsockname()[1]}
        self._unix = unix_path
        ready.update(token=self.token, pid=os.getpid(), **extra)
        write_private(Path(ready_file), ready)
        return ready

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
        if self._unix:
            Path(self._unix).unlink(missing_ok=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            answer = await self._answer(line)
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _answer(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
        except ValueError:
            return {"ok": False, "error": "request is not JSON"}
        if not isinstance(request, dict) or request.get("token") != self.token:
            return {"ok": False, "error": "bad or missing token"}
        handler = self.handlers.get(str(request.get("op")))
        if handler is None:
            return {"ok": False, "error": f"unknown op {request.get('op')!r}; ops: "
                                          + ", ".join(sorted(self.handlers))}
        try:
            return {"ok": True, **await handler(request)}
        except SplitbrainError as exc:
            return {"ok": False, "error": str(exc)}


def write_private(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def read_ready(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def request(endpoint: dict[str, Any], op: str, *, timeout_s: float = 10.0,
            **fields: Any) -> dict[str, Any]:
    """Send one request to a control endpoint; the answer, or ``ControlError``."""
    payload = json.dumps({"op": op, "token": endpoint["token"], **fields}).encode() + b"\n"
    where = f"{endpoint.get('name', 'cluster process')} ({endpoint['host']}:{endpoint['port']})"
    try:
        if endpoint.get("unix"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout_s)
            try:
                sock.connect(endpoint["unix"])
            except OSError:
                sock.close()
                raise
        else:
            sock = socket.create_connection((endpoint["host"], endpoint["port"]),
                                            timeout=timeout_s)
        with sock:
            sock.sendall(payload)
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError as exc:
        raise ControlError(f"{where} did not answer {op}: {exc}") from None
    try:
        answer = json.loads(data)
    except ValueError:
        raise ControlError(f"{where} gave no answer to {op} (it may have died)") from None
    if not answer.get("ok"):
        raise ControlError(str(answer.get("error", "refused")))
    return answer
