"""One behaviour suite over every client transport, against real servers on loopback ports.

The transports move whole JSON-RPC messages; these tests drive them directly (no session
layer) so a failure points at the adapter.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import orjson
import pytest
from aiohttp import web

from mcp_multi.protocol.errors import ConnectionClosed, ProtocolError, TransportError
from mcp_multi.transport import ClientTransport, SSETransport, create_transport

from ..client.scripted import StartScripted
from ..conftest import StartServer

TIMEOUT = 10.0

INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {},
    "clientInfo": {"name": "transport-test", "version": "0"}}}


def url_of(kind: str, port: int) -> str:
    return f"ws://127.0.0.1:{port}/ws" if kind == "websocket" else f"http://127.0.0.1:{port}/sse"


async def receive_json(transport: ClientTransport) -> Any:
    async with asyncio.timeout(TIMEOUT):
        return orjson.loads(await transport.receive())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_round_trip_with_our_server(transport_kind: str,
                                          start_mcp_server: StartServer) -> None:
    server = await start_mcp_server(name="round-trip")
    transport = create_transport(transport_kind, url_of(transport_kind, server.port))
    await transport.connect()
    try:
        await transport.send(INITIALIZE)
        reply = await receive_json(transport)
        assert reply["id"] == 1 and reply["result"]["serverInfo"]["name"] == "round-trip"
        await transport.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        await transport.send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "echo", "arguments": {"message": "héllo ✓"}}})
        reply = await receive_json(transport)
        assert reply == {"jsonrpc": "2.0", "id": 2,
                         "result": {"content": [{"type": "text", "text": "Echo: héllo ✓"}]}}
    finally:
        await transport.close()


async def test_concurrent_sends_all_answered(transport_kind: str,
                                             start_mcp_server: StartServer) -> None:
    server = await start_mcp_server()
    transport = create_transport(transport_kind, url_of(transport_kind, server.port))
    await transport.connect()
    try:
        await transport.send(INITIALIZE)
        await receive_json(transport)
        await asyncio.gather(*(transport.send({"jsonrpc": "2.0", "id": i, "method": "ping"})
                               for i in range(10, 30)))
        ids = {(await receive_json(transport))["id"] for _ in range(20)}
        assert ids == set(range(10, 30))
    finally:
        await transport.close()


async def test_server_going_away_ends_receive(transport_kind: str,
                                              start_mcp_server: StartServer) -> None:
    server = await start_mcp_server()
    transport = create_transport(transport_kind, url_of(transport_kind, server.port))
    await transport.connect()
    try:
        pending = asyncio.create_task(transport.receive())
        await server.close()
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(TIMEOUT):
                await pending
    finally:
        await transport.close()


async def test_close_wakes_a_blocked_receive(transport_kind: str,
                                             start_mcp_server: StartServer) -> None:
    server = await start_mcp_server()
    transport = create_transport(transport_kind, url_of(transport_kind, server.port))
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


async def test_refused_connection_is_a_transport_error(transport_kind: str) -> None:
    transport = create_transport(transport_kind, url_of(transport_kind, free_port()))
    with pytest.raises(TransportError, match=r"Cannot connect to .*: Connection refused"):
        await transport.connect()


async def test_wrong_path_is_a_transport_error(transport_kind: str,
                                               start_mcp_server: StartServer) -> None:
    server = await start_mcp_server()
    url = url_of(transport_kind, server.port).rsplit("/", 1)[0] + "/nothing-here"
    transport = create_transport(transport_kind, url)
    with pytest.raises(TransportError, match="404"):
        await transport.connect()


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


async def test_sse_not_an_event_stream_is_refused() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response({"hello": "world"})

    runner, port = await _serve(handler)
    try:
        with pytest.raises(ProtocolError, match="not an event stream"):
            await SSETransport(f"http://127.0.0.1:{port}/sse").connect()
    finally:
        await runner.cleanup()


async def test_sse_without_endpoint_times_out_at_connect() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b": nothing to say\n\n")
        await asyncio.Event().wait()  # the client gives up first
        return response

    runner, port = await _serve(handler)
    try:
        with pytest.raises(TransportError, match="timed out"):
            await SSETransport(f"http://127.0.0.1:{port}/sse", connect_timeout=0.3).connect()
    finally:
        await runner.cleanup()
