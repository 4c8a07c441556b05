"""Hostile peers on stdio, both sides: a line of 50 MiB that does not end, into
``mcp-server --stdio`` and into our client's stdio transport. Neither side keeps it."""

from __future__ import annotations

import asyncio
import logging
import sys
import textwrap
from pathlib import Path

import orjson
import psutil
import pytest

from mcp_multi.transport import StdioTransport, stdio_url
from tests.server.wire import TIMEOUT, StdioPeer

HUGE = 50 * 1024 * 1024
LIMIT = 64 * 1024  # the message size limit each side is given
CHUNK = 1024 * 1024
# What a Python process may grow by while it skips the line: buffers and allocator slack,
# far below the line itself.
GROWTH_BOUND = 16 * 1024 * 1024


async def test_server_skips_a_huge_line_without_holding_it(tmp_path: Path) -> None:
    peer = await StdioPeer.spawn("--root", str(tmp_path), "--max-message-size", str(LIMIT),
                                 "--log-level", "WARNING")
    server = psutil.Process(peer.proc.pid)
    stdin = peer.proc.stdin
    assert stdin is not None
    try:
        await peer.initialize()
        baseline = peer_rss = server.memory_info().rss
        async with asyncio.timeout(TIMEOUT):
            for _ in range(HUGE // CHUNK):  # no newline anywhere
                stdin.write(b"x" * CHUNK)
                await stdin.drain()
                peer_rss = max(peer_rss, server.memory_info().rss)
            # The line has not ended, yet the server has said what is wrong with it, once.
            reply = await peer.recv()
        assert reply["id"] is None and reply["error"]["code"] == -32600
        assert "too large" in reply["error"]["message"]
        assert peer_rss - baseline < GROWTH_BOUND, f"grew by {peer_rss - baseline} bytes"
        await peer.send(b"")  # the end of the huge line
        assert (await peer.request("ping", id=7)) == {"jsonrpc": "2.0", "id": 7, "result": {}}
    finally:
        await peer.close()
    assert peer.proc.returncode == 0


HUGE_SERVER = f"""
import json, sys
out = sys.stdout.buffer
for _ in range({HUGE // CHUNK}):
    out.write(b"y" * {CHUNK})
out.write(b"\\n" + json.dumps({{"jsonrpc": "2.0", "method": "after"}}).encode() + b"\\n")
out.flush()
sys.stdin.read()
"""


class PeakRSS:
    """The most this process's resident memory has grown since it was made."""

    def __init__(self) -> None:
        self._me = psutil.Process()
        self.baseline = self._me.memory_info().rss
        self.growth = 0

    async def watch(self) -> None:
        while True:
            self.growth = max(self.growth, self._me.memory_info().rss - self.baseline)
            await asyncio.sleep(0.005)


async def test_client_skips_a_huge_line_from_its_server(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    script = tmp_path / "huge.py"
    script.write_text(textwrap.dedent(HUGE_SERVER))
    caplog.set_level(logging.WARNING, logger="mcp_multi.transport.stdio")
    transport = StdioTransport(stdio_url([sys.executable, str(script)]), max_message_size=LIMIT,
                               server_name="huge")
    peak = PeakRSS()
    watcher = asyncio.create_task(peak.watch())
    await transport.connect()
    try:
        async with asyncio.timeout(TIMEOUT):
            message = orjson.loads(await transport.receive())
    finally:
        watcher.cancel()
        await transport.close()
    assert message == {"jsonrpc": "2.0", "method": "after"}
    assert peak.growth < GROWTH_BOUND, f"grew by {peak.growth} bytes"
    dropped = [r.getMessage() for r in caplog.records if "dropped a line" in r.getMessage()]
    assert dropped == [f"huge: dropped a line of {HUGE} bytes (over {LIMIT})"]
