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
