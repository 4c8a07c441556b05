"""WebSocket replies on their way out: the replies to frames that arrived together leave
together, in order, and none waits for a frame that is not coming."""

from __future__ import annotations

import asyncio
import base64
import os

import orjson

from ..conftest import StartServer

TIMEOUT = 10.0


def client_frame(message: dict[str, object]) -> bytes:
    """One masked TEXT frame, as a client sends it (RFC 6455 section 5.3)."""
    data, mask = orjson.dumps(message), os.urandom(4)
    size = len(data)
    head = (bytes((0x81, 0x80 | size)) if size < 126
            else bytes((0x81, 0xFE)) + size.to_bytes(2, "big"))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    """The payload of one unmasked server frame."""
    first = await reader.readexactly(2)
    size = first[1] & 0x7F
    if size == 126:
        size = int.from_bytes(await reader.readexactly(2), "big")
    elif size == 127:
        size = int.from_bytes(await reader.readexactly(8), "big")
    return await reader.readexactly(size)


async def upgrade(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                 f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


async def test_frames_sent_together_are_answered_in_order(start_mcp_server: StartServer) -> None:
    server = await start_mcp_server()
    reader, writer = await upgrade(server.port)
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "pipeline", "version": "0"}}}
    writer.write(client_frame(init))
    assert orjson.loads(await asyncio.wait_for(read_frame(reader), TIMEOUT))["id"] == 0
    # Forty requests in one write (one read for the server, or a few): pings and echoes.
    calls = [{"jsonrpc": "2.0", "id": i, "method": "ping"} if i % 2 else
             {"jsonrpc": "2.0", "id": i, "method": "tools/call",
              "params": {"name": "echo", "arguments": {"message": f"m{i}"}}}
             for i in range(1, 41)]
    writer.write(client_frame({"jsonrpc": "2.0", "method": "notifications/initialized"})
                 + b"".join(client_frame(call) for call in calls))
    answers = [orjson.loads(await asyncio.wait_for(read_frame(reader), TIMEOUT))
               for _ in calls]
    assert [a["id"] for a in answers] == list(range(1, 41))
    assert all(a["result"]["content"][0]["text"] == f"Echo: m{a['id']}"
               for a in answers if a["id"] % 2 == 0)
    # One more, alone: its reply does not wait for company.
    writer.write(client_frame({"jsonrpc": "2.0", "id": 99, "method": "ping"}))
    assert orjson.loads(await asyncio.wait_for(read_frame(reader), TIMEOUT)) == {
        "jsonrpc": "2.0", "id": 99, "result": {}}
    writer.close()
