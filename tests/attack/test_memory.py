"""Peers that make the server hold memory (issue 8, defect 9 carried to every transport): SSE
streams and Streamable HTTP clients that never read their big replies, and request bodies
trickled in a byte at a time.

Each test gives the server small bounds through its settings, proves that what it holds stays
within them, and that another client is served meanwhile. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson

from ..conftest import StartServer
from ..server.wire import MCP_ACCEPT, SSEPeer, StreamableHTTPPeer, read_event

KIB = 1024
MIB = 1024 * KIB
TIMEOUT = 5.0
INIT_PARAMS = {"capabilities": {}, "clientInfo": {"name": "attacker", "version": "0"}}


def small_buffers(addr_info: Any) -> socket.socket:
    """A client socket whose kernel buffers cannot absorb the replies in the server's stead."""
    family, kind, proto = addr_info[0], addr_info[1], addr_info[2]
    sock = socket.socket(family, kind, proto)
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        sock.setsockopt(socket.SOL_SOCKET, option, 128 * KIB)
    return sock


def echo(i: int, size: int, **meta: Any) -> bytes:
    params: dict[str, Any] = {"name": "echo", "arguments": {"message": "x" * size}}
    if meta:
        params["_meta"] = meta
    return orjson.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": params})


async def until(condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Wait for ``condition`` to hold, looking every few milliseconds, ``timeout`` at most."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - the server's counters have no event
            await asyncio.sleep(0.01)


async def served_meanwhile(request: Callable[[], Awaitable[str]]) -> None:
    assert await asyncio.wait_for(request(), TIMEOUT) == "Echo: hi"


# ----------------------------------------------------------------- legacy SSE


async def test_sse_streams_not_read_are_bounded_server_wide(
        start_mcp_server: StartServer) -> None:
    """Six streams, each under its own bound, together over the server's: the ones holding
    the most are ended, what waits stays within the bound, and a reading client is served."""
    server = await start_mcp_server(max_message_size=512 * KIB, session_buffer_bytes=64 * MIB,
                                    sse_total_buffer=4 * MIB)
    state, url = server.state, server.base_url
    connector = aiohttp.TCPConnector(socket_factory=small_buffers, limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        streams, endpoints = [], []
        for _ in range(6):
            stream = await http.get(url + "/sse")
            endpoint = await asyncio.wait_for(read_event(stream.content), TIMEOUT)
            assert endpoint is not None and endpoint.event == "endpoint"
            streams.append(stream)
            endpoints.append(url + endpoint.data)

        async def flood(endpoint: str) -> None:
            """Initialize, then 32 echoes of 256 KiB (8 MiB), reading none of the replies."""
            init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
                    "params": {"protocolVersion": "2024-11-05", **INIT_PARAMS}}
            for i, body in enumerate([orjson.dumps(init),
                                      *(echo(n, 256 * KIB) for n in range(1, 33))]):
                async with http.post(endpoint, data=body,
                                     headers={"Content-Type": "application/json"}) as resp:
                    if resp.status == 404:  # its stream was ended
                        return
                    assert resp.status == 202, (i, resp.status)

        reader = await SSEPeer.connect(url)
        await reader.initialize("2024-11-05")
        await asyncio.wait_for(asyncio.gather(*(flood(e) for e in endpoints)), 4 * TIMEOUT)

        async def call() -> str:
            reply = await reader.request("tools/call", {"name": "echo",
                                                        "arguments": {"message": "hi"}}, id=9)
            return str(reply["result"]["content"][0]["text"])

        # Streams were ended though none passed its own 64 MiB: the server's bound did it.
        await until(lambda: len(state.sse_sessions) < 7)
        await served_meanwhile(call)
        # What waited stayed within the bound, give or take the one event being charged.
        assert state.sse_buffer.peak <= 4 * MIB + 257 * KIB
        for stream in streams:
            stream.close()
        await until(lambda: len(state.sse_sessions) == 1)
        await reader.close()
        await until(lambda: state.sse_buffer.used == 0)


# ----------------------------------------------------------------- slow request bodies


async def trickle(port: int, path: str, headers: bytes) -> tuple[bytes, float]:
    """A complete head declaring a 1 MB body, then a byte every 50 ms until the server
    answers; its answer (read to the close) and how long it took.

    The server closes with drip bytes it never read, so the close may come as a reset
    instead of an end of stream, right behind the answer. The answer is read from the plain
    socket, which gives what arrived before the reset (a StreamReader would drop it for the
    error when the reset comes before the reader runs, as it does on a busy machine).
    """
    loop = asyncio.get_running_loop()
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setblocking(False)
    started = loop.time()

    async def drip() -> None:
        with contextlib.suppress(OSError):  # the server has closed: the attack is over
            while True:
                await loop.sock_sendall(sock, b" ")
                await asyncio.sleep(0.05)  # the attack's own pace, not a wait for the server

    async def answer() -> bytes:
        chunks = []
        with contextlib.suppress(ConnectionResetError):
            while chunk := await loop.sock_recv(sock, 64 * KIB):
                chunks.append(chunk)
        return b"".join(chunks)

    try:
        await loop.sock_sendall(sock, b"POST " + path.encode() + b" HTTP/1.1\r\n"
                                b"Host: 127.0.0.1\r\nContent-Type: application/json\r\n"
                                b"Content-Length: 1000000\r\n" + headers + b"\r\n")
        dripping = asyncio.create_task(drip())
        try:
            received = await asyncio.wait_for(answer(), TIMEOUT)
        finally:
            dripping.cancel()
            await asyncio.gather(dripping, return_exceptions=True)
        return received, loop.time() - started
    finally:
        sock.close()


async def test_a_trickled_body_is_timed_out_with_408(start_mcp_server: StartServer) -> None:
    server = await start_mcp_server(body_timeout=1.0, max_message_size=2 * MIB)
    sse = await SSEPeer.connect(server.base_url)
    slow = [trickle(server.port, "/mcp", f"Accept: {MCP_ACCEPT}\r\n".encode()),
            trickle(server.port, sse.endpoint, b"")]
    trickling = asyncio.gather(*slow)
    # Another client is served meanwhile.
    await sse.initialize("2024-11-05")
    reply = await sse.request("tools/call", {"name": "echo", "arguments": {"message": "hi"}})
    assert reply["result"]["content"][0]["text"] == "Echo: hi"
    for answer, took in await trickling:
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 "), head
        error = orjson.loads(body)["error"]
        assert error["code"] == -32600 and "did not arrive within 1 s" in error["message"]
        assert took < 3.0  # answered at the deadline, then closed (the read saw the end)
    await sse.close()


# ----------------------------------------------------------------- Streamable HTTP


async def flood_mcp(http: aiohttp.ClientSession, url: str, headers: dict[str, str],
                    count: int, size: int) -> list[str]:
    """``count`` echoes of ``size`` bytes, each asking for progress (so each is answered as
    an SSE stream kept for replay), each connection dropped unread; the streams' keys."""
    keys = []
    for i in range(1, count + 1):
        async with http.post(url, data=echo(i, size, progressToken=i), headers=headers) as resp:
            assert resp.status == 200 and resp.content_type == "text/event-stream"
            priming = await asyncio.wait_for(read_event(resp.content), TIMEOUT)
            assert priming is not None and priming.id.endswith("-0")
            keys.append(priming.id.removesuffix("-0"))
            resp.close()  # read nothing more
    return keys


async def resume(http: aiohttp.ClientSession, url: str, headers: dict[str, str],
                 key: str) -> tuple[int, Any]:
    """``GET`` with ``Last-Event-ID`` at the start of stream ``key``: the status, and the
    response the stream ended with (the error body, when refused)."""
    get_headers = {**headers, "Accept": "text/event-stream", "Last-Event-ID": f"{key}-0"}
    async with http.get(url, headers=get_headers) as resp:
        if resp.status != 200:
            return resp.status, orjson.loads(await resp.read())
        while (event := await read_event(resp.content)) is not None:
            if event.data and "result" in (message := orjson.loads(event.data)):
                return resp.status, message
    return resp.status, None


async def test_mcp_replies_never_read_are_bounded_per_session_and_server_wide(
        start_mcp_server: StartServer) -> None:
    """Echoes of 200 KiB whose streams are dropped unread: each session keeps its newest
    events within its bound (an older stream's resume is told its events are gone), all
    sessions together stay within the server's, and another client is served meanwhile."""
    server = await start_mcp_server(max_message_size=300 * KIB, session_buffer_bytes=MIB,
                                    http_total_buffer=2 * MIB)
    state, url = server.state, server.base_url + "/mcp"
    session_bytes = state.settings.session_bytes  # 1.2 MB: room for 5 replies
    peers = [StreamableHTTPPeer(aiohttp.ClientSession(), url) for _ in range(5)]
    try:
        for peer in peers:
            await peer.initialize()
        first, *others, bystander = peers
        keys = await flood_mcp(first.http, url, first.headers(), 24, 200 * KIB)
        # The newest stream is replayed whole; an older one kept no events: a clear refusal.
        status, message = await resume(first.http, url, first.headers(), keys[-1])
        assert status == 200 and message["id"] == 24
        status, refusal = await resume(first.http, url, first.headers(), keys[10])
        assert status == 400 and "expired Last-Event-ID" in refusal["error"]["message"]
        session = state.http_sessions.get(str(first.session_id))
        assert session is not None and session.held <= session_bytes
        # Three more sessions at once: together they pass the server's bound.
        await asyncio.wait_for(asyncio.gather(*(
            flood_mcp(peer.http, url, peer.headers(), 24, 200 * KIB) for peer in others)),
            4 * TIMEOUT)

        async def call() -> str:
            reply = await bystander.request("tools/call", {"name": "echo",
                                                           "arguments": {"message": "hi"}}, id=7)
            return str(reply["result"]["content"][0]["text"])

        await served_meanwhile(call)
        assert state.http_buffer.peak <= 2 * MIB + 201 * KIB
        assert state.http_buffer.used == sum(s.held for s in state.http_sessions.values())
    finally:
        for peer in peers:
            await peer.close()
    assert state.http_buffer.used == 0


# ----------------------------------------------------------------- responses never taken


class Stalled:
    """One request sent over a socket with small buffers, its answer never read (but for
    what :meth:`read_until` takes)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.port: int = writer.get_extra_info("sockname")[1]

    @classmethod
    async def send(cls, port: int, head: bytes, body: bytes = b"") -> Stalled:
        loop = asyncio.get_running_loop()
        sock = small_buffers((socket.AF_INET, socket.SOCK_STREAM, 0))
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=16 * KIB)
        writer.write(head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        await writer.drain()
        return cls(reader, writer)

    async def read_until(self, marker: bytes) -> bytes:
        return await asyncio.wait_for(self.reader.readuntil(marker), TIMEOUT)


def open_from(server: Any, port: int) -> bool:
    """Whether the server still holds a connection from our local ``port``."""
    for handler in server.runner.server.connections:
        transport = handler.transport
        if transport is not None and not transport.is_closing() \
                and transport.get_extra_info("peername")[1] == port:
            return True
    return False


async def test_responses_never_taken_are_cut_off_at_the_send_timeout(
        start_mcp_server: StartServer) -> None:
    """Clients that ask for 6 MiB replies (as JSON, as an SSE stream on ``/mcp``, as an event
    on ``/sse``) and never read them: past ``send_timeout`` each connection is aborted and
    its handler ends, another client is served meanwhile, and the ``/mcp`` session's stream
    is resumed from another connection."""
    server = await start_mcp_server(max_message_size=8 * MIB, send_timeout=1.0)
    state, url = server.state, server.base_url + "/mcp"
    size = 6 * MIB  # more than the kernel buffers of both ends (4 MiB at most) absorb
    peer = StreamableHTTPPeer(aiohttp.ClientSession(), url)
    stalled: list[Stalled] = []
    try:
        await peer.initialize()
        head = (b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                + b"".join(f"{k}: {v}\r\n".encode() for k, v in peer.headers().items()))
        stalled.append(await Stalled.send(server.port, head, echo(1, size)))
        stalled.append(await Stalled.send(server.port, head, echo(2, size, progressToken=2)))
        match = re.search(rb"id: (\w+)-0", await stalled[-1].read_until(b"retry:"))
        assert match is not None
        key = match[1].decode()
        # The legacy stream reads its endpoint event, then nothing more.
        stalled.append(await Stalled.send(server.port, b"GET /sse HTTP/1.1\r\nHost: 127.0.0.1"
                                          b"\r\nAccept: text/event-stream\r\n"))
        await stalled[-1].read_until(b"sessionId=")
        endpoint = "/message?sessionId=" + (await stalled[-1].read_until(b"\n")).decode()
        init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
                "params": {"protocolVersion": "2024-11-05", **INIT_PARAMS}}
        initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        for body in (orjson.dumps(init), orjson.dumps(initialized), echo(3, size)):
            async with peer.http.post(server.base_url + endpoint.strip(), data=body,
                                      headers={"Content-Type": "application/json"}) as resp:
                assert resp.status == 202
        # Another client is served meanwhile.
        reply = await peer.request("tools/call", {"name": "echo",
                                                  "arguments": {"message": "hi"}}, id=9)
        assert reply["result"]["content"][0]["text"] == "Echo: hi"
        # Past the deadline every stalled connection is dropped and its handler has ended.
        for one in stalled:
            await until(lambda one=one: not open_from(server, one.port))  # type: ignore[misc]
        await until(lambda: len(state.sse_sessions) == 0)
        session = state.http_sessions.get(str(peer.session_id))
        assert session is not None
        await until(lambda: not session.busy)
        # The session is still usable, its SSE-answered stream resumable from elsewhere.
        get_headers = {**peer.headers(), "Accept": "text/event-stream",
                       "Last-Event-ID": f"{key}-0"}
        async with peer.http.get(url, headers=get_headers) as resp:
            assert resp.status == 200
            replayed = await asyncio.wait_for(resp.read(), TIMEOUT)  # the stream has ended
        last = orjson.loads(replayed.rstrip().rpartition(b"\n")[2].removeprefix(b"data: "))
        assert last["id"] == 2
        assert len(last["result"]["content"][0]["text"]) == size + len("Echo: ")
    finally:
        for one in stalled:
            one.writer.close()
        await peer.close()


async def test_a_batch_reply_never_taken_is_cut_off_at_the_send_timeout(
        start_mcp_server: StartServer) -> None:
    """A 2025-03-26 batch of three 2 MiB echoes, its one 6 MiB JSON answer never read: the
    connection is aborted past ``send_timeout`` and the session serves another connection."""
    server = await start_mcp_server(max_message_size=8 * MIB, send_timeout=1.0)
    peer = StreamableHTTPPeer(aiohttp.ClientSession(), server.base_url + "/mcp")
    try:
        await peer.initialize("2025-03-26")
        head = (b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                + b"".join(f"{k}: {v}\r\n".encode() for k, v in peer.headers().items()))
        batch = b"[" + b",".join(echo(i, 2 * MIB) for i in (1, 2, 3)) + b"]"
        stalled = await Stalled.send(server.port, head, batch)
        try:
            await until(lambda: not open_from(server, stalled.port))
        finally:
            stalled.writer.close()
        reply = await peer.request("tools/call", {"name": "echo",
                                                  "arguments": {"message": "hi"}}, id=9)
        assert reply["result"]["content"][0]["text"] == "Echo: hi"
    finally:
        await peer.close()
