"""The load mode's HTTP/1.1 pool against real servers on 127.0.0.1 port 0.

Well-behaved answers come from aiohttp.web (JSON, chunked, text/event-stream, many at once)
and from our own server (a stateless 2026-07-28 call answered in JSON and as a stream);
misbehaviour from raw asyncio servers that write the answer's bytes themselves (garbage,
a close midway, a reset, silence, a body too big, too many header lines, bytes nobody asked
for). Every wait is on the thing itself with a timeout; nothing asserts on speed.
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

from mcp_multi.client.bench.http1 import (
    MAX_HEAD_BYTES,
    MAX_HEADERS,
    ConnectionLost,
    HTTP1Error,
    HTTP1Pool,
    HTTP1Response,
)
from mcp_multi.server.app import RunningServer

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


async def post(pool: HTTP1Pool, body: bytes = b"{}", timeout: float = WAIT) -> HTTP1Response:
    return await pool.request("POST", "/mcp", JSON_HEADERS, body, timeout=timeout)


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
        pool = HTTP1Pool("127.0.0.1", port)
        first = await post(pool)
        second = await post(pool)
        await pool.close()
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
        pool = HTTP1Pool("127.0.0.1", port)
        answer = await post(pool)
        await pool.close()
    assert answer.headers["content-type"] == "text/event-stream"
    assert answer.body == b"".join(events)


async def test_a_body_of_megabytes_is_returned_whole() -> None:
    big = bytes(range(256)) * 8192  # 2 MiB, many reads

    async def handle(request: web.Request) -> web.Response:
        return web.Response(body=big)

    app = web.Application()
    app.router.add_post("/mcp", handle)
    async with aiohttp_server(app) as port:
        pool = HTTP1Pool("127.0.0.1", port)
        answer = await post(pool)
        await pool.close()
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
        pool = HTTP1Pool("127.0.0.1", state.port)
        first = await post(pool)
        second = await post(pool)
        await pool.close()
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


# -- hostile or broken servers --------------------------------------------------------------

async def test_garbage_is_an_http1_error_and_the_connection_is_closed() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\x00\x01\x02 garbage\r\n\r\n")
        await wait_for_hangup(reader, state)

    async with raw_server(handler) as state:
        pool = HTTP1Pool("127.0.0.1", state.port)
        with pytest.raises(HTTP1Error) as caught:
            await post(pool)
        await asyncio.wait_for(state.hangups.get(), WAIT)
        await pool.close()
    assert type(caught.value) is HTTP1Error
    assert f"bad answer from 127.0.0.1:{state.port}" in str(caught.value)
    assert "\n" not in str(caught.value)


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
    assert type(caught.value) is HTTP1Error


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
        pool = HTTP1Pool("127.0.0.1", state.port)
        first = await post(pool)
        second = await post(pool)
        await pool.close()
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


async def test_a_refused_connection_is_connection_lost() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        pool = HTTP1Pool("127.0.0.1", port)
        with pytest.raises(ConnectionLost, match=f"could not connect to 127.0.0.1:{port}"):
            await post(pool)
        await pool.close()


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
