"""The legacy SSE stream after aiohttp has handed its connection over to ``SSEStream``.

Once the response head of ``GET /sse`` is out, the server writes the stream itself (see
:mod:`mcp_multi.server.endpoints.sse`): its own chunked framing (none for an HTTP/1.0
client), keep-alive comments and send deadlines from one keeper task per server, its own
clean-up when the client goes, and the end of every stream when the server stops. aiohttp
no longer sees any of it, so each of those duties is proved here over real sockets on
127.0.0.1:0, by what a client reads and by the server's session table.

The keep-alive period is the module constant ``KEEPALIVE_SECONDS`` (15 s); the test that
waits for a keep-alive sets it, with ``monkeypatch``, to a fraction of a second on the
in-process server: configuration of the server under test, not a stand-in for any of it.

Each scenario runs twice: on pytest's asyncio loop (through the ``start_mcp_server``
fixture), and on uvloop, which ``mcp-server`` runs on where it is installed and whose
transports pause, buffer and change protocols by their own code (``test_on_uvloop``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from mcp_multi.server.app import RunningServer, start_server
from mcp_multi.server.endpoints import sse as sse_endpoint
from mcp_multi.server.settings import ServerSettings

from ..conftest import StartServer
from .wire import SSEPeer, read_event

DEADLINE = 10.0  # seconds any one wait may take before the test fails


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait until ``condition()`` holds, failing with ``what`` after :data:`DEADLINE`."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + DEADLINE
    while not condition():
        assert loop.time() < give_up, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def call(id: int, text: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"message": text}}}


def echoed(reply: dict[str, Any]) -> str:
    """The text an ``echo`` answer carries (the tool answers ``Echo: <message>``)."""
    return str(reply["result"]["content"][0]["text"]).removeprefix("Echo: ")


async def idle_stream_gets_keepalive_comments(
        server: RunningServer, caplog: pytest.LogCaptureFixture) -> None:
    """A quiet stream gets the keeper's comment, again and again, and still carries answers."""
    peer = await SSEPeer.connect(server.base_url)
    try:
        comments = 0
        while comments < 3:  # the keeper comes back, not once only
            line = await asyncio.wait_for(peer.stream.content.readline(), DEADLINE)
            assert line, "the stream ended"
            if line.startswith(b":"):
                assert line.strip() == b": keepalive"
                comments += 1
        await peer.initialize()  # the stream still carries answers between the comments
        assert echoed(await peer.request("tools/call", call(1, "hi")["params"], id=1)) == "hi"
    finally:
        await peer.close()


async def many_sessions_get_their_own_answers_in_order(
        server: RunningServer, caplog: pytest.LogCaptureFixture) -> None:
    """200 streams at once: each gets its own answers, each right after its call."""
    sessions = 200
    peers = await asyncio.wait_for(
        asyncio.gather(*(SSEPeer.connect(server.base_url) for _ in range(sessions))), DEADLINE)
    try:
        assert len(server.state.sse_sessions) == sessions
        assert len({peer.session_id for peer in peers}) == sessions

        async def converse(n: int, peer: SSEPeer) -> list[str]:
            await peer.initialize()
            texts = []
            for id in range(1, 4):
                await peer.send(call(id, f"session {n} call {id}"))
                reply = await peer.recv()  # the very next event is this call's answer
                assert reply["id"] == id, reply
                texts.append(echoed(reply))
            return texts

        answers = await asyncio.wait_for(
            asyncio.gather(*(converse(n, peer) for n, peer in enumerate(peers))), 4 * DEADLINE)
        assert answers == [[f"session {n} call {id}" for id in range(1, 4)]
                           for n in range(sessions)]
    finally:
        await asyncio.gather(*(peer.close() for peer in peers))
    await until(lambda: len(server.state.sse_sessions) == 0, "every session to close")


async def a_client_that_goes_is_cleaned_up(
        server: RunningServer, caplog: pytest.LogCaptureFixture) -> None:
    """Streams whose clients hang up leave the table, the gauge and the POST endpoint."""
    table, stats = server.state.sse_sessions, server.state.stats
    peers = [await SSEPeer.connect(server.base_url) for _ in range(5)]
    try:
        assert len(table) == 5 and stats.connections == 5
        gone, kept = peers[:3], peers[3:]
        for peer in gone:
            await peer.close()
        await until(lambda: len(table) == 2, "the three sessions that went to be removed")
        assert {peer.session_id for peer in kept} == set(table)
        assert stats.connections == 2
        async with aiohttp.ClientSession() as http, \
                http.get(server.base_url + "/metrics") as resp:
            gauge = [line for line in (await resp.text()).splitlines()
                     if line.startswith("mcp_connections{") and 'transport="sse"' in line]
        assert len(gauge) == 1 and gauge[0].endswith("} 2"), gauge
        for peer in gone:  # their POST endpoint is gone with them
            resp = await kept[0].post(b"{}", url=peer.base_url + peer.endpoint)
            assert resp.status == 404
        await kept[0].initialize()  # the others still serve
    finally:
        for peer in peers:
            await peer.close()
    await until(lambda: len(table) == 0 and stats.connections == 0, "every session to close")


async def http10_client_gets_an_unchunked_stream(
        server: RunningServer, caplog: pytest.LogCaptureFixture) -> None:
    """An HTTP/1.0 client gets the bare event stream, answers on it, and EOF at shutdown."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(b"GET /sse HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE)
        assert head.startswith(b"HTTP/1.0 200") or head.startswith(b"HTTP/1.1 200"), head
        assert b"chunked" not in head.lower(), head
        # The body is the bare event stream: no chunk sizes between the events.
        assert (await asyncio.wait_for(reader.readline(), DEADLINE)).strip() == b"event: endpoint"
        data = (await asyncio.wait_for(reader.readline(), DEADLINE)).decode()
        endpoint = data.removeprefix("data: ").strip()
        assert endpoint.startswith("/message?sessionId="), data
        async with aiohttp.ClientSession() as http:
            async def post(message: dict[str, Any]) -> None:
                async with http.post(server.base_url + endpoint, json=message) as resp:
                    assert resp.status == 202

            async def answer() -> dict[str, Any]:
                event = await read_event(reader)  # type: ignore[arg-type]
                assert event is not None and event.event == "message", event
                return orjson.loads(event.data)  # type: ignore[no-any-return]

            await post({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2024-11-05", "capabilities": {},
                "clientInfo": {"name": "http10", "version": "0"}}})
            assert (await answer())["result"]["protocolVersion"] == "2024-11-05"
            await post({"jsonrpc": "2.0", "method": "notifications/initialized"})
            await post(call(1, "over HTTP/1.0"))
            assert echoed(await answer()) == "over HTTP/1.0"
        closing = asyncio.create_task(server.close())
        rest = await asyncio.wait_for(reader.read(), DEADLINE)  # the server closes: EOF
        assert b"event:" not in rest and b"0\r\n\r\n" not in rest
        await asyncio.wait_for(closing, DEADLINE)
    finally:
        writer.close()


async def stalled_stream(server: RunningServer) -> tuple[socket.socket, str]:
    """Open ``GET /sse`` on a socket with a tiny receive buffer, read up to the endpoint
    event, and return the socket (which the caller never reads again) and the POST URL."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", server.port))
    await loop.sock_sendall(sock, b"GET /sse HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    seen = b""
    while b"sessionId=" not in seen or not seen.endswith(b"\r\n"):
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 1), DEADLINE)
        assert chunk, seen
        seen += chunk
    endpoint = seen.rsplit(b"data: ", 1)[1].strip().decode()
    return sock, server.base_url + endpoint


async def flood(http: aiohttp.ClientSession, url: str, calls: int, text: str) -> list[int]:
    """Initialize the session at ``url`` and POST up to ``calls`` echo calls of ``text``;
    the statuses, stopping at the first 404 (the session was ended)."""
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2024-11-05", "capabilities": {},
        "clientInfo": {"name": "stalled", "version": "0"}}}
    statuses = []
    for i, body in enumerate([init, *(call(i, text) for i in range(1, calls + 1))]):
        async with http.post(url, json=body) as resp:
            statuses.append(resp.status)
        if resp.status == 404 or i == 0:
            if resp.status == 404:
                break
            async with http.post(url, json={"jsonrpc": "2.0",
                                            "method": "notifications/initialized"}) as resp:
                assert resp.status == 202
    return statuses


async def drained_to_the_end(sock: socket.socket) -> None:
    """Read ``sock`` until the server's end of it (EOF or reset)."""
    loop = asyncio.get_running_loop()
    with contextlib.suppress(ConnectionResetError):
        while await asyncio.wait_for(loop.sock_recv(sock, 1 << 16), DEADLINE):
            pass


async def reader_over_its_byte_budget_is_cut_off_alone(
        server: RunningServer, caplog: pytest.LogCaptureFixture) -> None:
    """A client that never reads is dropped past its byte bound; the others still serve."""
    healthy = await SSEPeer.connect(server.base_url)
    await healthy.initialize()
    sock, url = await stalled_stream(server)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=DEADLINE)) as http:
            statuses = await flood(http, url, 2000, "x" * 50_000)  # up to 100 MB unread
        assert statuses[0] == 202 and statuses[-1] == 404, statuses[-3:]
        assert set(server.state.sse_sessions) == {healthy.session_id}
        assert server.state.sse_buffer.used == 0  # what the dropped stream held is given back
        reply = await healthy.request("tools/call", call(1, "still here")["params"], id=1)
        assert echoed(reply) == "still here"
        await drained_to_the_end(sock)
    finally:
        sock.close()
        await healthy.close()


async def reader_stalled_past_the_send_timeout_is_cut_off_alone(
        server: RunningServer, caplog: pytest.LogCaptureFixture) -> None:
    """A client that never reads is dropped past the send deadline, below its byte bound."""
    # 8 MB may wait (SCENARIOS): the stream is dropped by the deadline, not by a bound.
    healthy = await SSEPeer.connect(server.base_url)
    await healthy.initialize()
    sock, url = await stalled_stream(server)
    session_id = url.rsplit("=", 1)[1]
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=DEADLINE)) as http:
            # ~6 MB of answers: more than the sockets hold, less than the stream may keep.
            statuses = await flood(http, url, 120, "x" * 50_000)
        assert 404 not in statuses
        await until(lambda: session_id not in server.state.sse_sessions,
                    "the stalled stream to be dropped")
        assert set(server.state.sse_sessions) == {healthy.session_id}
        assert f"sse session {session_id} closed: the client read nothing for" in caplog.text
        reply = await healthy.request("tools/call", call(1, "still here")["params"], id=1)
        assert echoed(reply) == "still here"
        await drained_to_the_end(sock)
    finally:
        sock.close()
        await healthy.close()


async def shutdown_ends_every_open_stream(
        server: RunningServer, caplog: pytest.LogCaptureFixture) -> None:
    """Stopping the server ends every open stream cleanly, without a hang."""
    peers = [await SSEPeer.connect(server.base_url) for _ in range(20)]
    try:
        await peers[0].initialize()
        closing = asyncio.create_task(server.close())
        for peer in peers:
            # A clean end of the chunked body (aiohttp raises on a cut one), not a hang.
            rest = await asyncio.wait_for(peer.stream.content.read(), DEADLINE)
            assert b"event:" not in rest
            assert peer.stream.content.at_eof()
        await asyncio.wait_for(closing, DEADLINE)
        assert len(server.state.sse_sessions) == 0
    finally:
        for peer in peers:
            await peer.close()


Scenario = Callable[[RunningServer, pytest.LogCaptureFixture], Awaitable[None]]

# Each scenario and the settings of the server it runs against.
SCENARIOS: dict[str, tuple[dict[str, Any], Scenario]] = {
    "keepalive": ({}, idle_stream_gets_keepalive_comments),
    "200 sessions": ({}, many_sessions_get_their_own_answers_in_order),
    "client goes": ({}, a_client_that_goes_is_cleaned_up),
    "HTTP/1.0": ({}, http10_client_gets_an_unchunked_stream),
    "byte budget": ({"max_message_size": 64 * 1024, "session_buffer_bytes": 256 * 1024},
                    reader_over_its_byte_budget_is_cut_off_alone),
    "send timeout": ({"max_message_size": 64 * 1024, "send_timeout": 1.0,
                      "session_buffer_bytes": 8 * 2**20},
                     reader_stalled_past_the_send_timeout_is_cut_off_alone),
    "shutdown": ({}, shutdown_ends_every_open_stream),
}


@pytest.fixture
def quick_keepalives(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Keep-alives every 0.2 s in every scenario (so they interleave with the events of
    all of them), and the stream endpoint's INFO lines captured."""
    monkeypatch.setattr(sse_endpoint, "KEEPALIVE_SECONDS", 0.2)
    caplog.set_level(logging.INFO, logger=sse_endpoint.__name__)


@pytest.mark.usefixtures("quick_keepalives")
@pytest.mark.parametrize("name", SCENARIOS)
async def test_on_asyncio(name: str, start_mcp_server: StartServer,
                          caplog: pytest.LogCaptureFixture) -> None:
    overrides, scenario = SCENARIOS[name]
    await scenario(await start_mcp_server(**overrides), caplog)


@pytest.mark.usefixtures("quick_keepalives")
@pytest.mark.parametrize("name", SCENARIOS)
def test_on_uvloop(name: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    uvloop = pytest.importorskip("uvloop")
    overrides, scenario = SCENARIOS[name]

    async def run() -> None:
        server = await start_server(ServerSettings(host="127.0.0.1", port=0, root=tmp_path,
                                                   **overrides))
        try:
            await scenario(server, caplog)
        finally:
            await server.close()

    uvloop.run(run())
