"""Hostile HTTP peers against the server: bytes that are not UTF-8 in the headers it reads,
malformed requests by the hundred, slow request heads, more connections than it admits.

Every peer here is a raw socket on 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import logging

import orjson
import pytest

from ..conftest import StartServer

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
