"""Hostile peers against the server session's lifecycle, over real sockets.

A peer that skips the handshake, repeats it, or names a request with an id JSON-RPC does not
allow gets a clear JSON-RPC error (or, for a notification, nothing), and never a tool run
on a session that negotiated no version.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from aiohttp import web

from mcp_multi.server.app import RunningServer
from mcp_multi.transport import StreamableHTTPTransport

from ..server.wire import RawPeer, StreamableHTTPPeer, connect, enveloped
from ..transport.http_script import HTTPScript, Recorded, event, sse

STREAMS = ["websocket", "sse", "stdio"]
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
ECHO = {"name": "echo", "arguments": {"message": "no handshake"}}
# Each case answers well within this (a refusal at once, a 1 s call in about 1 s).
ANSWER_WITHIN = 6.0


@pytest.fixture(params=STREAMS)
async def raw(request: pytest.FixtureRequest, mcp_server: RunningServer) -> Any:
    peer = await connect(str(request.param), mcp_server)
    yield peer
    await peer.close()


async def answer(peer: RawPeer, method: str, params: dict[str, Any] | None = None,
                 id: int | str = 1) -> dict[str, Any]:
    return await asyncio.wait_for(peer.request(method, params, id), ANSWER_WITHIN)


async def test_initialized_first_does_not_skip_initialize(raw: RawPeer) -> None:
    """Defect 1: notifications/initialized before initialize opened the gate, and a
    tools/call ran with no negotiated version."""
    await raw.send(INITIALIZED)
    for n, method in enumerate(["tools/call", "tools/list", "resources/read"], start=1):
        reply = await answer(raw, method, ECHO if method == "tools/call" else
                             {"uri": "server://info"}, id=n)
        assert reply["error"]["code"] == -32600, reply
        assert reply["error"]["message"] == (
            f"Invalid Request: {method} before initialize; send initialize first")
    assert (await answer(raw, "ping", id=9))["result"] == {}
    # Notifications again, in any number, still open nothing.
    for _ in range(3):
        await raw.send(INITIALIZED)
    refused = await answer(raw, "tools/call", ECHO, id=10)
    assert refused["error"]["code"] == -32600
    # The handshake itself still works, and then the call runs.
    assert (await raw.initialize())["result"]["protocolVersion"] == "2025-11-25"
    ran = await answer(raw, "tools/call", ECHO, id=11)
    assert ran["result"]["content"][0]["text"] == "Echo: no handshake"


async def test_initialized_first_over_streamable_http(mcp_server: RunningServer) -> None:
    """On /mcp a session exists only once initialize is answered: without one, neither the
    notification nor a call gets anywhere."""
    http_peer = await StreamableHTTPPeer.connect(mcp_server.base_url)
    try:
        note = await http_peer.post(orjson.dumps(INITIALIZED))
        assert note.status == 400
        call = await http_peer.post(orjson.dumps(
            {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": ECHO}))
        assert call.status == 400
        error = (await call.json())["error"]
        assert error["code"] == -32600 and "initialize" in error["message"]
    finally:
        await http_peer.close()


async def test_a_refused_first_request_still_chooses_the_handshake_era(raw: RawPeer) -> None:
    """The first request decides a stream connection's era even when it is refused: a peer
    cannot hop to 2026-07-28 after its handshake-era request was turned down."""
    assert (await answer(raw, "tools/list"))["error"]["code"] == -32600
    hop = await answer(raw, "tools/list", enveloped(), id=2)
    assert hop["error"]["code"] == -32600 and "handshake era" in hop["error"]["message"]
    assert (await raw.initialize())["result"]["protocolVersion"] == "2025-11-25"


async def test_second_initialize_is_refused(raw: RawPeer) -> None:
    await raw.initialize()
    again = await answer(raw, "initialize", {"protocolVersion": "2024-11-05",
                                             "capabilities": {}}, id=2)
    assert again["error"]["code"] == -32600
    assert "already initialized" in again["error"]["message"]
    # The session keeps the version it negotiated first: 2025-11-25 reports a schema
    # violation as a tool error, 2024-11-05 would have answered -32602.
    bad = await answer(raw, "tools/call", {"name": "echo", "arguments": {}}, id=3)
    assert bad["result"]["isError"] is True


@pytest.mark.parametrize("transport", ["websocket", "sse", "stdio", "http"])
async def test_cancelled_with_id_true_cancels_nothing(transport: str,
                                                      mcp_server: RunningServer) -> None:
    """Defect 2: {"requestId": true} cancelled request 1 (True == 1 as a dict key)."""
    peer = await connect(transport, mcp_server)
    try:
        await peer.initialize()
        await peer.send({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": "run_command", "arguments": {"command": "sleep 1"},
            "_meta": {"progressToken": "slow"}}})
        started = await asyncio.wait_for(peer.recv(), ANSWER_WITHIN)
        assert started["method"] == "notifications/progress", started  # request 1 runs
        for bogus in (True, False, None, [1], {"id": 1}, 1.5):
            await peer.send({"jsonrpc": "2.0", "method": "notifications/cancelled",
                             "params": {"requestId": bogus}})
        reply = await asyncio.wait_for(peer.recv_id(1), ANSWER_WITHIN)
        assert "result" in reply, reply
        assert reply["result"].get("isError") is not True, reply
    finally:
        await peer.close()


@pytest.fixture
async def script() -> Any:
    """A scripted Streamable HTTP server on 127.0.0.1:0."""
    scripted = await HTTPScript().start()
    yield scripted
    await scripted.close()


async def test_client_reads_past_a_response_whose_id_is_true(script: HTTPScript) -> None:
    """The client side of defect 2: a hostile server's ``{"id": true}`` on the stream of
    request 1 was taken for request 1's answer (True == 1), and the stream was left unread,
    losing the real answer behind it."""
    real = {"jsonrpc": "2.0", "id": 1, "result": {"content": []}}

    async def post(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        bogus = {"jsonrpc": "2.0", "id": True, "result": {}}
        return await sse(request, [event(bogus, event_id="s-1"), event(real, event_id="s-2")])

    script.post = post
    transport = StreamableHTTPTransport(script.url)
    await transport.connect()
    try:
        await transport.send({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                              "params": {"name": "echo", "arguments": {}}})
        async with asyncio.timeout(ANSWER_WITHIN):
            assert orjson.loads(await transport.receive())["id"] is True
            assert orjson.loads(await transport.receive()) == real
    finally:
        await transport.close()
