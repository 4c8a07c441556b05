"""Instructions per ``tools/call echo``, counted by callgrind: a yardstick no neighbour bends.

Run by hand (it needs valgrind; about a quarter of an hour)::

    uv run python benchmarks/bench_instructions.py [--calls 960 2880] [--connections 1 32]
                                                   [--json]

The rate ratios of ``benchmarks/run.py`` are what issue 12's targets are judged by, but on a
small shared machine one 5 s measurement may differ from the next by a third. This script
counts instead: each server runs under ``valgrind --tool=callgrind`` on a free loopback port,
clients send it calls (raw HTTP and WebSocket frames over asyncio streams: no client library
in the way), and the server is stopped and its instruction total read. Two runs with
different call counts are made; their difference divided by the extra calls is the cost of
one call, start-up and shutdown cancelling out.

Each comparison is counted at each ``--connections`` count: one connection making its calls
in sequence, and 32 connections each in a closed loop (one call in flight on each, as run.py's
wrk and lean generator load). The second is the one the rate ratios follow: with many
connections ready at once, an event loop serves several per turn, and what a turn costs is
shared among them. asyncio's loop (the floors') costs much per turn and gains much that way;
uvloop (ours) costs little per turn and has little to gain, so the floors come nearer to us
under load than one connection shows.

Counted are the server's user-space instructions (the interpreter, the event loop,
aiohttp's C parts, orjson), not the kernel's work nor what the caches and branch predictors
make of them. The server's hash seed is fixed, so a count repeats within about 1% (the
client's timing still moves how often the server's loop turns); a change's effect on it is
seen with none of a neighbour's noise.

Compared, ours against the floors of ``benchmarks/_peers.py`` (raw aiohttp answering
JSON-RPC with no MCP logic, on asyncio as in run.py):

- Streamable HTTP, 2026-07-28: stateless POSTs carrying the envelope and mirrored headers;
- Streamable HTTP, 2025-11-25: POSTs in one session opened by ``initialize`` (on the first
  connection; the others call in it, as wrk does in run.py);
- WebSocket: on each connection ``initialize``, then the calls, one frame each.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MODERN, HANDSHAKE = "2026-07-28", "2025-11-25"
ACCEPT = "application/json, text/event-stream"
CALL = {"name": "echo", "arguments": {"message": "hi"}}
META = {"io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientInfo": {"name": "count", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}}
INIT = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": HANDSHAKE, "capabilities": {},
                   "clientInfo": {"name": "count", "version": "1"}}}
TIMEOUT = 120.0  # a server under callgrind starts in seconds, answers in milliseconds


class Failed(Exception):
    """A count that could not be made; the report says why."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Conn:
    """One client connection (asyncio streams, no client library in the way), with what it
    has read but not used."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Conn:
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                return cls(*await asyncio.open_connection("127.0.0.1", port))
            except OSError:
                if time.monotonic() > deadline:
                    raise Failed("the server did not listen") from None
                await asyncio.sleep(0.2)

    async def take(self, size: int) -> bytes:
        try:
            return await self.reader.readexactly(size)
        except asyncio.IncompleteReadError:
            raise Failed("the server closed the connection") from None

    async def head(self) -> dict[str, str]:
        try:
            raw = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            raise Failed("the server closed the connection") from None
        lines = raw.decode("latin-1").rstrip().split("\r\n")
        if lines[0].split(" ")[1:2] not in (["200"], ["202"], ["101"]):
            raise Failed(f"answered {lines[0][:80]}")
        return {k.strip().lower(): v.strip()
                for k, _, v in (line.partition(":") for line in lines[1:])}

    async def post(self, headers: dict[str, str], body: dict[str, object]
                   ) -> tuple[dict[str, str], bytes]:
        data = json.dumps(body, separators=(",", ":")).encode()
        fields = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.writer.write(f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                          f"application/json\r\nAccept: {ACCEPT}\r\nContent-Length: "
                          f"{len(data)}\r\n{fields}\r\n".encode() + data)
        got = await self.head()
        return got, await self.take(int(got.get("content-length", "0")))

    def ws_send(self, message: dict[str, object]) -> None:
        data, mask = json.dumps(message).encode(), os.urandom(4)
        size = len(data)
        head = (bytes((0x81, 0x80 | size)) if size < 126
                else bytes((0x81, 0xFE)) + size.to_bytes(2, "big"))
        self.writer.write(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    async def ws_recv(self) -> bytes:
        first = await self.take(2)
        size = first[1] & 0x7F
        if size == 126:
            size = int.from_bytes(await self.take(2), "big")
        elif size == 127:
            size = int.from_bytes(await self.take(8), "big")
        return await self.take(size)


def _check(answer: bytes) -> None:
    if b"Echo: hi" not in answer:
        raise Failed(f"answered {answer[:160]!r}")


# A drive: what one connection does before the measured calls (returning what it needs for
# them), then the calls themselves, each with an id of its own across the connections.
Setup = Callable[[Conn, object], Awaitable[object]]
Calls = Callable[[Conn, object, range], Awaitable[None]]


async def setup_modern(conn: Conn, _shared: object) -> object:
    return {"MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/call", "Mcp-Name": "echo"}


async def calls_modern(conn: Conn, headers: object, ids: range) -> None:
    assert isinstance(headers, dict)
    for i in ids:
        _check((await conn.post(headers, {"jsonrpc": "2.0", "id": i, "method": "tools/call",
                                          "params": {**CALL, "_meta": META}}))[1])


async def setup_session(conn: Conn, shared: object) -> object:
    """The first connection opens the session; the others call in it (as wrk does in run.py)."""
    if isinstance(shared, dict):
        return shared
    got, _ = await conn.post({}, INIT)
    headers = {"MCP-Protocol-Version": HANDSHAKE}
    if "mcp-session-id" in got:  # (the floor answers without one)
        headers["Mcp-Session-Id"] = got["mcp-session-id"]
    await conn.post(headers, {"jsonrpc": "2.0", "method": "notifications/initialized"})
    return headers


async def calls_session(conn: Conn, headers: object, ids: range) -> None:
    assert isinstance(headers, dict)
    for i in ids:
        _check((await conn.post(headers, {"jsonrpc": "2.0", "id": i, "method": "tools/call",
                                          "params": CALL}))[1])


async def setup_ws(conn: Conn, _shared: object) -> object:
    key = base64.b64encode(os.urandom(16)).decode()
    conn.writer.write(f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mcp\r\n\r\n"
                      .encode())
    await conn.head()
    conn.ws_send(INIT)
    await conn.ws_recv()
    conn.ws_send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    return None


async def calls_ws(conn: Conn, _: object, ids: range) -> None:
    for i in ids:
        conn.ws_send({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": CALL})
        _check(await conn.ws_recv())


async def drive(port: int, setup: Setup, calls: Calls, connections: int, each: int) -> None:
    """``connections`` connections set up one after the other, then all making their calls
    at once, each a closed loop (one call in flight per connection, as wrk's are)."""
    conns, shared = [], None
    try:
        for _ in range(connections):
            conn = await Conn.open(port)
            conns.append(conn)
            shared = await setup(conn, shared)
        await asyncio.wait_for(asyncio.gather(*(
            calls(conn, shared, range(1 + k * each, 1 + (k + 1) * each))
            for k, conn in enumerate(conns))), TIMEOUT * 10)
    finally:
        for conn in conns:
            conn.writer.close()


def count(server: list[str], setup: Setup, calls: Calls, connections: int, each: int,
          out: Path) -> int:
    """The instructions a server run answering ``each`` calls on each of ``connections``
    connections took, start to end."""
    port = free_port()
    argv = ["valgrind", "--tool=callgrind", "--cache-sim=no", f"--callgrind-out-file={out}",
            sys.executable, *(a.replace("{port}", str(port)) for a in server)]
    # One hash seed for every count: with a random one, dicts and sets lay out differently
    # from run to run, and a count moves by a percent or two with nothing changed.
    proc = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONHASHSEED": "0"})
    try:
        asyncio.run(drive(port, setup, calls, connections, each))
        time.sleep(0.5)  # the server notices the connections closed
        proc.send_signal(signal.SIGINT)
        proc.wait(TIMEOUT)
    except TimeoutError:
        raise Failed("the calls took too long") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for line in out.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise Failed("callgrind wrote no total")


OURS = ["-m", "mcp_multi.server", "--log-level", "WARNING", "--port", "{port}"]
CASES: list[tuple[str, str, Setup, Calls]] = [
    ("Streamable HTTP 2026-07-28", "floor-http", setup_modern, calls_modern),
    ("Streamable HTTP 2025-11-25", "floor-http", setup_session, calls_session),
    ("WebSocket", "floor-ws", setup_ws, calls_ws),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", nargs=2, type=int, default=[960, 2880],
                        metavar=("FEW", "MANY"),
                        help="the two runs' call counts, shared out among the connections")
    parser.add_argument("--connections", nargs="+", type=int, default=[1, 32], metavar="N",
                        help="the numbers of concurrent connections to count at "
                             "(default: 1 and 32, as run.py loads)")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args()
    few, many = args.calls
    if not 0 < few < many:
        parser.error("--calls wants two counts, the first smaller")
    if any(n < 1 or n > few for n in args.connections):
        parser.error("--connections wants counts from 1 to the smaller call count")
    if shutil.which("valgrind") is None:
        print("not measured: valgrind is not installed (apt-get install valgrind)")
        return 0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for what, floor, setup, calls in CASES:
            for connections in args.connections:
                # Each connection makes the same number of calls; the counts are rounded so.
                each_few, each_many = few // connections, many // connections
                done = (each_many - each_few) * connections
                row: dict[str, object] = {"transport": what, "connections": connections}
                for name, server in (("ours", OURS),
                                     (floor, [str(HERE / "_peers.py"), floor, "{port}"])):
                    try:
                        a, b = (count(server, setup, calls, connections, each,
                                      Path(tmp) / f"{name}.{each}.out")
                                for each in (each_few, each_many))
                        row[name] = round((b - a) / done)
                    except (Failed, OSError, subprocess.TimeoutExpired) as exc:
                        row[name] = f"not measured: {exc}"
                    print(f"{what}, {connections} connection(s): {name} {row[name]}",
                          file=sys.stderr, flush=True)
                ours, base = row["ours"], row[floor]
                if isinstance(ours, int) and isinstance(base, int):
                    row["ratio"] = round(base / ours, 3)  # >= 1: as lean as the floor
                row["floor"] = floor
                rows.append(row)
    if args.json:
        print(json.dumps({"calls": [few, many], "rows": rows}))
        return 0
    print("| transport | connections | ours, instructions/call | floor | floor/ours |\n"
          "|---|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['transport']} | {row['connections']} | {row['ours']} | "
              f"{row[str(row['floor'])]} ({row['floor']}) | {row.get('ratio', '—')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
