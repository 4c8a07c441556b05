"""One behaviour suite over every client transport, against real servers on loopback ports.

The transports move whole JSON-RPC messages; these tests drive them directly (no session
layer) so a failure points at the adapter. The server is ours: on a free port for WebSocket,
SSE and Streamable HTTP, and for stdio ``mcp-server --stdio`` as the transport's own child.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from mcp_multi.protocol.errors import ConnectionClosed, ProtocolError, TransportError
from mcp_multi.transport import (
    ClientTransport,
    SSETransport,
    StdioTransport,
    create_transport,
    stdio_url,
)

from ..client.scripted import StartScripted
from ..conftest import StartServer

TIMEOUT = 10.0
KINDS = ["websocket", "sse", "http", "stdio"]
PATHS = {"websocket": "ws://127.0.0.1:{port}/ws", "sse": "http://127.0.0.1:{port}/sse",
         "http": "http://127.0.0.1:{port}/mcp"}

INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {},
    "clientInfo": {"name": "transport-test", "version": "0"}}}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def url_of(kind: str, port: int) -> str:
    return PATHS[kind].format(port=port)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Target:
    """Where a transport of ``kind`` finds one of our servers, and how to make it vanish."""

    kind: str
    url: str
    stop: Callable[[ClientTransport], Awaitable[None]]

    def transport(self) -> ClientTransport:
        return create_transport(self.kind, self.url)


StartTarget = Callable[..., Awaitable[Target]]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def start_target(kind: str, start_mcp_server: StartServer,
                       tmp_path: Path) -> AsyncIterator[StartTarget]:
    async def start(name: str = "test-server") -> Target:
        if kind == "stdio":
            command = [sys.executable, "-m", "mcp_multi.server", "--stdio", "--name", name,
                       "--root", str(tmp_path), "--log-level", "WARNING"]

            async def kill(transport: ClientTransport) -> None:
                assert isinstance(transport, StdioTransport) and transport.pid is not None
                os.kill(transport.pid, signal.SIGKILL)

            return Target(kind, stdio_url(command), kill)
        server = await start_mcp_server(name=name)

        async def close(transport: ClientTransport) -> None:
            await server.close()

        return Target(kind, url_of(kind, server.port), close)

    yield start


async def receive_json(transport: ClientTransport) -> Any:
    async with asyncio.timeout(TIMEOUT):
        return orjson.loads(await transport.receive())


async def handshake(transport: ClientTransport) -> dict[str, Any]:
    """``initialize`` and ``notifications/initialized``; the initialize response."""
    await transport.send(INITIALIZE)
    reply: dict[str, Any] = await receive_json(transport)
    transport.negotiated(reply["result"]["protocolVersion"])
    await transport.send(INITIALIZED)
    return reply


async def test_round_trip_with_our_server(start_target: StartTarget) -> None:
    target = await start_target("round-trip")
    transport = target.transport()
    await transport.connect()
    try:
        reply = await handshake(transport)
        assert reply["id"] == 1 and reply["result"]["serverInfo"]["name"] == "round-trip"
        await transport.send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "echo", "arguments": {"message": "héllo ✓"}}})
        reply = await receive_json(transport)
        assert reply == {"jsonrpc": "2.0", "id": 2,
                         "result": {"content": [{"type": "text", "text": "Echo: héllo ✓"}]}}
    finally:
        await transport.close()


async def test_concurrent_sends_all_answered(start_target: StartTarget) -> None:
    transport = (await start_target()).transport()
    await transport.connect()
    try:
        await handshake(transport)
        await asyncio.gather(*(transport.send({"jsonrpc": "2.0", "id": i, "method": "ping"})
                               for i in range(10, 30)))
        ids = {(await receive_json(transport))["id"] for _ in range(20)}
        assert ids == set(range(10, 30))
    finally:
        await transport.close()


async def test_server_going_away_ends_receive(start_target: StartTarget) -> None:
    target = await start_target()
    transport = target.transport()
    await transport.connect()
    try:
        await handshake(transport)
        pending = asyncio.create_task(transport.receive())
        await target.stop(transport)
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(TIMEOUT):
                await pending
        with pytest.raises(ConnectionClosed):
            await transport.send({"jsonrpc": "2.0", "method": "ping", "id": 9})
    finally:
        await transport.close()


async def test_close_wakes_a_blocked_receive(start_target: StartTarget) -> None:
    transport = (await start_target()).transport()
    await transport.connect()
    pending = asyncio.create_task(transport.receive())
    await asyncio.sleep(0)  # let receive() start waiting (one loop turn, not a time wait)
    await transport.close()
    await transport.close()  # idempotent
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(TIMEOUT):
            await pending
    with pytest.raises(ConnectionClosed):
        await transport.send({"jsonrpc": "2.0", "method": "ping", "id": 1})


async def test_unreachable_server_is_a_transport_error(kind: str) -> None:
    if kind == "stdio":
        url, expected = "stdio:no-such-mcp-server-command --x", (
            r"Cannot start 'no-such-mcp-server-command': No such file or directory")
    else:
        url = url_of(kind, free_port())
        expected = rf"Cannot connect to {url}: Connection refused"
    transport = create_transport(kind, url)
    try:
        with pytest.raises(TransportError, match=expected):
            # HTTP has no connection to open: the first POST meets the server.
            await transport.connect()
            await transport.send(INITIALIZE)
    finally:
        await transport.close()


@pytest.mark.parametrize("network_kind", ["websocket", "sse", "http"])
async def test_wrong_path_is_a_transport_error(network_kind: str,
                                               start_mcp_server: StartServer) -> None:
    server = await start_mcp_server()
    url = url_of(network_kind, server.port).rsplit("/", 1)[0] + "/nothing-here"
    transport = create_transport(network_kind, url)
    try:
        with pytest.raises(TransportError, match="404"):
            await transport.connect()
            await transport.send(INITIALIZE)
    finally:
        await transport.close()


async def test_websocket_asks_for_the_mcp_subprotocol(start_scripted: StartScripted) -> None:
    server = await start_scripted()
    transport = create_transport("websocket", server.url("websocket"))
    await transport.connect()
    await transport.close()
    assert server.ws_protocols == ["mcp"]


async def test_sse_endpoint_on_another_origin_is_refused(start_scripted: StartScripted) -> None:
    server = await start_scripted(endpoint="http://evil.example/message?sessionId=x")
    transport = SSETransport(server.url("sse"))
    with pytest.raises(ProtocolError, match="refusing SSE endpoint"):
        await transport.connect()


async def test_sse_endpoint_resolved_against_the_stream_url(
        start_scripted: StartScripted) -> None:
    server = await start_scripted()
    transport = SSETransport(server.url("sse"))
    await transport.connect()
    try:
        assert transport.endpoint == f"http://127.0.0.1:{server.port}/message?sessionId=s1"
    finally:
        await transport.close()


async def test_sse_post_to_a_vanished_session_is_connection_closed(
        start_scripted: StartScripted) -> None:
    server = await start_scripted()
    transport = SSETransport(server.url("sse"))
    await transport.connect()
    try:
        transport.endpoint = f"http://127.0.0.1:{server.port}/message?sessionId=gone"
        with pytest.raises(ConnectionClosed, match="404"):
            await transport.send({"jsonrpc": "2.0", "id": 1, "method": "ping"})
    finally:
        await transport.close()


async def _serve(handler: Any) -> tuple[web.AppRunner, int]:
    app = web.Application()
    app.router.add_get("/sse", handler)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, int(runner.addresses[0][1])


async def test_sse_stream_in_odd_chunks_is_parsed_whole() -> None:
    """Comments, retry, CRLF split over writes, multi-line data: the WHATWG rules on a socket."""
    message = b'{"jsonrpc":"2.0",\n"id":1,"result":{}}'
    body = (b"\xef\xbb\xbf: welcome\r\nretry: 3000\r\nevent: endpoint\r\ndata: /message?s=1\r\n\r"
            b"\n: keepalive\n\nevent: message\r\ndata: " + message.replace(b"\n", b"\ndata: ")
            + b"\r\n\r\nevent: other\ndata: ignored\n\nevent: message\ndata: {\"jsonrpc\":"
            b"\"2.0\",\"id\":2,\"result\":{}}\n\n")

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for start in range(0, len(body), 7):
            await response.write(body[start:start + 7])
        return response

    runner, port = await _serve(handler)
    transport = SSETransport(f"http://127.0.0.1:{port}/sse")
    try:
        await transport.connect()
        assert transport.endpoint == f"http://127.0.0.1:{port}/message?s=1"
        assert orjson.loads(await transport.receive()) == {"jsonrpc": "2.0", "id": 1,
                                                           "result": {}}
        assert orjson.loads(await transport.receive())["id"] == 2
        with pytest.raises(ConnectionClosed, match="ended"):
            async with asyncio.timeout(TIMEOUT):
                await transport.receive()
    finally:
        await transport.close()
        await runner.cleanup()


async def test_sse_posts_carry_the_cookies_the_stream_set() -> None:
    """A load balancer's persistence cookie, set on the stream's answer, goes back on every
    POST (the stream and the POSTs take different ways; they share one jar)."""
    posted: asyncio.Queue[tuple[str | None, bytes]] = asyncio.Queue()

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        response.set_cookie("BIGipServerpool_mcp", "1677787402.36895.0000", path="/")
        await response.prepare(request)
        await response.write(b"event: endpoint\ndata: /message?s=1\n\n")
        await asyncio.Event().wait()  # open until the client leaves
        return response

    async def message(request: web.Request) -> web.StreamResponse:
        await posted.put((request.headers.get("Cookie"), await request.read()))
        return web.Response(status=202, text="Accepted")

    app = web.Application()
    app.router.add_get("/sse", stream)
    app.router.add_post("/message", message)
    runner = web.AppRunner(app, shutdown_timeout=0.5, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = int(runner.addresses[0][1])
    transport = SSETransport(f"http://127.0.0.1:{port}/sse", headers={"Cookie": "mine=1"})
    try:
        await transport.connect()
        for request_id in (1, 2):
            await transport.send({"jsonrpc": "2.0", "id": request_id, "method": "ping"})
            async with asyncio.timeout(TIMEOUT):
                cookie, body = await posted.get()
            assert orjson.loads(body)["id"] == request_id
            assert cookie is not None
            assert {c.strip() for c in cookie.split(";")} == {
                "mine=1", "BIGipServerpool_mcp=1677787402.36895.0000"}
    finally:
        await transport.close()
        await runner.cleanup()


async def test_sse_not_an_event_stream_is_refused() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response({"hello": "world"})

    runner, port = await _serve(handler)
    try:
        with pytest.raises(ProtocolError, match="not an event stream"):
            await SSETransport(f"http://127.0.0.1:{port}/sse").connect()
    finally:
        await runner.cleanup()


@pytest.mark.timeout(10)
@pytest.mark.parametrize("first", [
    b": nothing to say\n\n",
    b'event: message\ndata: {"jsonrpc":"2.0","method":"x"}\n\n',
], ids=["comment", "message"])
async def test_sse_without_endpoint_times_out_at_connect(first: bytes) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(first)
        await asyncio.Event().wait()  # the client gives up first
        return response

    runner, port = await _serve(handler)
    try:
        with pytest.raises(TransportError, match="timed out"):
            await SSETransport(f"http://127.0.0.1:{port}/sse", connect_timeout=0.3).connect()
    finally:
        await runner.cleanup()


@pytest.mark.timeout(10)
async def test_sse_events_before_the_endpoint_are_kept_in_order() -> None:
    """A message event ahead of ``endpoint`` is delivered first, not spun on forever."""
    early = b'{"jsonrpc":"2.0","method":"notifications/message","params":{}}'
    late = b'{"jsonrpc":"2.0","id":1,"result":{}}'

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"event: message\ndata: " + early + b"\n\n")
        await response.write(b"event: endpoint\ndata: /message?s=1\n\n"
                             b"event: message\ndata: " + late + b"\n\n")
        await asyncio.Event().wait()
        return response

    runner, port = await _serve(handler)
    transport = SSETransport(f"http://127.0.0.1:{port}/sse", connect_timeout=2.0)
    try:
        await transport.connect()
        async with asyncio.timeout(TIMEOUT):
            assert await transport.receive() == early.decode()
            assert await transport.receive() == late.decode()
    finally:
        await transport.close()
        await runner.cleanup()


@pytest.mark.parametrize("network_kind", ["websocket", "sse", "http"])
async def test_a_server_speaking_no_http_is_a_one_line_error(network_kind: str) -> None:
    """aiohttp's parser errors span lines (the bad bytes, a caret); ours are one line."""

    async def babble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.write(b"this is not http at all\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(babble, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = create_transport(network_kind, url_of(network_kind, port))
    try:
        with pytest.raises(TransportError) as exc:
            async with asyncio.timeout(TIMEOUT):
                await transport.connect()
                await transport.send(INITIALIZE)
        assert "\n" not in str(exc.value) and "this is not http at all" in str(exc.value)
    finally:
        await transport.close()
        server.close()
        await server.wait_closed()
