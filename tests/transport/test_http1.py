"""The load mode's HTTP/1.1 pool against real servers on 127.0.0.1 port 0.

Well-behaved answers come from aiohttp.web (JSON, chunked, text/event-stream, many at once)
and from our own server (a stateless 2026-07-28 call answered in JSON and as a stream);
misbehaviour from raw asyncio servers that write the answer's bytes themselves (garbage,
a close midway, a reset, silence, a body too big, too many header lines, bytes nobody asked
for). Streamed answers come from raw servers too, which hold the rest of a body back until
the test has read its start, break it midway, or write megabytes a reader does not take.
Every wait is on the thing itself with a timeout; nothing asserts on speed.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from mcp_multi.server.app import RunningServer
from mcp_multi.transport.http1 import (
    MAX_HEAD_BYTES,
    MAX_HEADERS,
    STREAM_HIGH_WATER,
    BodyStream,
    ConnectFailed,
    ConnectionLost,
    HTTP1Error,
    HTTP1Pool,
    HTTP1Response,
    TooLarge,
    header_lines,
    media_type,
)

WAIT = 5.0
JSON_HEADERS = b"Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


# -- servers --------------------------------------------------------------------------------

@asynccontextmanager
async def aiohttp_server(app: web.Application) -> AsyncIterator[int]:
    """Serve ``app`` on 127.0.0.1 port 0; yields the port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class RawServer:
    """A raw server: ``handler`` runs once per connection and writes what it likes."""

    port: int = 0
    connections: int = 0
    requested: asyncio.Event = field(default_factory=asyncio.Event)
    hangups: asyncio.Queue[str] = field(default_factory=asyncio.Queue)


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[RawServer]:
    """Serve ``handler`` on 127.0.0.1 port 0; at the end, wait for every handler to finish
    (the client's hang-up ends those that wait for it)."""
    state = RawServer()
    handlers: set[asyncio.Task[object]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # a cancelled handler ends quietly: asyncio's streams log a cancelled one
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()
        await server.wait_closed()
        if handlers:
            _, late = await asyncio.wait(handlers, timeout=WAIT)
            for task in late:
                task.cancel()
            await asyncio.gather(*late)


async def read_request(reader: asyncio.StreamReader) -> bytes | None:
    """One whole request (head and body), or None when the client hung up first."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + await reader.readexactly(length)


async def wait_for_hangup(reader: asyncio.StreamReader, state: RawServer) -> None:
    """Read until the client closes its end; then say so on ``state.hangups``."""
    while await reader.read(65536):
        pass
    await state.hangups.put("eof")


async def until_hangup(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Keep the connection open until the client closes its end."""
    while await reader.read(65536):
        pass


async def read_and_hold(state: RawServer, reader: asyncio.StreamReader) -> None:
    """Read one request, say so on ``state.requested``, never answer."""
    await read_request(reader)
    state.requested.set()
    await wait_for_hangup(reader, state)


def answering(*answers: bytes, then: Handler | None = None) -> Handler:
    """A handler writing each answer in turn after reading a request, then ``then``."""
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for answer in answers:
            if await read_request(reader) is None:
                return
            writer.write(answer)
            await writer.drain()
        if then is not None:
            await then(reader, writer)
    return handler


async def post(pool: HTTP1Pool, body: bytes = b"{}", timeout: float | None = WAIT) -> HTTP1Response:
    return await pool.request("POST", "/mcp", JSON_HEADERS, body, timeout=timeout)


async def posts(port: int, count: int) -> list[HTTP1Response]:
    """``count`` POSTs in a row through a new pool to ``port``, closed after."""
    pool = HTTP1Pool("127.0.0.1", port)
    try:
        return [await post(pool) for _ in range(count)]
    finally:
        await pool.close()


async def stream_post(pool: HTTP1Pool, timeout: float | None = WAIT) -> HTTP1Response:
    """A POST whose text/event-stream answer is handed over once its head came."""
    return await pool.request("POST", "/mcp", JSON_HEADERS, b"{}", timeout=timeout,
                              stream_type="text/event-stream")


EVENTS = [b'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/progress"}\n\n',
          b'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/message"}\n\n',
          b'event: message\ndata: {"jsonrpc":"2.0","id":1,"result":{}}\n\n']


def stream_head(framing: str, length: int = 0) -> bytes:
    """The head of a text/event-stream answer, its body ``chunked`` or of ``length`` bytes."""
    size = (b"Transfer-Encoding: chunked" if framing == "chunked"
            else b"Content-Length: %d" % length)
    return (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
            + size + b"\r\n\r\n")


def framed(framing: str, piece: bytes) -> bytes:
    """``piece`` of a body as it goes on the wire (a chunk, or as it is)."""
    return b"%x\r\n%s\r\n" % (len(piece), piece) if framing == "chunked" else piece


def body_end(framing: str) -> bytes:
    return b"0\r\n\r\n" if framing == "chunked" else b""


async def read_exactly(stream: BodyStream, size: int) -> bytes:
    """The next ``size`` bytes of ``stream`` (however they are cut into pieces)."""
    got = b""
    async with asyncio.timeout(WAIT):
        while len(got) < size:
            piece = await stream.readany()
            assert piece, f"the stream ended after {len(got)} of {size} bytes"
            got += piece
    return got


async def read_to_end(stream: BodyStream) -> bytes:
    """The rest of ``stream``, up to the ``b""`` that ends it."""
    pieces: list[bytes] = []
    async with asyncio.timeout(WAIT):
        while piece := await stream.readany():
            pieces.append(piece)
    return b"".join(pieces)


# -- well-behaved servers -------------------------------------------------------------------

async def test_a_post_gets_status_headers_and_body() -> None:
    seen: list[web.Request] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request)
        body = await request.read()
        return web.Response(body=b"echo:" + body, content_type="application/json",
                            headers={"X-Mixed-Case": "Yes"})

    app = web.Application()
    app.router.add_post("/mcp", handle)
    async with aiohttp_server(app) as port:
        pool = HTTP1Pool("127.0.0.1", port)
        answer = await pool.request("POST", "/mcp", JSON_HEADERS + b"Mcp-Method: tools/call\r\n",
                                    b'{"id":1}', timeout=WAIT)
        await pool.close()
    assert answer.status == 200
    assert answer.body == b'echo:{"id":1}'
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["x-mixed-case"] == "Yes"
    assert all(name == name.lower() for name in answer.headers)
    request = seen[0]
    assert request.headers["Host"] == f"127.0.0.1:{port}"
    assert request.headers["Content-Length"] == "8"
    assert request.headers["Mcp-Method"] == "tools/call"
    assert request.headers["Accept"] == "application/json, text/event-stream"


async def test_a_get_has_no_content_length_and_error_statuses_are_answers() -> None:
    async def handle(request: web.Request) -> web.Response:
        assert "Content-Length" not in request.headers
        return web.Response(status=404, text="nothing at " + request.path_qs)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    async with aiohttp_server(app) as port:
        pool = HTTP1Pool("127.0.0.1", port)
        answer = await pool.request("GET", "/x?y=1", b"", b"", timeout=WAIT)
        await pool.close()
    assert (answer.status, answer.body) == (404, b"nothing at /x?y=1")


async def test_one_connection_carries_every_sequential_request() -> None:
    peers: set[object] = set()

    async def handle(request: web.Request) -> web.Response:
        peers.add(request.transport)
        return web.Response(body=await request.read())

    app = web.Application()
    app.router.add_post("/mcp", handle)
    async with aiohttp_server(app) as port:
        pool = HTTP1Pool("127.0.0.1", port, limit=4)
        bodies = [(await post(pool, b"%d" % i)).body for i in range(50)]
        await pool.close()
    assert bodies == [b"%d" % i for i in range(50)]
    assert len(peers) == 1


async def test_at_most_limit_connections_are_open_and_callers_wait_in_line() -> None:
    peers: set[object] = set()
    inside = 0
    most_inside = 0
    gate = asyncio.Event()

    async def handle(request: web.Request) -> web.Response:
        nonlocal inside, most_inside
        peers.add(request.transport)
        inside += 1
        most_inside = max(most_inside, inside)
        if most_inside == 3:
            gate.set()
        await asyncio.wait_for(gate.wait(), WAIT)
        inside -= 1
        return web.Response(body=await request.read())

    app = web.Application()
    app.router.add_post("/mcp", handle)
    async with aiohttp_server(app) as port:
        pool = HTTP1Pool("127.0.0.1", port, limit=3)
        answers = await asyncio.gather(*(post(pool, b"%d" % i) for i in range(20)))
        await pool.close()
    assert [a.body for a in answers] == [b"%d" % i for i in range(20)]
    assert most_inside == 3
    assert len(peers) == 3


async def test_a_chunked_answer_is_returned_whole() -> None:
    async def handle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for i in range(10):
            await response.write(b"piece %d;" % i)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/mcp", handle)
    async with aiohttp_server(app) as port:
        first, second = await posts(port, 2)
    assert first.headers["transfer-encoding"] == "chunked"
    assert first.body == second.body == b"".join(b"piece %d;" % i for i in range(10))


async def test_an_event_stream_is_returned_whole() -> None:
    events = [b'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/progress"}\n\n',
              b'event: message\ndata: {"jsonrpc":"2.0","id":1,"result":{}}\n\n']

    async def handle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for event in events:
            await response.write(event)
            await asyncio.sleep(0)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/mcp", handle)
    async with aiohttp_server(app) as port:
        (answer,) = await posts(port, 1)
    assert answer.headers["content-type"] == "text/event-stream"
    assert answer.body == b"".join(events)


async def test_a_body_of_megabytes_is_returned_whole() -> None:
    big = bytes(range(256)) * 8192  # 2 MiB, many reads

    async def handle(request: web.Request) -> web.Response:
        return web.Response(body=big)

    app = web.Application()
    app.router.add_post("/mcp", handle)
    async with aiohttp_server(app) as port:
        (answer,) = await posts(port, 1)
    assert answer.body == big


async def test_our_server_answers_a_stateless_call_in_json_and_as_an_event_stream(
        mcp_server: RunningServer) -> None:
    headers = (JSON_HEADERS + b"MCP-Protocol-Version: 2026-07-28\r\n"
               b"Mcp-Method: tools/call\r\nMcp-Name: echo\r\n")

    def call(request_id: int, meta: dict[str, object]) -> bytes:
        meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"},
                "io.modelcontextprotocol/clientCapabilities": {}, **meta}
        return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
                           "params": {"name": "echo", "arguments": {"message": "hi"},
                                      "_meta": meta}}).encode()

    pool = HTTP1Pool(mcp_server.host, mcp_server.port, limit=1)
    plain = await pool.request("POST", "/mcp", headers, call(1, {}), timeout=WAIT)
    streamed = await pool.request("POST", "/mcp", headers, call(2, {"progressToken": "p"}),
                                  timeout=WAIT)
    await pool.close()
    assert (plain.status, plain.headers["content-type"]) == (200, "application/json")
    assert json.loads(plain.body)["result"]["content"][0]["text"] == "Echo: hi"
    assert (streamed.status, streamed.headers["content-type"]) == (200, "text/event-stream")
    messages = [json.loads(line[len(b"data: "):]) for line in streamed.body.splitlines()
                if line.startswith(b"data: ")]
    assert messages[0]["method"] == "notifications/progress"
    assert messages[-1]["id"] == 2
    assert messages[-1]["result"]["content"][0]["text"] == "Echo: hi"


# -- streamed answers ------------------------------------------------------------------------

@pytest.mark.parametrize("framing", ["chunked", "length"])
async def test_a_streamed_answer_is_handed_over_as_soon_as_its_head_came(framing: str) -> None:
    first, *rest = EVENTS
    go = asyncio.Event()  # set by the test once it read the first event

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(stream_head(framing, len(b"".join(EVENTS))) + framed(framing, first))
        await writer.drain()
        await asyncio.wait_for(go.wait(), WAIT)
        for event in rest:
            writer.write(framed(framing, event))
            await writer.drain()
        writer.write(body_end(framing))
        await answering(ANSWER, then=until_hangup)(reader, writer)

    async with raw_server(handler) as state:
        pool = HTTP1Pool("127.0.0.1", state.port)
        answer = await stream_post(pool)  # the server holds the rest of the body until `go`
        stream = answer.stream
        assert stream is not None
        assert await read_exactly(stream, len(first)) == first
        assert not stream.at_eof
        go.set()
        assert await read_to_end(stream) == b"".join(rest)
        assert stream.at_eof
        assert await stream.readany() == b""
        after = await post(pool)
        await pool.close()
    assert (answer.status, answer.reason, answer.body) == (200, "OK", b"")
    assert answer.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert after.body == b"{}"
    assert state.connections == 1  # the connection went back to the pool at the body's end


async def test_an_answer_of_another_type_comes_whole_though_a_stream_was_asked_for() -> None:
    chunked_json = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n")
    pieces = [b'{"jsonrpc":"2.0",', b'"id":1,', b'"result":{}}']

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(chunked_json)
        for piece in pieces:
            await writer.drain()
            writer.write(framed("chunked", piece))
        writer.write(body_end("chunked"))
        await answering(ANSWER, then=until_hangup)(reader, writer)

    async with raw_server(handler) as state:
        pool = HTTP1Pool("127.0.0.1", state.port)
        first = await stream_post(pool)
        second = await stream_post(pool)
        await pool.close()
    assert (first.stream, first.body) == (None, b"".join(pieces))
    assert (second.stream, second.body) == (None, b"{}")
    assert state.connections == 1


async def test_closing_a_stream_before_its_end_closes_the_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if state.connections == 1:
            await read_request(reader)
            writer.write(stream_head("chunked") + framed("chunked", EVENTS[0])
                         + framed("chunked", EVENTS[1]))
            await wait_for_hangup(reader, state)
        else:
            await answering(ANSWER, then=until_hangup)(reader, writer)

    async with raw_server(handler) as state:
        pool = HTTP1Pool("127.0.0.1", state.port)
        answer = await stream_post(pool)
        assert answer.stream is not None
        assert await read_exactly(answer.stream, len(EVENTS[0])) == EVENTS[0]
        answer.stream.close()
        await asyncio.wait_for(state.hangups.get(), WAIT)
        with pytest.raises(HTTP1Error, match="the stream was closed"):
            await answer.stream.readany()  # not the event still waiting, nor an end
        after = await post(pool)
        await pool.close()
    assert after.body == b"{}"
    assert state.connections == 2


@pytest.mark.parametrize("framing", ["chunked", "length"])
async def test_a_stream_broken_midway_gives_the_pieces_that_came_then_connection_lost(
        framing: str) -> None:
    sent = EVENTS[0] + EVENTS[1]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if state.connections == 1:
            await read_request(reader)
            writer.write(stream_head(framing, 10 * len(sent)) + framed(framing, EVENTS[0]))
            await writer.drain()
            writer.write(framed(framing, EVENTS[1]))
            await writer.drain()  # and the connection is closed with the body far from whole
        else:
            await answering(ANSWER, then=until_hangup)(reader, writer)

    async with raw_server(handler) as state:
        pool = HTTP1Pool("127.0.0.1", state.port, limit=1)
        answer = await stream_post(pool)
        assert answer.stream is not None
        # The broken connection frees the only slot: once this request got through, the
        # stream knows of the break, with everything that came still unread.
        after = await post(pool)
        pieces: list[bytes] = []
        with pytest.raises(ConnectionLost, match="before the whole answer"):
            async with asyncio.timeout(WAIT):
                while True:
                    piece = await answer.stream.readany()
                    assert piece, "a broken stream ended as if it were whole"
                    pieces.append(piece)
        with pytest.raises(ConnectionLost):
            await answer.stream.readany()
        await pool.close()
    assert b"".join(pieces) == sent
    assert after.body == b"{}"
    assert state.connections == 2


async def test_a_stream_not_read_stops_the_server_and_reading_it_lets_it_go_on() -> None:
    total = 16 * 2**20
    piece = b"x" * (64 * 1024)
    written = 0
    finished = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal written
        # A small send buffer (the kernel would grow it to megabytes) keeps the bytes held
        # between the server's writes and the pool's reads well below the body's size.
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 2**16)
        await read_request(reader)
        writer.write(stream_head("length", total))
        for _ in range(total // len(piece)):
            writer.write(piece)
            await writer.drain()
            written += len(piece)
        finished.set()
        await answering(ANSWER, then=until_hangup)(reader, writer)

    async def settled() -> int:
        """The server's count of bytes written once it stopped growing for 0.3 s."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(WAIT):
            last, since = written, loop.time()
            while loop.time() - since < 0.3:
                await asyncio.sleep(0.02)
                if written != last:
                    last, since = written, loop.time()
        return last

    async with raw_server(handler) as state:
        pool = HTTP1Pool("127.0.0.1", state.port)
        answer = await stream_post(pool)
        assert answer.stream is not None
        stalled = await settled()
        assert not finished.is_set()
        # The reader took more than STREAM_HIGH_WATER before it paused, and what the socket
        # buffers hold on both sides is far below the whole body.
        assert STREAM_HIGH_WATER < stalled < total // 2
        size = 0
        async with asyncio.timeout(WAIT):
            while got := await answer.stream.readany():
                assert got.count(b"x") == len(got)
                size += len(got)
        await asyncio.wait_for(finished.wait(), WAIT)
        after = await post(pool)
        await pool.close()
    assert size == written == total
    assert answer.stream.at_eof
    assert after.body == b"{}"
    assert state.connections == 1


async def test_no_timeout_waits_as_long_as_the_answer_takes() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(0.3)
        writer.write(ANSWER)
        await until_hangup(reader, writer)

    async with raw_server(handler) as state:
        pool = HTTP1Pool("127.0.0.1", state.port)
        answer = await asyncio.wait_for(post(pool, timeout=None), WAIT)
        await pool.close()
    assert answer.body == b"{}"


async def test_the_timeout_of_a_streamed_answer_covers_only_its_head() -> None:
    go = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(stream_head("chunked") + framed("chunked", EVENTS[0]))
        await asyncio.wait_for(go.wait(), WAIT)
        writer.write(framed("chunked", EVENTS[1]) + body_end("chunked"))
        await answering(ANSWER, then=until_hangup)(reader, writer)  # then no answer at all

    async with raw_server(handler) as state:
        pool = HTTP1Pool("127.0.0.1", state.port)
        answer = await stream_post(pool, timeout=0.2)
        assert answer.stream is not None
        assert await read_exactly(answer.stream, len(EVENTS[0])) == EVENTS[0]
        await asyncio.sleep(0.4)  # the body takes longer than the request's timeout
        go.set()
        assert await read_to_end(answer.stream) == EVENTS[1]
        after = await post(pool, timeout=0.2)  # the connection is whole, and reused
        assert state.connections == 1
        # A head that does not come within the timeout is one (the server answers no more).
        with pytest.raises(TimeoutError, match=r"within 0\.2 s"):
            await asyncio.wait_for(stream_post(pool, timeout=0.2), WAIT)
        await pool.close()
    assert after.body == b"{}"


@pytest.mark.parametrize("first", ["head", "cancel"])
async def test_a_caller_cancelled_just_as_its_streamed_head_came_closes_the_connection(
        first: str) -> None:
    loop = asyncio.get_running_loop()
    caller: asyncio.Task[HTTP1Response] | None = None

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if state.connections == 1:
            await read_request(reader)
            writer.write(stream_head("chunked") + framed("chunked", EVENTS[0]))
            assert caller is not None
            if first == "head":
                # Due at the loop's next turn, which runs the pool's read of the head first
                # (I/O before due timers): the head is handed over, the caller not resumed.
                loop.call_at(loop.time(), caller.cancel)
            else:
                # Ready before that read: the caller's wait is cancelled when the head comes.
                loop.call_soon(caller.cancel)
            await wait_for_hangup(reader, state)
        else:
            await answering(ANSWER, then=until_hangup)(reader, writer)

    async with raw_server(handler) as state:
        pool = HTTP1Pool("127.0.0.1", state.port, limit=1)
        caller = asyncio.create_task(stream_post(pool))
        with pytest.raises(asyncio.CancelledError):
            await caller
        await asyncio.wait_for(state.hangups.get(), WAIT)  # nobody will read that stream
        after = await post(pool)  # and its slot is free
        await pool.close()
    assert after.body == b"{}"
    assert state.connections == 2


# -- answers that end the connection ---------------------------------------------------------

async def test_connection_close_is_honoured() -> None:
    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nfirst"

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await answering(closing if state.connections == 1 else ANSWER)(reader, writer)
        await wait_for_hangup(reader, state)

    async with raw_server(handler) as state:
        pool = HTTP1Pool("127.0.0.1", state.port)
        first = await post(pool)
        second = await post(pool)
        await asyncio.wait_for(state.hangups.get(), WAIT)
        await pool.close()
    assert (first.body, first.headers["connection"], second.body) == (b"first", "close", b"{}")
    assert state.connections == 2


async def test_a_body_running_until_the_close_is_returned_whole() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of ")
        await writer.drain()
        writer.write(b"it")

    async with raw_server(handler) as state:
        first, second = await posts(state.port, 2)
    assert first.body == second.body == b"all of it"
    assert state.connections == 2


async def test_an_http_1_0_answer_without_keep_alive_is_not_reused() -> None:
    old = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"

    async with raw_server(answering(old, then=until_hangup)) as state:
        pool = HTTP1Pool("127.0.0.1", state.port)
        answers = [await post(pool) for _ in range(2)]
        await pool.close()
    assert [a.body for a in answers] == [b"ok", b"ok"]
    assert state.connections == 2


async def test_interim_answers_are_skipped_and_empty_ones_are_whole() -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    empty = b"HTTP/1.1 204 No Content\r\nX-Kind: empty\r\n\r\n"

    async with raw_server(answering(interim + ANSWER, empty, ANSWER)) as state:
        pool = HTTP1Pool("127.0.0.1", state.port)
        answers = [await post(pool) for _ in range(3)]
        await pool.close()
    assert [(a.status, a.body) for a in answers] == [(200, b"{}"), (204, b""), (200, b"{}")]
    assert "link" not in answers[0].headers
    assert answers[1].headers == {"x-kind": "empty"}
    assert state.connections == 1


async def test_a_head_answer_has_no_body() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"

    async with raw_server(answering(head, then=until_hangup)) as state:
        pool = HTTP1Pool("127.0.0.1", state.port)
        answer = await pool.request("HEAD", "/", b"", b"", timeout=WAIT)
        await pool.close()
    assert (answer.status, answer.headers["content-length"], answer.body) == (200, "1234", b"")


async def test_repeated_header_lines_are_joined() -> None:
    answer = (b"HTTP/1.1 200 OK\r\nVary: Accept\r\nVARY: Origin\r\n"
              b"Content-Length: 0\r\n\r\n")

    async with raw_server(answering(answer)) as state:
        pool = HTTP1Pool("127.0.0.1", state.port)
        got = await post(pool)
        await pool.close()
    assert got.headers["vary"] == "Accept, Origin"


async def test_the_reason_phrase_and_each_set_cookie_line_are_kept() -> None:
    cookies = (b"session=38afes7a8; Path=/; HttpOnly",
               b"id=a3fWa; Expires=Wed, 21 Oct 2037 07:28:00 GMT; Secure")
    teapot = (b"HTTP/1.1 418 I'm a teapot\r\n"
              + b"".join(b"Set-Cookie: %s\r\n" % cookie for cookie in cookies)
              + b"Content-Length: 0\r\n\r\n")

    async with raw_server(answering(teapot, ANSWER, then=until_hangup)) as state:
        first, second = await posts(state.port, 2)
    assert (first.status, first.reason) == (418, "I'm a teapot")
    assert first.cookies == tuple(cookie.decode() for cookie in cookies)
    assert first.headers["set-cookie"] == ", ".join(first.cookies)
    assert (second.reason, second.cookies) == ("OK", ())  # nothing left of the first
    assert state.connections == 1


# -- hostile or broken servers --------------------------------------------------------------

@pytest.mark.parametrize(("garbage", "shown"), [
    (b"SSH-2.0-OpenSSH_9.6\r\n\x00\x01\x02 garbage\r\n\r\n",
     r"SSH-2.0-OpenSSH_9.6\r\n\x00\x01\x02 garbage"),
    (b"this is not http at all\r\n\r\n", r"this is not http at all\r\n\r\n"),
], ids=["ssh", "text"])
async def test_garbage_is_an_http1_error_and_the_connection_is_closed(
        garbage: bytes, shown: str) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(garbage)
        await wait_for_hangup(reader, state)

    async with raw_server(handler) as state:
        pool = HTTP1Pool("127.0.0.1", state.port)
        with pytest.raises(HTTP1Error) as caught:
            await post(pool)
        await asyncio.wait_for(state.hangups.get(), WAIT)
        await pool.close()
    message = str(caught.value)
    assert type(caught.value) is HTTP1Error
    assert f"bad answer from 127.0.0.1:{state.port}" in message
    assert shown in message  # the bytes, escaped
    assert "\n" not in message
    assert "\r" not in message
    assert "\x00" not in message


async def test_a_close_before_any_answer_is_connection_lost() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    async with raw_server(handler) as state:
        pool = HTTP1Pool("127.0.0.1", state.port)
        with pytest.raises(ConnectionLost, match="closed the connection before the whole"):
            await post(pool)
        await pool.close()


async def test_a_close_midway_through_the_body_is_connection_lost() -> None:
    partial = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b"
    partial_chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"

    for answer in (partial, partial_chunked):
        async with raw_server(answering(answer)) as state:
            pool = HTTP1Pool("127.0.0.1", state.port)
            with pytest.raises(ConnectionLost):
                await post(pool)
            await pool.close()


async def test_a_reset_is_connection_lost() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart")
        await writer.drain()
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    async with raw_server(handler) as state:
        pool = HTTP1Pool("127.0.0.1", state.port)
        with pytest.raises(ConnectionLost) as caught:
            await post(pool)
        await pool.close()
    assert "\n" not in str(caught.value)


async def test_silence_is_a_timeout_and_that_connection_is_closed() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if state.connections == 1:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")  # never the rest
            await wait_for_hangup(reader, state)
        else:
            await answering(ANSWER)(reader, writer)

    async with raw_server(handler) as state:
        pool = HTTP1Pool("127.0.0.1", state.port, limit=1)
        with pytest.raises(TimeoutError, match=r"within 0\.2 s"):
            await post(pool, timeout=0.2)
        await asyncio.wait_for(state.hangups.get(), WAIT)
        after = await post(pool)
        await pool.close()
    assert after.body == b"{}"
    assert state.connections == 2


async def test_each_request_on_a_connection_has_its_own_timeout() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await answering(ANSWER)(reader, writer)  # at once
        await read_request(reader)
        await asyncio.sleep(0.7)  # later than the first request's deadline
        writer.write(ANSWER)
        await read_request(reader)
        await until_hangup(reader, writer)  # never answered

    async with raw_server(handler) as state:
        pool = HTTP1Pool("127.0.0.1", state.port, limit=1)
        quick = await post(pool, timeout=0.5)
        slow = await post(pool, timeout=60)  # the first request's timer must not end it
        async with asyncio.timeout(WAIT):  # nor may the second's timer delay the third's
            with pytest.raises(TimeoutError, match=r"within 0\.2 s"):
                await pool.request("POST", "/mcp", b"", b"", timeout=0.2)
        await pool.close()
    assert quick.body == slow.body == b"{}"
    assert state.connections == 1


async def test_waiting_for_a_free_connection_counts_against_the_timeout() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_and_hold(state, reader)

    async with raw_server(handler) as state:
        pool = HTTP1Pool("127.0.0.1", state.port, limit=1)
        stuck = asyncio.create_task(post(pool, timeout=WAIT))
        await asyncio.wait_for(state.requested.wait(), WAIT)
        with pytest.raises(TimeoutError, match="no free connection"):
            await post(pool, timeout=0.2)
        await pool.close()
        with pytest.raises(ConnectionLost, match=r"pool for .* was closed"):
            await stuck


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    + (b"400\r\n" + b"x" * 1024 + b"\r\n") * 5,
    b"HTTP/1.1 200 OK\r\n\r\n" + b"y" * 5000,
], ids=["announced", "chunked", "until-close"])
async def test_a_body_over_max_body_is_refused_and_the_connection_closed(answer: bytes) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer)
        await wait_for_hangup(reader, state)

    async with raw_server(handler) as state:
        pool = HTTP1Pool("127.0.0.1", state.port, max_body=4000)
        with pytest.raises(HTTP1Error, match="over the limit of 4000") as caught:
            await post(pool)
        await asyncio.wait_for(state.hangups.get(), WAIT)
        await pool.close()
    assert type(caught.value) is TooLarge


@pytest.mark.parametrize(("head", "message"), [
    (b"".join(b"X-%d: v\r\n" % i for i in range(MAX_HEADERS + 1)) + b"Content-Length: 0\r\n\r\n",
     "over 100 header lines"),
    (b"X-Long: " + b"a" * (MAX_HEAD_BYTES + 1), "head over"),  # never ends
], ids=["many", "long"])
async def test_too_many_or_too_long_header_lines_are_refused(head: bytes, message: str) -> None:
    async with raw_server(answering(b"HTTP/1.1 200 OK\r\n" + head, then=until_hangup)) as state:
        pool = HTTP1Pool("127.0.0.1", state.port)
        with pytest.raises(HTTP1Error, match=message):
            await post(pool)
        await pool.close()


async def test_endless_trailers_are_refused() -> None:
    endless = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n"
               b"X-Trailer: " + b"t" * (4 * 1000 + 3 * MAX_HEAD_BYTES))
    async with raw_server(answering(endless, then=until_hangup)) as state:
        pool = HTTP1Pool("127.0.0.1", state.port, max_body=1000)
        with pytest.raises(HTTP1Error, match="sent an answer over"):
            await post(pool)
        await pool.close()


async def test_bytes_nobody_asked_for_end_the_connection() -> None:
    async with raw_server(answering(ANSWER + b"HTTP/1.1 200 OK\r\n", ANSWER)) as state:
        first, second = await posts(state.port, 2)
    assert first.body == second.body == b"{}"
    assert state.connections == 2


async def test_a_switch_of_protocols_is_an_http1_error() -> None:
    upgrade = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
               b"Connection: Upgrade\r\n\r\n")
    async with raw_server(answering(upgrade)) as state:
        pool = HTTP1Pool("127.0.0.1", state.port)
        with pytest.raises(HTTP1Error, match="switched protocols"):
            await post(pool)
        await pool.close()


async def test_a_refused_connection_is_connect_failed() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, not listening: a connection is refused
        port = sock.getsockname()[1]
        pool = HTTP1Pool("127.0.0.1", port)
        with pytest.raises(ConnectFailed, match=f"could not connect to 127.0.0.1:{port}") as caught:
            await post(pool)
        await pool.close()
    assert isinstance(caught.value, ConnectionLost)
    assert caught.value.reason == "Connection refused"
    assert str(caught.value).endswith(": Connection refused")


async def test_a_host_name_that_does_not_resolve_is_connect_failed() -> None:
    host = "no-such-host.invalid"  # RFC 6761: never resolves, and fails without the network
    pool = HTTP1Pool(host, 80, connect_timeout=WAIT)
    try:
        with pytest.raises(ConnectFailed) as caught:
            await post(pool, timeout=WAIT)
    except TimeoutError:
        pytest.skip(f"the resolver of this machine did not answer for {host} within {WAIT} s")
    finally:
        await pool.close()
    assert caught.value.reason.startswith("cannot resolve host")
    assert host in caught.value.reason
    assert str(caught.value).startswith(f"could not connect to {host}:80: cannot resolve host")
    assert "\n" not in str(caught.value)


# -- the caller's side ----------------------------------------------------------------------

async def test_a_cancelled_caller_closes_its_connection_and_frees_the_slot() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if state.connections == 1:
            await read_and_hold(state, reader)
        else:
            await answering(ANSWER)(reader, writer)

    async with raw_server(handler) as state:
        pool = HTTP1Pool("127.0.0.1", state.port, limit=1)
        task = asyncio.create_task(post(pool))
        await asyncio.wait_for(state.requested.wait(), WAIT)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(state.hangups.get(), WAIT)
        after = await post(pool)
        await pool.close()
    assert after.body == b"{}"


async def test_close_fails_requests_in_flight_and_callers_in_line() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_and_hold(state, reader)

    async with raw_server(handler) as state:
        pool = HTTP1Pool("127.0.0.1", state.port, limit=1)
        in_flight = asyncio.create_task(post(pool))
        in_line = asyncio.create_task(post(pool))
        await asyncio.wait_for(state.requested.wait(), WAIT)
        await pool.close()
        with pytest.raises(ConnectionLost, match=r"pool for .* was closed"):
            await in_flight
        with pytest.raises(HTTP1Error, match="is closed"):
            await in_line
        with pytest.raises(HTTP1Error, match="is closed"):
            await post(pool)
        await asyncio.wait_for(state.hangups.get(), WAIT)


async def test_what_cannot_be_sent_is_a_value_error() -> None:
    pool = HTTP1Pool("127.0.0.1", 9)
    for method, target, headers in (("POST", "/a b", b""), ("POST", "/\r\nX: 1", b""),
                                    ("P OST", "/", b""), ("POST", "/", b"X-No-End: 1")):
        with pytest.raises(ValueError):
            await pool.request(method, target, headers, b"", timeout=WAIT)
    with pytest.raises(ValueError):
        HTTP1Pool("127.0.0.1", 9, limit=0)
    await pool.close()


def test_header_lines_encodes_each_header_as_a_line() -> None:
    lines = header_lines({"Content-Type": "application/json", "Mcp-Name": "\u00e9cho",
                          "X-Empty": ""})
    assert lines == b"Content-Type: application/json\r\nMcp-Name: \xc3\xa9cho\r\nX-Empty: \r\n"
    assert header_lines({}) == b""


@pytest.mark.parametrize("value", ["a\rb", "a\nb", "a\r\nX-Injected: 1", "a\0b", "end\n"])
def test_header_lines_refuses_a_value_with_a_line_break_or_a_nul(value: str) -> None:
    with pytest.raises(ValueError, match="X-Bad"):
        header_lines({"X-Good": "fine", "X-Bad": value})


@pytest.mark.parametrize("name", ["X Bad", "X-Bad:", ":", "", "X-Bad\r\n", "X-B\u00e4d"])
def test_header_lines_refuses_a_name_that_is_not_a_token(name: str) -> None:
    with pytest.raises(ValueError, match="not an HTTP header name"):
        header_lines({name: "value"})


@pytest.mark.parametrize(("content_type", "kind"), [
    ("Application/JSON; charset=utf-8", "application/json"),
    ("text/event-stream", "text/event-stream"),
    ("  TEXT/Event-Stream ;charset=UTF-8", "text/event-stream"),
    ("", ""),
])
def test_media_type_is_the_lower_case_type_without_parameters(content_type: str,
                                                              kind: str) -> None:
    assert media_type(content_type) == kind
    assert media_type(content_type) == kind  # and again, from the cache
