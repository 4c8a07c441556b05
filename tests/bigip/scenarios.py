"""Drive our server with real clients through the recording proxy, one traffic file each.

Every scenario talks to a :class:`~tests.bigip.wire.RecordingProxy` in front of one of our
servers started in-process, so the traffic files hold what those clients and that server
really put on the wire:

- ``websocket``        our :class:`MCPConnection` over WebSocket, then a raw WebSocket that
                       sends what our client never would (a malformed frame, a body that is
                       not JSON-RPC, a scalar, a batch with a denied call, duplicate keys);
- ``sse``              our client over legacy HTTP+SSE, then a raw stream whose POSTs use
                       ``session_id=`` and carry the same bad bodies;
- ``sse_sdk``          the official ``mcp`` SDK's SSE client;
- ``streamable_http``  Streamable HTTP at ``/mcp`` (our client's ``http`` transport when it
                       exists, raw POSTs otherwise) plus the bad bodies;
- ``streamable_http_sdk``  the SDK's Streamable HTTP client (several connections, a GET
                       stream);
- ``healthz``          the monitor's ``GET /healthz``.

Each session also calls the tool the BIG-IP data group denies (``run_command``), so the
iRule's denial is exercised on real requests and real answers. Run as a module to refresh the
committed fixtures: ``uv run python -m tests.bigip.scenarios bigip/tests/traffic``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from mcp_multi.client.connection import MCPConnection
from mcp_multi.protocol.errors import MCPError
from mcp_multi.protocol.sse import SSEEvent, SSEParser
from mcp_multi.server.app import RunningServer, start_server
from mcp_multi.server.settings import ServerSettings
from mcp_multi.transport import create_transport, transport_names

from .wire import RecordingProxy, to_events, write_traffic

__all__ = ["DENIED_TOOL", "SCENARIOS", "record_all"]

DENIED_TOOL = "run_command"
TIMEOUT = 10.0

# What our client never sends. The raw clients then wait for the answers to the batch's calls
# and to a final ping, so every answer the server gives is on the recording.
MALFORMED = '{"jsonrpc": "2.0", "id": 90, "method": "tools/list"'
NOT_JSONRPC = '{"hello": "BIG-IP", "id": 91}'
SCALAR = "42"
BATCH = json.dumps([
    {"jsonrpc": "2.0", "id": "batch-1", "method": "ping"},
    {"jsonrpc": "2.0", "id": "batch-2", "method": "tools/call",
     "params": {"name": DENIED_TOOL, "arguments": {"command": "echo from a batch"}}},
])
# Two "method" keys: a parser that takes the first sees a ping, one that takes the last (as
# ours does) runs the denied tool. The BIG-IP must refuse it.
DUPLICATE_KEYS = ('{"jsonrpc": "2.0", "id": "dup", "method": "ping", "method": "tools/call", '
                  '"params": {"name": "' + DENIED_TOOL + '", '
                  '"arguments": {"command": "echo dup"}}}')
BAD_BODIES = (MALFORMED, NOT_JSONRPC, SCALAR, BATCH, DUPLICATE_KEYS)
# Sent with chunked transfer encoding (no Content-Length): a body the iRule does not collect.
CHUNKED_PING = {"jsonrpc": "2.0", "id": "chunked", "method": "ping"}
# Protocol 2025-03-26 is the last revision with JSON-RPC batches, which the raw clients send.
RAW_VERSION = "2025-03-26"
INITIALIZE = {"jsonrpc": "2.0", "id": "raw-init", "method": "initialize", "params": {
    "protocolVersion": RAW_VERSION, "capabilities": {},
    "clientInfo": {"name": "bigip-raw", "version": "1"}}}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
FINAL_PING = {"jsonrpc": "2.0", "id": "raw-end", "method": "ping"}
LAST_ANSWERS = ('"batch-1"', '"batch-2"', '"dup"', '"raw-end"')


async def _chunked(message: dict[str, Any]) -> AsyncIterator[bytes]:
    body = json.dumps(message).encode()
    yield body[:10]
    yield body[10:]


async def _session_with_our_client(kind: str, url: str,
                                   protocol_version: str | None = None) -> None:
    """The seed's session: list, call every tool, read a resource, call a denied tool."""
    async with MCPConnection("bigip", create_transport(kind, url), timeout=TIMEOUT,
                             protocol_version=protocol_version) as conn:
        await conn.list_tools()
        await conn.call_tool("echo", {"message": "héllo through BIG-IP ✓"})
        await conn.call_tool("math_calc", {"expression": "2 + 2 * 3"})
        await conn.call_tool("math_calc", {"expression": "invalid"})
        await conn.call_tool("get_time", {})
        await conn.call_tool("list_files", {"path": "."})
        await conn.request("resources/read", {"uri": "server://info"})
        await conn.call_tool(DENIED_TOOL, {"command": "echo recorded"})
        with contextlib.suppress(MCPError):
            await conn.call_tool("no_such_tool", {})
        await conn.ping()


async def _raw_websocket(base_url: str) -> None:
    async with aiohttp.ClientSession() as http, \
            http.ws_connect(base_url.replace("http", "ws", 1) + "/ws", protocols=("mcp",)) as ws:
        await ws.send_json(INITIALIZE)
        await ws.receive_json(timeout=TIMEOUT)
        await ws.send_json(INITIALIZED)
        for body in BAD_BODIES:
            await ws.send_str(body)
        await ws.send_json(FINAL_PING)
        waiting = set(LAST_ANSWERS)
        async with asyncio.timeout(TIMEOUT):
            while waiting:
                message = await ws.receive()
                if message.type != aiohttp.WSMsgType.TEXT:
                    raise AssertionError(f"unexpected frame {message.type}")
                waiting = {marker for marker in waiting if marker not in message.data}


async def websocket(proxy: RecordingProxy) -> None:
    await _session_with_our_client("websocket", proxy.base_url.replace("http", "ws", 1) + "/ws")
    await _raw_websocket(proxy.base_url)


class _Stream:
    """A raw legacy SSE stream: the events as they come."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.parser = SSEParser()
        self.events: list[SSEEvent] = []

    async def next_event(self) -> SSEEvent:
        while not self.events:
            chunk = await self.response.content.readany()
            if not chunk:
                raise AssertionError("SSE stream ended")
            self.events.extend(self.parser.feed(chunk))
        return self.events.pop(0)

    async def until(self, *markers: str) -> None:
        """Read events until each marker has appeared in one of them."""
        waiting = set(markers)
        async with asyncio.timeout(TIMEOUT):
            while waiting:
                data = (await self.next_event()).data
                waiting = {marker for marker in waiting if marker not in data}


async def _raw_sse(base_url: str) -> None:
    async with aiohttp.ClientSession() as http, \
            http.get(base_url + "/sse", headers={"Accept": "text/event-stream"}) as response:
        stream = _Stream(response)
        endpoint = await stream.next_event()
        assert endpoint.event == "endpoint", endpoint
        # The same session through the other spelling of the query parameter.
        post_url = base_url + endpoint.data.replace("sessionId=", "session_id=")

        async def post(body: str) -> None:
            async with http.post(post_url, data=body,
                                 headers={"Content-Type": "application/json"}) as reply:
                await reply.read()

        await post(json.dumps(INITIALIZE))
        await stream.until('"raw-init"')
        await post(json.dumps(INITIALIZED))
        for body in BAD_BODIES:
            await post(body)
        async with http.post(post_url, data=_chunked(CHUNKED_PING),
                             headers={"Content-Type": "application/json"}) as reply:
            await reply.read()
        await post(json.dumps(FINAL_PING))
        await stream.until(*LAST_ANSWERS, '"chunked"')


async def sse(proxy: RecordingProxy) -> None:
    await _session_with_our_client("sse", proxy.base_url + "/sse")
    await _raw_sse(proxy.base_url)


async def sse_sdk(proxy: RecordingProxy) -> None:
    from mcp import ClientSession
    from mcp.client.sse import sse_client

    async with sse_client(proxy.base_url + "/sse") as (read, write), \
            ClientSession(read, write) as session:
        await session.initialize()
        await session.list_tools()
        await session.call_tool("echo", {"message": "from the SDK"})
        await session.call_tool(DENIED_TOOL, {"command": "echo from the SDK"})
        await session.read_resource("server://info")


async def streamable_http_sdk(proxy: RecordingProxy) -> None:
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with streamable_http_client(proxy.base_url + "/mcp") as streams, \
            ClientSession(streams[0], streams[1]) as session:
        await session.initialize()
        await session.list_tools()
        await session.call_tool("echo", {"message": "from the SDK"})
        await session.call_tool(DENIED_TOOL, {"command": "echo from the SDK"})
        await session.read_resource("server://info")


async def _raw_streamable_http(base_url: str) -> None:
    url = base_url + "/mcp"
    accept = {"Accept": "application/json, text/event-stream",
              "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as http:
        async with http.post(url, data=json.dumps(INITIALIZE), headers=accept) as reply:
            await reply.read()
            session = reply.headers.get("Mcp-Session-Id")
        headers = dict(accept)
        if session:
            headers["Mcp-Session-Id"] = session
        headers["MCP-Protocol-Version"] = RAW_VERSION
        bodies = [json.dumps(INITIALIZED)]
        if not await _our_http_transport_exists():
            bodies += [json.dumps(m) for m in _SESSION_MESSAGES]
        bodies += [*BAD_BODIES, json.dumps(FINAL_PING)]
        for body in bodies:
            async with http.post(url, data=body, headers=headers) as reply:
                await reply.read()
        async with http.post(url, data=_chunked(CHUNKED_PING), headers=headers) as reply:
            await reply.read()
        if session:
            async with http.delete(url, headers=headers) as reply:
                await reply.read()


_SESSION_MESSAGES: list[dict[str, Any]] = [
    {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
     "params": {"name": "echo", "arguments": {"message": "héllo through BIG-IP ✓"}}},
    {"jsonrpc": "2.0", "id": 4, "method": "tools/call",
     "params": {"name": "math_calc", "arguments": {"expression": "2 + 2 * 3"}}},
    {"jsonrpc": "2.0", "id": 5, "method": "tools/call",
     "params": {"name": DENIED_TOOL, "arguments": {"command": "echo recorded"}}},
    {"jsonrpc": "2.0", "id": 6, "method": "resources/read", "params": {"uri": "server://info"}},
]


async def _our_http_transport_exists() -> bool:
    return "http" in transport_names()


async def streamable_http(proxy: RecordingProxy) -> None:
    if await _our_http_transport_exists():
        # The handshake era, like the raw and SDK sessions here: left to itself our client
        # speaks 2026-07-28 over HTTP, which has no session for the iRule to persist.
        await _session_with_our_client("http", proxy.base_url + "/mcp", "2025-11-25")
    await _raw_streamable_http(proxy.base_url)


async def healthz(proxy: RecordingProxy) -> None:
    async with aiohttp.ClientSession() as http, http.get(proxy.base_url + "/healthz") as reply:
        await reply.read()


Scenario = Callable[[RecordingProxy], Awaitable[None]]
SCENARIOS: dict[str, tuple[str, str, Scenario]] = {
    "websocket": ("websocket", "mcp_multi MCPConnection + raw aiohttp WebSocket", websocket),
    "sse": ("sse", "mcp_multi MCPConnection + raw aiohttp SSE", sse),
    "sse_sdk": ("sse", "official mcp SDK sse_client", sse_sdk),
    "streamable_http": ("streamable-http", "raw aiohttp POSTs (+ mcp_multi http transport)",
                        streamable_http),
    "streamable_http_sdk": ("streamable-http", "official mcp SDK streamable_http_client",
                            streamable_http_sdk),
    "healthz": ("http", "aiohttp GET", healthz),
}


def serves(server: RunningServer, path: str) -> bool:
    """Whether the server routes ``path`` at all."""
    return any(resource.canonical == path for resource in server.runner.app.router.resources())


async def record_all(out_dir: Path, root: Path) -> dict[str, Path]:
    """Record every scenario the server supports into ``out_dir``; returns name -> file."""
    settings = ServerSettings(host="127.0.0.1", port=0, name="bigip-recording", root=root)
    server = await start_server(settings)
    written: dict[str, Path] = {}
    try:
        for name, (transport, client, scenario) in SCENARIOS.items():
            if name.startswith("streamable_http") and not serves(server, "/mcp"):
                continue
            async with RecordingProxy("127.0.0.1", server.port) as proxy:
                await scenario(proxy)
            connections = {cid: conn.client for cid, conn in proxy.connections.items()}
            path = out_dir / f"{name}.json"
            write_traffic(path, name=name, transport=transport, client=client,
                          description=(scenario.__doc__ or _describe(name)).strip(),
                          events=to_events(proxy.reads, connections))
            written[name] = path
    finally:
        await server.close()
    return written


def _describe(name: str) -> str:
    return f"{SCENARIOS[name][1]} against mcp-server, recorded through a TCP proxy"


def main() -> None:
    out_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "bigip/tests/traffic")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as root:
        Path(root, "notes.txt").write_text("a file for list_files\n")
        for name, path in asyncio.run(record_all(out_dir, Path(root))).items():
            print(f"{name}: {path}")


if __name__ == "__main__":
    main()
