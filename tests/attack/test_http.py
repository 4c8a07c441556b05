"""Hostile HTTP peers against the server: bytes that are not UTF-8 in the headers it reads,
malformed requests by the hundred, slow request heads, more connections than it admits.

Every peer here is a raw socket on 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import signal
import sys

import aiohttp
import orjson
import pytest

from ..conftest import StartServer
from ..server.wire import connect

TIMEOUT = 5.0


async def exchange(port: int, raw: bytes) -> bytes:
    """Send ``raw`` on a fresh connection and read until the server closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), TIMEOUT)
    finally:
        writer.close()


def split_response(raw: bytes) -> tuple[int, bytes]:
    """The status code and body of one HTTP/1.x response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    for record in caplog.records:
        assert record.exc_info is None, record.getMessage()
        assert "Traceback" not in record.getMessage()


# ----------------------------------------------------------------- headers that are not UTF-8

ENDPOINTS = [("GET", "/ws"), ("GET", "/sse"), ("POST", "/message?sessionId=x"),
             ("POST", "/mcp"), ("GET", "/mcp"), ("DELETE", "/mcp"), ("GET", "/healthz"),
             ("GET", "/metrics")]
HEADERS = [b"Authorization", b"Origin", b"Host", b"Mcp-Session-Id", b"MCP-Protocol-Version"]


@pytest.mark.parametrize("header", HEADERS, ids=[h.decode() for h in HEADERS])
async def test_header_that_is_not_utf8_is_a_400_on_every_endpoint(
        start_mcp_server: StartServer, caplog: pytest.LogCaptureFixture,
        header: bytes) -> None:
    server = await start_mcp_server(auth_token="s3cret")
    caplog.set_level(logging.DEBUG)
    for method, path in ENDPOINTS:
        lines = [f"{method} {path} HTTP/1.1".encode(), b"Connection: close",
                 b"Content-Type: application/json", b"Content-Length: 2",
                 b"Accept: application/json, text/event-stream"]
        if header != b"Host":
            lines.append(b"Host: 127.0.0.1")
        value = b"Bearer s3cr\xffet" if header == b"Authorization" else b"a\xffb"
        lines.append(header + b": " + value)
        status, body = split_response(await exchange(server.port, b"\r\n".join(lines)
                                                     + b"\r\n\r\n{}"))
        assert status == 400, (header, method, path, status, body)
        error = orjson.loads(body)["error"]
        assert error["code"] == -32600
        assert header.decode() in error["message"] and "UTF-8" in error["message"]
    no_traceback(caplog)


# ----------------------------------------------------------------- malformed requests

_HEAD = b"Host: 127.0.0.1\r\nContent-Type: application/json\r\n" \
        b"Accept: application/json, text/event-stream\r\n"
MALFORMED = [
    b"GARBAGE\r\n\r\n",                                        # no request line
    b"BREW /mcp HTTP/1.1\r\n\r\n",                             # unknown method
    b"GET /mcp HTTP/1.1\r\nBad Header\r\n\r\n",                # header without a colon
    b"GET /\xff HTTP/1.1\r\n\r\n",                             # byte not allowed in a path
    b"GET / HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n",      # header line too long
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",           # TLS on the HTTP port
    b"POST /mcp HTTP/1.1\r\n" + _HEAD + b"Transfer-Encoding: chunked\r\n\r\nZZ\r\n",
    b"POST /mcp HTTP/1.1\r\n" + _HEAD + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\n",
    # A body that does not decompress: read by our handler, not by aiohttp's parser.
    b"POST /mcp HTTP/1.1\r\n" + _HEAD + b"Content-Encoding: gzip\r\nContent-Length: 5\r\n"
    b"Connection: close\r\n\r\nabcde",
]


async def test_malformed_requests_log_a_few_lines_not_a_traceback_each(
        start_mcp_server: StartServer, caplog: pytest.LogCaptureFixture) -> None:
    server = await start_mcp_server()
    caplog.set_level(logging.DEBUG)
    caplog.clear()
    for i in range(200):
        status, _ = split_response(await exchange(server.port, MALFORMED[i % len(MALFORMED)]))
        assert status == 400, (i, MALFORMED[i % len(MALFORMED)][:40])
    await server.close()  # the summary of what was held back is written on close
    no_traceback(caplog)
    lines = [r.getMessage() for r in caplog.records if r.name != "asyncio"]
    assert len(lines) <= 15, lines
    assert sum(len(line) for line in lines) < 4000
    assert any("more malformed HTTP requests" in line for line in lines), lines


# ----------------------------------------------------------------- slow heads, idle keep-alive

async def closed_by_server(reader: asyncio.StreamReader, within: float = TIMEOUT) -> bytes:
    """What the server sent before closing the connection; fails if it stays open."""
    try:
        return await asyncio.wait_for(reader.read(), within)
    except ConnectionResetError:
        return b""


async def trickle(writer: asyncio.StreamWriter, pace: float) -> None:
    """A request head that never ends: one byte every ``pace`` seconds (a slowloris)."""
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    with contextlib.suppress(ConnectionError):
        while not writer.is_closing():
            await asyncio.sleep(pace)  # the attacker's pace, not a wait for the server
            writer.write(b"a")
            await writer.drain()


async def healthz_status(base_url: str) -> int:
    async with aiohttp.ClientSession() as http, \
            http.get(base_url + "/healthz", timeout=aiohttp.ClientTimeout(total=2)) as resp:
        return resp.status


async def test_slow_request_heads_are_cut_while_others_are_served(
        start_mcp_server: StartServer) -> None:
    server = await start_mcp_server(header_timeout=0.5)
    loop = asyncio.get_running_loop()
    # Long-lived streams opened first: past the head deadline, they must live on.
    ws_peer = await connect("websocket", server)
    sse_peer = await connect("sse", server)
    silent = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(3)]
    trickling = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(3)]
    tricklers = [asyncio.create_task(trickle(w, 0.05)) for _, w in trickling]
    # A kept-alive connection whose second head is slow: each head has its own deadline.
    kept_r, kept_w = await asyncio.open_connection("127.0.0.1", server.port)
    kept_w.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert (await asyncio.wait_for(kept_r.readuntil(b"\r\n\r\n"), TIMEOUT)).startswith(
        b"HTTP/1.1 200")
    kept_w.write(b"GET /healthz HTTP/1.1\r\n")
    started = loop.time()
    everyone = asyncio.gather(*(closed_by_server(r) for r, _ in [*silent, *trickling]),
                              closed_by_server(kept_r))
    while not everyone.done():  # a normal client is served all along
        assert await healthz_status(server.base_url) == 200
    await everyone
    assert loop.time() - started < 3.0
    for task in tricklers:
        await asyncio.wait_for(task, TIMEOUT)
    # The streams, older than the deadline, still work.
    await ws_peer.initialize()
    assert (await ws_peer.request("tools/list", id=2))["result"]["tools"]
    await sse_peer.initialize()
    assert (await sse_peer.request("tools/list", id=2))["result"]["tools"]
    for peer in (ws_peer, sse_peer):
        await peer.close()
    for _, writer in [*silent, *trickling, (kept_r, kept_w)]:
        writer.close()


async def test_idle_keepalive_connection_is_closed(start_mcp_server: StartServer) -> None:
    server = await start_mcp_server(keepalive_timeout=0.5, header_timeout=30)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    started = asyncio.get_running_loop().time()
    assert (await closed_by_server(reader)).startswith(b"HTTP/1.1 200")
    assert asyncio.get_running_loop().time() - started < 3.0
    writer.close()


# ----------------------------------------------------------------- more connections than admitted

async def refused(port: int) -> bool:
    """Whether a new connection is turned away at once (a 503, or closed unanswered)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        answer = await closed_by_server(reader, within=2.0)
    finally:
        writer.close()
    assert answer == b"" or answer.startswith(b"HTTP/1.1 503 "), answer[:80]
    if answer:
        assert orjson.loads(split_response(answer)[1])["error"]["code"] == -32600
    return True


async def test_connections_past_the_cap_are_refused_cheaply(
        start_mcp_server: StartServer, caplog: pytest.LogCaptureFixture) -> None:
    server = await start_mcp_server(max_connections=3, header_timeout=30)
    caplog.set_level(logging.INFO)
    holders = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(3)]
    for _ in range(20):
        assert await refused(server.port)
    # One holder leaves: a normal client gets through (as soon as the server saw it go).
    holders.pop()[1].close()
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while (status := await _status_or_refused(server.base_url)) != 200:
        assert asyncio.get_running_loop().time() < deadline, status
    for _, writer in holders:
        writer.close()
    await server.close()
    no_traceback(caplog)
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 2, refusals  # one line, then one count of the rest
    assert any("more connections refused" in line for line in refusals), refusals


async def _status_or_refused(base_url: str) -> int:
    try:
        return await healthz_status(base_url)
    except aiohttp.ClientError:
        return 0


def _low_open_file_limit() -> None:  # runs in the child, before exec
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))


async def test_at_the_open_file_limit_the_server_refuses_instead_of_failing() -> None:
    """With 64 descriptors and no --max-connections, the cap derived from the limit keeps
    accept() from failing: extra peers get a 503, stderr gets a line, not a traceback."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mcp_multi.server", "--port", "0", "--header-timeout", "30",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        preexec_fn=_low_open_file_limit)
    holders: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        port = int(line.split(" on ", 1)[1].split()[0].rsplit(":", 1)[1])
        for _ in range(70):  # more than the 64 descriptors the server has
            holders.append(await asyncio.open_connection("127.0.0.1", port))
        # The server holds what it can; the rest are answered at once.
        answers = await asyncio.gather(*(closed_by_server(r, within=2.0) for r, _ in holders),
                                       return_exceptions=True)
        turned_away = [a for a in answers if isinstance(a, bytes)]
        assert turned_away and len(turned_away) < 30, len(turned_away)
        assert all(a.startswith(b"HTTP/1.1 503 ") for a in turned_away if a)
        for _, writer in holders:
            writer.close()
        deadline = asyncio.get_running_loop().time() + TIMEOUT
        while (status := await _status_or_refused(f"http://127.0.0.1:{port}")) != 200:
            assert asyncio.get_running_loop().time() < deadline, status
    finally:
        for _, writer in holders:
            writer.close()
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), TIMEOUT)
    assert proc.stderr is not None
    stderr = (await proc.stderr.read()).decode()
    assert "Traceback" not in stderr and "out of system resource" not in stderr, stderr
    assert "open-file limit 64" in stderr
    assert len(stderr.splitlines()) < 15, stderr
