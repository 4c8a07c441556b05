"""Instructions per ``tools/call echo``, counted by callgrind: a yardstick no neighbour bends.

Run by hand (it needs valgrind; about ten minutes)::

    uv run python benchmarks/bench_instructions.py [--calls 200 600] [--json]

The rate ratios of ``benchmarks/run.py`` are what issue 12's targets are judged by, but on a
small shared machine one 5 s measurement may differ from the next by a third. This script
counts instead: each server runs under ``valgrind --tool=callgrind`` on a free loopback port,
one client sends it sequential calls over one connection (a raw socket: no client library in
the way), and the server is stopped and its instruction total read. Two runs with different
call counts are made; their difference divided by the extra calls is the cost of one call,
start-up and shutdown cancelling out. Counted are the server's user-space instructions (the
interpreter, the event loop, aiohttp's C parts, orjson), not the kernel's work nor what the
caches and branch predictors make of them: a ratio of instructions is a floor for the real
speed ratio, and a change's effect on it is exact.

Compared, ours against the floors of ``benchmarks/_peers.py`` (raw aiohttp answering
JSON-RPC with no MCP logic, on asyncio as in run.py):

- Streamable HTTP, 2026-07-28: stateless POSTs carrying the envelope and mirrored headers;
- Streamable HTTP, 2025-11-25: POSTs in a session opened by ``initialize``;
- WebSocket: ``initialize``, then the calls, one frame each.
"""

from __future__ import annotations

import argparse
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
from collections.abc import Callable
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
    """One client connection over a raw socket, with what it has read but not used."""

    def __init__(self, port: int) -> None:
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise Failed("the server did not listen") from None
                time.sleep(0.2)
        self.buf = b""

    def fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise Failed("the server closed the connection")
        self.buf += chunk

    def take(self, size: int) -> bytes:
        while len(self.buf) < size:
            self.fill()
        out, self.buf = self.buf[:size], self.buf[size:]
        return out

    def head(self) -> dict[str, str]:
        while b"\r\n\r\n" not in self.buf:
            self.fill()
        raw, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        if lines[0].split(" ")[1:2] not in (["200"], ["202"], ["101"]):
            raise Failed(f"answered {lines[0][:80]}")
        return {k.strip().lower(): v.strip()
                for k, _, v in (line.partition(":") for line in lines[1:])}

    def post(self, headers: dict[str, str], body: dict[str, object]) -> tuple[dict[str, str],
                                                                          bytes]:
        data = json.dumps(body, separators=(",", ":")).encode()
        fields = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.sock.sendall(f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                          f"application/json\r\nAccept: {ACCEPT}\r\nContent-Length: "
                          f"{len(data)}\r\n{fields}\r\n".encode() + data)
        got = self.head()
        return got, self.take(int(got.get("content-length", "0")))

    def ws_send(self, message: dict[str, object]) -> None:
        data, mask = json.dumps(message).encode(), os.urandom(4)
        size = len(data)
        head = (bytes((0x81, 0x80 | size)) if size < 126
                else bytes((0x81, 0xFE)) + size.to_bytes(2, "big"))
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def ws_recv(self) -> bytes:
        first = self.take(2)
        size = first[1] & 0x7F
        if size == 126:
            size = int.from_bytes(self.take(2), "big")
        elif size == 127:
            size = int.from_bytes(self.take(8), "big")
        return self.take(size)


def _check(answer: bytes) -> None:
    if b"Echo: hi" not in answer:
        raise Failed(f"answered {answer[:160]!r}")


def drive_modern(conn: Conn, calls: int) -> None:
    headers = {"MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/call", "Mcp-Name": "echo"}
    for i in range(1, calls + 1):
        _check(conn.post(headers, {"jsonrpc": "2.0", "id": i, "method": "tools/call",
                                   "params": {**CALL, "_meta": META}})[1])


def drive_session(conn: Conn, calls: int) -> None:
    got, _ = conn.post({}, INIT)
    headers = {"MCP-Protocol-Version": HANDSHAKE}
    if "mcp-session-id" in got:  # (the floor answers without one)
        headers["Mcp-Session-Id"] = got["mcp-session-id"]
    conn.post(headers, {"jsonrpc": "2.0", "method": "notifications/initialized"})
    for i in range(1, calls + 1):
        _check(conn.post(headers, {"jsonrpc": "2.0", "id": i, "method": "tools/call",
                                   "params": CALL})[1])


def drive_ws(conn: Conn, calls: int) -> None:
    key = base64.b64encode(os.urandom(16)).decode()
    conn.sock.sendall(f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mcp\r\n\r\n"
                      .encode())
    conn.head()
    conn.ws_send(INIT)
    conn.ws_recv()
    conn.ws_send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    for i in range(1, calls + 1):
        conn.ws_send({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": CALL})
        _check(conn.ws_recv())


Drive = Callable[[Conn, int], None]


def count(server: list[str], drive: Drive, calls: int, out: Path) -> int:
    """The instructions a server run answering ``calls`` calls took, start to end."""
    port = free_port()
    argv = ["valgrind", "--tool=callgrind", "--cache-sim=no", f"--callgrind-out-file={out}",
            sys.executable, *(a.replace("{port}", str(port)) for a in server)]
    proc = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        conn = Conn(port)
        drive(conn, calls)
        conn.sock.close()
        proc.send_signal(signal.SIGINT)
        proc.wait(TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for line in out.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise Failed("callgrind wrote no total")


OURS = ["-m", "mcp_multi.server", "--log-level", "WARNING", "--port", "{port}"]
CASES: list[tuple[str, str, Drive]] = [
    ("Streamable HTTP 2026-07-28", "floor-http", drive_modern),
    ("Streamable HTTP 2025-11-25", "floor-http", drive_session),
    ("WebSocket", "floor-ws", drive_ws),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", nargs=2, type=int, default=[200, 600],
                        metavar=("FEW", "MANY"), help="the two runs' call counts")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args()
    few, many = args.calls
    if not 0 < few < many:
        parser.error("--calls wants two counts, the first smaller")
    if shutil.which("valgrind") is None:
        print("not measured: valgrind is not installed (apt-get install valgrind)")
        return 0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for what, floor, drive in CASES:
            row: dict[str, object] = {"transport": what}
            for name, server in (("ours", OURS),
                                 (floor, [str(HERE / "_peers.py"), floor, "{port}"])):
                try:
                    a = count(server, drive, few, Path(tmp) / f"{name}.{few}.out")
                    b = count(server, drive, many, Path(tmp) / f"{name}.{many}.out")
                    row[name] = round((b - a) / (many - few))
                except (Failed, OSError, subprocess.TimeoutExpired) as exc:
                    row[name] = f"not measured: {exc}"
                print(f"{what}: {name} {row[name]}", file=sys.stderr, flush=True)
            ours, base = row["ours"], row[floor]
            if isinstance(ours, int) and isinstance(base, int):
                row["ratio"] = round(base / ours, 3)  # >= 1 would be as lean as the floor
            row["floor"] = floor
            rows.append(row)
    if args.json:
        print(json.dumps({"calls": [few, many], "rows": rows}))
        return 0
    print("| transport | ours, instructions/call | floor | floor/ours |\n|---|---:|---:|---:|")
    for row in rows:
        print(f"| {row['transport']} | {row['ours']} | {row[str(row['floor'])]} "
              f"({row['floor']}) | {row.get('ratio', '—')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
