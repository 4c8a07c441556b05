"""The recorder's wire parser (sans-I/O) and its proxy, on hand-made bytes and a real socket."""

from __future__ import annotations

import asyncio
import json
import os
import struct
from pathlib import Path

from .wire import Read, RecordingProxy, to_events, write_traffic

CONN = {1: ("127.0.0.1", 40000)}


def _reads(*pieces: tuple[str, bytes]) -> list[Read]:
    return [Read(i / 1000, 1, direction, data) for i, (direction, data) in enumerate(pieces)]


def _types(events: list[dict[str, object]]) -> list[object]:
    return [e["type"] for e in events]


def test_chunked_response_split_anywhere_keeps_the_reads_and_the_text() -> None:
    body = "event: message\r\ndata: {\"text\": \"h\u00e9llo \u2713\"}\r\n\r\n".encode()
    wire = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    request = b"GET /sse HTTP/1.1\r\nHost: x\r\n\r\n"
    for cut in range(1, len(wire)):
        events = to_events(_reads(("c2s", request), ("s2c", head + wire[:cut]),
                                  ("s2c", wire[cut:])), CONN)
        data = "".join(str(e["data"]) for e in events if e["type"] == "response_data")
        assert data == body.decode(), cut
        assert _types(events)[-1] == "response_end"


def test_request_body_by_content_length_and_keep_alive() -> None:
    one = b'POST /mcp HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}'
    two = b'POST /mcp HTTP/1.1\r\nContent-Length: 4\r\n\r\nnull'
    events = to_events(_reads(("c2s", one + two[:10]), ("c2s", two[10:])), CONN)
    requests = [e for e in events if e["type"] == "request"]
    assert [r["body"] for r in requests] == ["{}", "null"]
    assert requests[0]["method"] == "POST" and requests[0]["uri"] == "/mcp"


def _frame(opcode: int, payload: bytes, *, mask: bytes | None) -> bytes:
    head = bytes([0x80 | opcode])
    length = len(payload)
    bit = 0x80 if mask else 0
    head += bytes([bit | 126]) + struct.pack("!H", length) if length > 125 \
        else bytes([bit | length])
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        head += mask
    return head + payload


def test_websocket_frames_after_the_upgrade_are_unmasked() -> None:
    upgrade = b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    switched = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
    message = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "x" * 200}).encode()
    client = _frame(1, message, mask=os.urandom(4))
    server = _frame(1, b'{"jsonrpc":"2.0","id":1,"result":{}}', mask=None)
    events = to_events(_reads(("c2s", upgrade), ("s2c", switched), ("c2s", client[:7]),
                              ("c2s", client[7:]), ("s2c", server), ("c2s", b""),
                              ("s2c", b"")), CONN)
    frames = [e for e in events if e["type"] == "ws_frame"]
    assert [(f["from"], f["opcode"], f["payload"]) for f in frames] == [
        ("client", 1, message.decode()), ("server", 1, '{"jsonrpc":"2.0","id":1,"result":{}}')]
    assert _types(events)[-1] == "close" and _types(events).count("close") == 1


def test_write_traffic_is_ascii_json(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    write_traffic(path, name="t", transport="sse", client="c", description="d",
                  events=[{"t": 0.1234567, "conn": 1, "type": "close", "x": "\u2713"}])
    loaded = json.loads(path.read_text(encoding="ascii"))
    assert loaded["events"] == [{"t": 0.123457, "conn": 1, "type": "close", "x": "\u2713"}]


async def test_proxy_records_and_splits_sse_events_in_two_segments() -> None:
    stream = b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n"

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n" + stream)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with RecordingProxy("127.0.0.1", port) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"GET /sse HTTP/1.1\r\nHost: x\r\n\r\n")
        received = await asyncio.wait_for(reader.read(), 5)
        writer.close()
    server.close()
    assert received.endswith(stream)
    pieces = [r.data for r in proxy.reads if r.direction == "s2c" and r.data]
    assert b"".join(pieces).endswith(stream)
    data_pieces = [p for p in pieces if not p.startswith(b"HTTP/1.1")]
    assert len(data_pieces) == 2 and b"data: " in data_pieces[0]
    assert not data_pieces[0].endswith(b"\n")
    events = to_events(proxy.reads, {c: conn.client for c, conn in proxy.connections.items()})
    assert [e["data"] for e in events if e["type"] == "response_data"] == [
        p.decode() for p in data_pieces]
