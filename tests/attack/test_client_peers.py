"""The client against hostile servers: streams that end at once, servers that accept and never
answer, error pages and messages that run to megabytes with terminal escapes in them.

Each case runs against a real server on 127.0.0.1 port 0 and is bounded well under 10 s; no
sleeps, every wait is on the thing itself with a timeout.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from mcp_multi.client.connection import MCPConnection
from mcp_multi.protocol.client_state import ClientState
from mcp_multi.protocol.errors import (
    HTTPStatusError,
    JSONRPCError,
    RequestFailed,
    RequestTimeout,
    TransportError,
)
from mcp_multi.transport import SSETransport, StreamableHTTPTransport, WebSocketTransport
from mcp_multi.transport.http_streams import MAX_RESUME_ATTEMPTS, MIN_RETRY_MS

from ..client.scripted import ScriptedError, ScriptedServer, ScriptedSession
from ..transport.http_script import HTTPScript, Recorded, event, json_reply, sse

TIMEOUT = 8.0
ESC = "\x1b]0;pwned\x07\x1b[2J"
SERVER_INFO = {"protocolVersion": "2025-11-25", "capabilities": {},
               "serverInfo": {"name": "hostile", "version": "0"}}


@pytest.fixture
async def script() -> AsyncIterator[HTTPScript]:
    script = await HTTPScript().start()
    yield script
    await script.close()


def handshake_server(script: HTTPScript) -> None:
    """POST: initialize opens session ``s1``, notifications get 202, tools/call answers."""
    async def post(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        if recorded.rpc_method == "initialize":
            return json_reply(SERVER_INFO, recorded, headers={"Mcp-Session-Id": "s1"})
        if "id" not in recorded.body:
            return web.Response(status=202)
        return json_reply({"content": []}, recorded)

    script.post = post


def tasks_named(prefix: str) -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith(prefix) and not t.done()]


def assert_shown_safely(message: str, limit: int, *, escapes: bool = True) -> None:
    assert len(message) < limit, len(message)
    assert "more characters]" in message
    assert "\x1b" not in message and "\x07" not in message
    assert not escapes or "\\x1b" in message  # escaped, not dropped


async def test_a_get_stream_that_keeps_ending_empty_is_given_up(
        script: HTTPScript, caplog: pytest.LogCaptureFixture) -> None:
    handshake_server(script)

    async def get(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        return await sse(request, [b"retry: 0\n\n"])  # no id, no message, ends at once

    script.get = get
    with caplog.at_level(logging.WARNING, logger="mcp_multi.transport.streamable_http"):
        async with MCPConnection("srv", StreamableHTTPTransport(script.url), timeout=TIMEOUT,
                                 protocol_version="2025-11-25") as conn:
            async with asyncio.timeout(TIMEOUT):
                for task in tasks_named("mcp-http-get-stream"):
                    await task
            assert len(script.of("GET")) == 1 + MAX_RESUME_ATTEMPTS
            assert await conn.call_tool("echo", {}) == {"content": []}  # POSTs go on
            assert conn.is_open
    assert any("giving it up" in r.getMessage() for r in caplog.records)


async def test_retry_0_on_a_request_stream_is_no_busy_loop(script: HTTPScript) -> None:
    """``retry: 0`` means the same wait on a request's stream as on the GET stream."""
    async def post(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        return await sse(request, [event(event_id="r1", retry=0)])  # then ends, unanswered

    async def get(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        return await sse(request, [b"retry: 0\n\n"])  # resumes nothing, ends again

    script.post, script.get = post, get
    transport = StreamableHTTPTransport(script.url)
    await transport.connect()
    try:
        await transport.send({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                              "params": {"name": "echo", "arguments": {}}})
        with pytest.raises(RequestFailed):
            async with asyncio.timeout(TIMEOUT):
                await transport.receive()
    finally:
        await transport.close()
    times = [script.of("POST")[0].at] + [r.at for r in script.of("GET")]
    assert len(times) == 2 + MAX_RESUME_ATTEMPTS
    assert all(b.header("last-event-id") == "r1" for b in script.of("GET"))
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert min(gaps) >= MIN_RETRY_MS / 1000 * 0.9, gaps


async def _silent_server() -> tuple[asyncio.Server, list[asyncio.Event], asyncio.Event]:
    """A TCP server that accepts, reads, never answers; each connection's event is set
    when the client closes it."""
    closed: list[asyncio.Event] = []
    accepted = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        done = asyncio.Event()
        closed.append(done)
        accepted.set()
        try:
            while await reader.read(65536):
                pass
        finally:
            done.set()
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, closed, accepted


async def test_connect_to_a_server_that_never_answers_is_bounded_by_the_timeout() -> None:
    server, closed, _ = await _silent_server()
    port = server.sockets[0].getsockname()[1]
    conn = MCPConnection("mute", StreamableHTTPTransport(f"http://127.0.0.1:{port}/mcp"),
                         timeout=2.0)
    start = time.monotonic()
    try:
        with pytest.raises(RequestTimeout, match="no response within"):
            await conn.connect()
        assert time.monotonic() - start < 3.0  # probe and handshake share the 2 s
        assert conn.state is ClientState.CLOSED
        async with asyncio.timeout(TIMEOUT):
            for done in closed:
                await done.wait()
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("kind", ["http", "websocket"])
async def test_a_cancelled_connect_leaves_no_socket_or_task(kind: str) -> None:
    server, closed, accepted = await _silent_server()
    port = server.sockets[0].getsockname()[1]
    transport = (StreamableHTTPTransport(f"http://127.0.0.1:{port}/mcp") if kind == "http"
                 else WebSocketTransport(f"ws://127.0.0.1:{port}/ws"))
    conn = MCPConnection("mute", transport, timeout=30.0)
    try:
        connecting = asyncio.create_task(conn.connect())
        async with asyncio.timeout(TIMEOUT):
            await accepted.wait()
        connecting.cancel()  # what the shell does on Ctrl-C
        with pytest.raises(asyncio.CancelledError):
            await connecting
        assert conn.state is ClientState.CLOSED
        async with asyncio.timeout(TIMEOUT):
            for done in closed:
                await done.wait()
        assert not tasks_named("mcp-")
    finally:
        server.close()
        await server.wait_closed()


async def test_a_huge_error_page_is_cut_and_escaped(script: HTTPScript) -> None:
    page = "<html>" + ESC + "<p>stack trace</p>" * 10_000 + "</html>"

    async def post(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        return web.Response(status=500, text=page, content_type="text/html")

    script.post = post
    with pytest.raises(HTTPStatusError) as failed:
        await MCPConnection("srv", StreamableHTTPTransport(script.url),
                            timeout=TIMEOUT).connect()
    assert_shown_safely(str(failed.value), 600)


async def test_a_huge_challenge_is_cut(script: HTTPScript) -> None:
    # (aiohttp refuses control characters in a header on both sides: only the length here)
    async def post(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        return web.Response(status=401, headers={"WWW-Authenticate": "Bearer " + "B" * 6000})

    script.post = post
    with pytest.raises(HTTPStatusError) as failed:
        await MCPConnection("srv", StreamableHTTPTransport(script.url),
                            timeout=TIMEOUT).connect()
    assert_shown_safely(str(failed.value), 600, escapes=False)
    assert failed.value.status == 401


async def test_a_huge_error_message_is_cut_and_escaped() -> None:
    async def call(params: dict[str, Any], session: ScriptedSession) -> dict[str, Any]:
        raise ScriptedError(-32603, ESC + "x" * 100_000)

    server = await ScriptedServer({"tools/call": call}).start()
    try:
        async with MCPConnection("srv", WebSocketTransport(server.url("websocket")),
                                 timeout=TIMEOUT) as conn:
            with pytest.raises(JSONRPCError) as failed:
                await conn.call_tool("echo", {})
            assert failed.value.code == -32603
            assert_shown_safely(str(failed.value), 2200)
            assert conn.is_open
    finally:
        await server.close()


async def test_a_huge_sse_post_refusal_is_cut_and_escaped() -> None:
    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"event: endpoint\ndata: /message?sessionId=1\n\n")
        await asyncio.Event().wait()  # held open until the client goes
        return response  # pragma: no cover

    async def message(request: web.Request) -> web.StreamResponse:
        return web.Response(status=500, text=ESC + "E" * 1_000_000)

    app = web.Application()
    app.router.add_get("/sse", stream)
    app.router.add_post("/message", message)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        with pytest.raises(TransportError) as failed:
            await MCPConnection("srv", SSETransport(f"http://127.0.0.1:{port}/sse"),
                                timeout=TIMEOUT).connect()
        assert_shown_safely(str(failed.value), 600)
    finally:
        await runner.cleanup()
