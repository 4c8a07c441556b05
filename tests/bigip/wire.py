"""Record MCP traffic as a BIG-IP sees it, and write it as the Tcl harness' traffic files.

Theory of operation: :class:`RecordingProxy` is a TCP proxy on ``127.0.0.1:0`` in front of a
real server. Clients talk to the proxy; every read it makes from either side is kept with its
time, connection and direction (:class:`Read`) before it is forwarded, so what is recorded is
exactly what crossed the wire, split where TCP split it. On SSE streams the proxy also forwards
each server read that holds an event's ``data:`` line in two writes, cut in the middle of that
line, so every recording holds events split across segments, as a BIG-IP can receive them.

:func:`to_events` is sans-I/O: it turns the reads into the harness' events by parsing each
direction of each connection as HTTP/1.1 (``Content-Length``, chunked, or until close) and,
after a ``101`` upgrade, as WebSocket frames (unmasked). Response bodies stay split as they
were read (one ``response_data`` per read, de-chunked), which is what an iRule collecting a
stream sees. Text is decoded as UTF-8 with an incremental decoder per body, so a character cut
between two reads is not damaged.

The traffic file (``format`` ``mcp-multi-bigip-traffic/1``) is JSON::

    {"format": ..., "name": ..., "transport": ..., "client": ..., "description": ...,
     "events": [{"t": seconds, "conn": n, "type": ..., ...}, ...]}

with event types ``connect`` (client_addr, client_port), ``request`` (method, uri, version,
headers [[name, value]...], body), ``response`` (status, reason, status_line, headers),
``response_data`` (data), ``response_end``, ``ws_frame`` (from client|server, opcode, fin,
payload) and ``close``.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "FORMAT",
    "Read",
    "RecordingProxy",
    "WireError",
    "to_events",
    "write_traffic",
]

FORMAT = "mcp-multi-bigip-traffic/1"
Event = dict[str, Any]


class WireError(Exception):
    """The recorded bytes are not HTTP/1.1 or WebSocket as we expect them."""


@dataclass(frozen=True, slots=True)
class Read:
    """One read of the proxy: ``data`` is ``b""`` when that side closed."""

    t: float
    conn: int
    direction: str  # "c2s" or "s2c"
    data: bytes


@dataclass(slots=True)
class _Conn:
    client: tuple[str, int]
    t: float
    sse: bool = False


class RecordingProxy:
    """A recording TCP proxy to ``upstream_host:upstream_port``; use as an async context.

    Args:
        upstream_host, upstream_port: the real server.
        split_sse: cut SSE event data lines in two segments (see the module docstring).
    """

    def __init__(self, upstream_host: str, upstream_port: int, *, split_sse: bool = True) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.split_sse = split_sse
        self.reads: list[Read] = []
        self.connections: dict[int, _Conn] = {}
        self._t0 = time.monotonic()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> RecordingProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop accepting, close every connection still open and wait for the pumps."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        for task in self._tasks:
            task.cancel()

    def _now(self) -> float:
        return time.monotonic() - self._t0

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn_id = len(self.connections) + 1
        peer = writer.get_extra_info("peername")
        self.connections[conn_id] = _Conn((str(peer[0]), int(peer[1])), self._now())
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        for coro in (self._pump(conn_id, "c2s", reader, up_writer),
                     self._pump(conn_id, "s2c", up_reader, writer)):
            task = asyncio.ensure_future(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, conn_id: int, direction: str, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> None:
        conn = self.connections[conn_id]
        try:
            while data := await reader.read(65536):
                if direction == "s2c" and not conn.sse and b"text/event-stream" in data:
                    conn.sse = True
                    head_end = data.find(b"\r\n\r\n") + 4
                    pieces = [data[:head_end], *self._split(data[head_end:])]
                elif direction == "s2c" and conn.sse:
                    pieces = self._split(data)
                else:
                    pieces = [data]
                for piece in pieces:
                    if piece:
                        self.reads.append(Read(self._now(), conn_id, direction, piece))
                        writer.write(piece)
                        await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self.reads.append(Read(self._now(), conn_id, direction, b""))
            with contextlib.suppress(ConnectionError, OSError, RuntimeError):
                if writer.can_write_eof():
                    writer.write_eof()
                else:
                    writer.close()

    def _split(self, data: bytes) -> list[bytes]:
        """Cut ``data`` in the middle of its first event data line, if it has one."""
        if not self.split_sse:
            return [data]
        start = data.find(b"data:")
        if start < 0:
            return [data]
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end
        middle = (start + end) // 2
        return [data[:middle], data[middle:]]


# --- sans-I/O conversion of reads to harness events -----------------------------------------


def _headers(block: bytes) -> tuple[str, list[list[str]]]:
    lines = block.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise WireError(f"bad header line {line!r}")
        headers.append([name.strip(), value.strip()])
    return lines[0], headers


def _header(headers: list[list[str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name.lower():
            return value
    return None


def _body_length(headers: list[list[str]]) -> int | None:
    """Content-Length, or None for chunked; raises for a body that runs until close."""
    if (_header(headers, "Transfer-Encoding") or "").lower().endswith("chunked"):
        return None
    length = _header(headers, "Content-Length")
    return int(length) if length is not None else -1


@dataclass(slots=True)
class _BodyReader:
    """De-frames one message body: fixed length, chunked, or until close (length -1)."""

    length: int | None
    buffer: bytes = b""
    remaining: int = 0
    done: bool = False
    _chunk_left: int = 0
    _state: str = "size"  # chunked: size | data | data-crlf | trailer

    def __post_init__(self) -> None:
        self.remaining = self.length if self.length is not None else 0
        if self.length == 0:
            self.done = True

    def feed(self, data: bytes) -> tuple[bytes, bytes]:
        """Returns (body bytes completed by ``data``, bytes left over after the body)."""
        if self.length is not None:
            if self.length < 0:
                return data, b""
            take = data[: self.remaining]
            self.remaining -= len(take)
            self.done = self.remaining == 0
            return take, data[len(take):]
        self.buffer += data
        out = b""
        while not self.done:
            if self._state == "size":
                eol = self.buffer.find(b"\r\n")
                if eol < 0:
                    break
                size = int(self.buffer[:eol].split(b";")[0], 16)
                self.buffer = self.buffer[eol + 2:]
                self._chunk_left = size
                self._state = "data" if size else "trailer"
            elif self._state == "data":
                take = self.buffer[: self._chunk_left]
                out += take
                self.buffer = self.buffer[len(take):]
                self._chunk_left -= len(take)
                if self._chunk_left:
                    break
                self._state = "data-crlf"
            elif self._state == "data-crlf":
                if len(self.buffer) < 2:
                    break
                self.buffer = self.buffer[2:]
                self._state = "size"
            else:  # trailer: we expect no trailer fields, only the final CRLF
                if len(self.buffer) < 2:
                    break
                self.buffer = self.buffer[2:]
                self.done = True
        rest, self.buffer = (self.buffer, b"") if self.done else (b"", self.buffer)
        return out, rest


def _ws_frames(buffer: bytes) -> tuple[list[tuple[bool, int, bytes]], bytes]:
    """Complete frames at the start of ``buffer`` (fin, opcode, unmasked payload), and the rest."""
    frames = []
    while len(buffer) >= 2:
        fin, opcode = bool(buffer[0] & 0x80), buffer[0] & 0x0F
        masked, length = bool(buffer[1] & 0x80), buffer[1] & 0x7F
        pos = 2
        if length == 126:
            if len(buffer) < 4:
                break
            (length,) = struct.unpack("!H", buffer[2:4])
            pos = 4
        elif length == 127:
            if len(buffer) < 10:
                break
            (length,) = struct.unpack("!Q", buffer[2:10])
            pos = 10
        mask = b""
        if masked:
            mask = buffer[pos:pos + 4]
            pos += 4
        if len(buffer) < pos + length:
            break
        payload = buffer[pos:pos + length]
        if masked:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        frames.append((fin, opcode, payload))
        buffer = buffer[pos + length:]
    return frames, buffer


@dataclass(slots=True)
class _Direction:
    """Parser state of one direction of one connection."""

    side: str  # "c2s" or "s2c"
    buffer: bytes = b""
    head: tuple[str, list[list[str]]] | None = None
    body: _BodyReader | None = None
    body_bytes: bytes = b""
    decoder: codecs.IncrementalDecoder | None = None
    websocket: bool = False
    pending_requests: list[str] = field(default_factory=list)


def _utf8() -> codecs.IncrementalDecoder:
    return codecs.getincrementaldecoder("utf-8")(errors="replace")


def _feed(state: _Direction, peer: _Direction, data: bytes) -> Iterator[Event]:
    """Events completed by ``data`` arriving on one direction."""
    state.buffer += data
    while state.buffer:
        if state.websocket:
            frames, state.buffer = _ws_frames(state.buffer)
            for fin, opcode, payload in frames:
                text = payload.decode("utf-8", "replace") if opcode == 1 \
                    else payload.decode("latin-1")
                yield {"type": "ws_frame", "from": "client" if state.side == "c2s" else "server",
                       "opcode": opcode, "fin": fin, "payload": text}
            return
        if state.head is None:
            end = state.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            state.head = _headers(state.buffer[:end])
            state.buffer = state.buffer[end + 4:]
            first, headers = state.head
            if state.side == "s2c":
                version, _, rest = first.partition(" ")
                status_text, _, reason = rest.partition(" ")
                status = int(status_text)
                yield {"type": "response", "status": status, "reason": reason,
                       "status_line": first, "headers": headers}
                request_method = peer.pending_requests.pop(0) if peer.pending_requests else ""
                if status == 101:
                    state.websocket = peer.websocket = True
                    state.head = None
                    yield {"type": "response_end"}
                    continue
                if status in (204, 304) or status < 200 or request_method == "HEAD":
                    state.head = None
                    yield {"type": "response_end"}
                    continue
            length = _body_length(headers)
            if state.side == "c2s" and length == -1:
                length = 0  # a request without Content-Length or chunking has no body
            state.body = _BodyReader(length)
            state.body_bytes = b""
            state.decoder = _utf8()
        assert state.body is not None and state.decoder is not None
        chunk, state.buffer = state.body.feed(state.buffer)
        if state.side == "s2c":
            text = state.decoder.decode(chunk, state.body.done)
            if text:
                yield {"type": "response_data", "data": text}
            if state.body.done:
                state.head = None
                yield {"type": "response_end"}
            continue
        state.body_bytes += chunk
        if not state.body.done:
            return
        first, headers = state.head
        method, uri, version = first.split(" ", 2)
        state.pending_requests.append(method)
        yield {"type": "request", "method": method, "uri": uri,
               "version": version.removeprefix("HTTP/"), "headers": headers,
               "body": state.body_bytes.decode("utf-8", "replace")}
        state.head = None


def to_events(reads: list[Read], connections: dict[int, tuple[str, int]]) -> list[Event]:
    """Turn a proxy recording into harness events, in recorded order.

    Args:
        reads: every read, in the order it happened.
        connections: client address of each connection id.

    Raises:
        WireError: the bytes do not parse as the HTTP/1.1 and WebSocket we expect.
    """
    events: list[Event] = []
    states: dict[int, dict[str, _Direction]] = {}
    eof: dict[int, set[str]] = {}
    for read in reads:
        if read.conn not in states:
            states[read.conn] = {"c2s": _Direction("c2s"), "s2c": _Direction("s2c")}
            addr, port = connections[read.conn]
            events.append({"t": read.t, "conn": read.conn, "type": "connect",
                           "client_addr": addr, "client_port": port})
        state = states[read.conn][read.direction]
        peer = states[read.conn]["c2s" if read.direction == "s2c" else "s2c"]
        if not read.data:
            if state.side == "s2c" and state.head is not None and state.body is not None \
                    and state.body.length == -1:
                state.head = None
                events.append({"t": read.t, "conn": read.conn, "type": "response_end"})
            # The connection is closed when both sides have closed their half.
            sides = eof.setdefault(read.conn, set())
            sides.add(read.direction)
            if len(sides) == 2:
                events.append({"t": read.t, "conn": read.conn, "type": "close"})
            continue
        for event in _feed(state, peer, read.data):
            events.append({"t": read.t, "conn": read.conn, **event})
    return events


def write_traffic(path: Path, *, name: str, transport: str, client: str, description: str,
                  events: list[Event]) -> None:
    """Write one traffic file (ASCII JSON, one event per line for readable diffs)."""
    head = {"format": FORMAT, "name": name, "transport": transport, "client": client,
            "description": description}
    lines = [json.dumps(head)[:-1] + ', "events": [']
    lines += [json.dumps({**event, "t": round(event["t"], 6)}) + "," for event in events]
    if events:
        lines[-1] = lines[-1][:-1]
    lines.append("]}")
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
