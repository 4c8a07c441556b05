"""A deliberately raw MCP peer for server tests: it moves bytes over a real socket and
parses nothing beyond JSON, so the tests see exactly what the server put on the wire."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp
import orjson

TIMEOUT = 10.0


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

    async def recv_id(self, id: int | str | None) -> dict[str, Any]:
        """The next response with ``id``; notifications before it are skipped."""
        while True:
            msg = await self.recv()
            if "id" in msg and msg["id"] == id and "method" not in msg:
                return msg

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
        event, data = "message", []
        while True:
            raw = await asyncio.wait_for(self.stream.content.readline(), TIMEOUT)
            if not raw:
                raise ConnectionError("sse stream ended")
            line = raw.decode().rstrip("\r\n")
            if not line:
                if data:
                    return event, "\n".join(data)
                event = "message"
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)

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


async def connect(transport: str, base_url: str) -> RawPeer:
    if transport == "websocket":
        return await WebSocketPeer.connect(base_url)
    if transport == "sse":
        return await SSEPeer.connect(base_url)
    raise ValueError(transport)
