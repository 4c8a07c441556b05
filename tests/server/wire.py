"""A deliberately raw MCP peer for server tests: it moves bytes over a real socket and
parses nothing beyond JSON, so the tests see exactly what the server put on the wire."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import Any

import aiohttp
import orjson

from mcp_multi.server.app import RunningServer

TIMEOUT = 10.0
# Every server transport; the behaviour suites run over each.
TRANSPORTS = ["websocket", "sse", "http", "stdio"]
MCP_ACCEPT = "application/json, text/event-stream"
MODERN = "2026-07-28"
VERSION_META = "io.modelcontextprotocol/protocolVersion"
# What Streamable HTTP (handshake era) answers a request notifications/cancelled stopped.
REQUEST_CANCELLED = -32800


def enveloped(params: dict[str, Any] | None = None, version: str = MODERN,
              **meta: Any) -> dict[str, Any]:
    """``params`` with the 2026-07-28 ``_meta`` envelope (``meta`` adds or overrides keys)."""
    out = dict(params or {})
    out["_meta"] = {
        VERSION_META: version,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "raw-test-peer", "version": "0"},
        **out.get("_meta", {}),
        **meta,
    }
    return out


class Event:
    """One SSE event as a raw reader sees it (``data`` may be empty: a priming event)."""

    def __init__(self) -> None:
        self.event, self.data_lines, self.id, self.retry = "message", list[str](), "", ""

    @property
    def data(self) -> str:
        return "\n".join(self.data_lines)


async def read_event(content: aiohttp.StreamReader) -> Event | None:
    """The next event (including an id-only priming one); None when the stream ends."""
    event, seen = Event(), False
    while True:
        raw = await asyncio.wait_for(content.readline(), TIMEOUT)
        if not raw:
            return None
        line = raw.decode().rstrip("\r\n")
        if not line:
            if seen:
                return event
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        seen = True
        if field == "event":
            event.event = value
        elif field == "data":
            event.data_lines.append(value)
        elif field == "id":
            event.id = value
        elif field == "retry":
            event.retry = value


class RawPeer:
    """Send frames, receive decoded messages, over one transport."""

    transport = ""

    async def send(self, message: dict[str, Any] | bytes | str) -> None:
        raise NotImplementedError

    async def recv(self) -> dict[str, Any]:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def request(self, method: str, params: dict[str, Any] | None = None,
                      id: int | str = 1) -> dict[str, Any]:
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
        if params is not None:
            msg["params"] = params
        await self.send(msg)
        return await self.recv_id(id)

    async def modern_request(self, method: str, params: dict[str, Any] | None = None,
                             id: int | str = 1, **meta: Any) -> dict[str, Any]:
        """A 2026-07-28 request: ``params`` carry the ``_meta`` envelope."""
        return await self.request(method, enveloped(params, **meta), id)

    async def recv_id(self, id: int | str | None) -> dict[str, Any]:
        """The next response with ``id``; notifications before it are skipped."""
        while True:
            msg = await self.recv()
            if "id" in msg and msg["id"] == id and "method" not in msg:
                return msg

    async def reuse_id(self, id: int | str, method: str = "ping",
                       params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send ``method`` under ``id`` until the server takes it, and return its reply.

        The server refuses an id while a request holding it runs, so an accepted reply
        proves that request has ended (a cancelled one may take a moment). Only the
        ``Request cancelled`` error Streamable HTTP ends a cancelled call's stream with is
        skipped: any other response to the earlier request is what this returns.
        """
        deadline = asyncio.get_running_loop().time() + TIMEOUT
        while True:
            reply = await self.request(method, params, id)
            while reply.get("error", {}).get("code") == REQUEST_CANCELLED:
                reply = await self.recv_id(id)
            if "already in use" not in reply.get("error", {}).get("message", ""):
                return reply
            assert asyncio.get_running_loop().time() < deadline, f"id {id!r} stays in use"

    async def initialize(self, version: str = "2025-11-25") -> dict[str, Any]:
        reply = await self.request("initialize", {
            "protocolVersion": version, "capabilities": {},
            "clientInfo": {"name": "raw-test-peer", "version": "0"},
        }, id=0)
        await self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return reply


def _encode(message: dict[str, Any] | bytes | str) -> bytes:
    if isinstance(message, dict):
        return orjson.dumps(message)
    return message.encode() if isinstance(message, str) else message


class WebSocketPeer(RawPeer):
    transport = "websocket"

    def __init__(self, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse):
        self.http, self.ws = http, ws

    @classmethod
    async def connect(cls, base_url: str, protocols: tuple[str, ...] = ("mcp",)) -> WebSocketPeer:
        http = aiohttp.ClientSession()
        ws = await http.ws_connect(base_url + "/ws", protocols=protocols)
        return cls(http, ws)

    async def send(self, message: dict[str, Any] | bytes | str) -> None:
        await self.ws.send_str(_encode(message).decode())

    async def recv(self) -> dict[str, Any]:
        msg = await asyncio.wait_for(self.ws.receive(), TIMEOUT)
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise ConnectionError(f"websocket: {msg.type!r} {msg.data!r}")
        return orjson.loads(msg.data)  # type: ignore[no-any-return]

    async def close(self) -> None:
        await self.ws.close()
        await self.http.close()


class SSEPeer(RawPeer):
    """Legacy HTTP+SSE: GET /sse, read the endpoint event, POST to it."""

    transport = "sse"

    def __init__(self, http: aiohttp.ClientSession, stream: aiohttp.ClientResponse,
                 endpoint: str, base_url: str) -> None:
        self.http, self.stream, self.endpoint, self.base_url = http, stream, endpoint, base_url
        self.last_post_status: int | None = None

    @classmethod
    async def connect(cls, base_url: str) -> SSEPeer:
        http = aiohttp.ClientSession()
        stream = await http.get(base_url + "/sse", headers={"Accept": "text/event-stream"})
        assert stream.status == 200, stream.status
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        peer = cls(http, stream, "", base_url)
        event, data = await peer.next_event()
        assert event == "endpoint", (event, data)
        peer.endpoint = data
        return peer

    @property
    def session_id(self) -> str:
        return self.endpoint.split("sessionId=", 1)[1]

    async def next_event(self) -> tuple[str, str]:
        event = await read_event(self.stream.content)
        if event is None:
            raise ConnectionError("sse stream ended")
        return event.event, event.data

    async def post(self, body: bytes, url: str | None = None) -> aiohttp.ClientResponse:
        resp = await self.http.post(url or self.base_url + self.endpoint, data=body,
                                    headers={"Content-Type": "application/json"})
        await resp.read()
        return resp

    async def send(self, message: dict[str, Any] | bytes | str) -> None:
        resp = await self.post(_encode(message))
        self.last_post_status = resp.status
        assert resp.status == 202, (resp.status, await resp.text())

    async def recv(self) -> dict[str, Any]:
        event, data = await self.next_event()
        assert event == "message", (event, data)
        return orjson.loads(data)  # type: ignore[no-any-return]

    async def close(self) -> None:
        self.stream.close()
        with contextlib.suppress(Exception):
            await self.http.close()


class StreamableHTTPPeer(RawPeer):
    """Streamable HTTP: every message is a POST to /mcp; whatever comes back (a JSON body, the
    events of an SSE stream, an error body) lands in one inbox, in order.

    In the handshake era it keeps the session id and version ``initialize`` gave it; with
    ``modern`` it sends no session and mirrors each body's version, method and name into the
    2026-07-28 headers."""

    transport = "http"

    def __init__(self, http: aiohttp.ClientSession, url: str, modern: bool = False) -> None:
        self.http, self.url, self.modern = http, url, modern
        self.session_id: str | None = None
        self.version: str | None = None
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.pending: set[asyncio.Task[None]] = set()
        self.statuses: list[int] = []
        self.events: list[Event] = []

    @classmethod
    async def connect(cls, base_url: str) -> StreamableHTTPPeer:
        return cls(aiohttp.ClientSession(), base_url + "/mcp")

    def headers(self, body: Any = None, **extra: str) -> dict[str, str]:
        headers = {"Accept": MCP_ACCEPT, "Content-Type": "application/json"}
        if self.modern:
            headers.update(mirrored_headers(body))
        if self.session_id:
            headers["Mcp-Session-Id"] = self.session_id
        if self.version:
            headers["MCP-Protocol-Version"] = self.version
        headers.update(extra)
        return headers

    async def post(self, body: bytes, headers: dict[str, str] | None = None
                   ) -> aiohttp.ClientResponse:
        """One raw POST, read to the end."""
        resp = await self.http.post(self.url, data=body, headers=headers or self.headers())
        await resp.read()
        return resp

    async def _exchange(self, body: bytes, parsed: Any) -> None:
        async with self.http.post(self.url, data=body, headers=self.headers(parsed)) as resp:
            self.statuses.append(resp.status)
            if "Mcp-Session-Id" in resp.headers:
                self.session_id = resp.headers["Mcp-Session-Id"]
            if resp.content_type == "text/event-stream":
                while (event := await read_event(resp.content)) is not None:
                    self.events.append(event)
                    if event.data:
                        await self.inbox.put(orjson.loads(event.data))
                return
            raw = await resp.read()
            if not raw:
                assert resp.status == 202, resp.status
                return
            decoded = orjson.loads(raw)
            for msg in decoded if isinstance(decoded, list) else [decoded]:
                await self.inbox.put(msg)

    async def send(self, message: dict[str, Any] | bytes | str) -> None:
        body = _encode(message)
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict) and "method" in parsed and "id" in parsed:
            # A request: its answer may take a while, so it arrives in the background.
            task = asyncio.create_task(self._exchange(body, parsed))
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)
        else:
            await self._exchange(body, parsed)

    async def recv(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.inbox.get(), TIMEOUT)

    async def initialize(self, version: str = "2025-11-25") -> dict[str, Any]:
        reply = await self.request("initialize", {
            "protocolVersion": version, "capabilities": {},
            "clientInfo": {"name": "raw-test-peer", "version": "0"},
        }, id=0)
        self.version = reply["result"]["protocolVersion"]
        await self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return reply

    async def close(self) -> None:
        for task in list(self.pending):
            task.cancel()
        if self.session_id:
            with contextlib.suppress(aiohttp.ClientError):
                async with self.http.delete(self.url, headers=self.headers()) as resp:
                    assert resp.status == 200, resp.status
        await self.http.close()


def mirrored_headers(body: Any) -> dict[str, str]:
    """The 2026-07-28 request headers a conforming client derives from ``body``."""
    if not isinstance(body, dict):
        return {}
    params = body.get("params") if isinstance(body.get("params"), dict) else {}
    meta = params.get("_meta") if isinstance(params.get("_meta"), dict) else {}
    headers = {}
    if isinstance(meta.get(VERSION_META), str):
        headers["MCP-Protocol-Version"] = meta[VERSION_META]
    if isinstance(body.get("method"), str):
        headers["Mcp-Method"] = body["method"]
    method = body.get("method")
    field = {"resources/read": "uri", "tasks/get": "taskId", "tasks/update": "taskId",
             "tasks/cancel": "taskId"}.get(method if isinstance(method, str) else "", "name")
    name = params.get(field)
    if isinstance(name, str):
        headers["Mcp-Name"] = name
    return headers


class StdioPeer(RawPeer):
    """A server spawned as ``python -m mcp_multi.server --stdio``: one JSON message a line."""

    transport = "stdio"

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def spawn(cls, *args: str) -> StdioPeer:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mcp_multi.server", "--stdio", *args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            limit=16 * 1024 * 1024,
        )
        return cls(proc)

    async def send(self, message: dict[str, Any] | bytes | str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(_encode(message) + b"\n")
        await self.proc.stdin.drain()

    async def recv(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), TIMEOUT)
        if not line:
            raise ConnectionError(f"stdio server exited ({self.proc.returncode})")
        return orjson.loads(line)  # type: ignore[no-any-return]

    async def close(self) -> None:
        """Close stdin, as a client shuts a stdio server down, and wait for it to exit."""
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), TIMEOUT)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise


def stdio_args(server: RunningServer) -> list[str]:
    """Command-line options giving a stdio server the settings of ``server``."""
    s = server.state.settings
    args = ["--name", s.name, "--root", str(s.root), "--max-message-size",
            str(s.max_message_size), "--log-level", "WARNING"]
    if s.tools is not None:
        args += ["--tools", *s.tools]
    if s.profile is not None:
        args += ["--profile", s.profile]
    args += ["--page-size", str(s.page_size)]
    return args


async def connect(transport: str, server: RunningServer | str, *,
                  modern: bool = False) -> RawPeer:
    """A raw peer of ``transport`` talking to ``server`` (a running server or its base URL).

    For stdio the peer spawns a twin process with the running server's settings, since a
    stdio server belongs to the client that spawns it. ``modern`` makes an HTTP peer speak
    2026-07-28 (stream peers speak whatever their first request says).
    """
    base_url = server if isinstance(server, str) else server.base_url
    if transport == "websocket":
        return await WebSocketPeer.connect(base_url)
    if transport == "sse":
        return await SSEPeer.connect(base_url)
    if transport == "http":
        peer = await StreamableHTTPPeer.connect(base_url)
        peer.modern = modern
        return peer
    if transport == "stdio":
        if isinstance(server, str):
            raise ValueError("a stdio peer needs the RunningServer whose settings it copies")
        return await StdioPeer.spawn(*stdio_args(server))
    raise ValueError(transport)
