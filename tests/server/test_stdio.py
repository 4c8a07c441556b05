"""``mcp-server --stdio`` as a client spawns it: stdout carries only MCP, stdin's end ends it."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import orjson

from .wire import TIMEOUT, StdioPeer

INIT = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {},
    "clientInfo": {"name": "stdio-test", "version": "0"}}}


async def test_stdout_carries_only_messages(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mcp_multi.server", "--stdio", "--log-level", "DEBUG",
        "--root", str(tmp_path),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    command = {"command": "echo out; echo err >&2"}
    lines = [INIT, {"jsonrpc": "2.0", "method": "notifications/initialized"},
             {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
              "params": {"name": "run_command", "arguments": command}}]
    stdin = b"".join(orjson.dumps(line) + b"\n" for line in lines)
    # stdin ends right after the call: the server still answers it, then exits.
    out, err = await asyncio.wait_for(proc.communicate(stdin), TIMEOUT)
    assert proc.returncode == 0
    replies = [orjson.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in replies] == [0, 1]
    assert "out" in replies[1]["result"]["content"][0]["text"]
    assert b"serving MCP on stdio" in err and b"DEBUG" in err


async def test_huge_line_is_refused_and_the_session_lives_on(tmp_path: Path) -> None:
    peer = await StdioPeer.spawn("--root", str(tmp_path), "--max-message-size", "4096")
    await peer.initialize()
    await peer.send(b'{"jsonrpc": "2.0", "id": 5, "method": "ping", "pad": "' + b"x" * 300_000
                    + b'"}')
    reply = await peer.recv()
    assert reply["error"]["code"] == -32600 and "too large" in reply["error"]["message"]
    assert (await peer.request("ping", id=6))["result"] == {}
    await peer.close()
    assert peer.proc.returncode == 0


async def test_stdin_may_be_a_regular_file(tmp_path: Path) -> None:
    requests = tmp_path / "requests.jsonl"
    requests.write_bytes(orjson.dumps(INIT) + b"\n" + orjson.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "ping"}) + b"\n")
    with requests.open("rb") as stdin:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mcp_multi.server", "--stdio", "--root", str(tmp_path),
            stdin=stdin, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode == 0
    assert [orjson.loads(line)["id"] for line in out.splitlines()] == [0, 1]
