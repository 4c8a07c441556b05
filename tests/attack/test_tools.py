"""Hostile callers of the tools, over real sockets: a path swapped for a symbolic link while
``list_files`` runs, and sessions that start more commands than the server allows."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from tests.conftest import StartServer
from tests.server.wire import WebSocketPeer

# Bounds of each case, whichever comes first.
RACE_CALLS = 2000
RACE_SECONDS = 8.0
BATCH = 20  # calls in flight at once on the connection

SWAPPER = """
import os, sys
swap, parked, outside = sys.argv[1:4]
while True:  # a real directory, then a link out of the root, and back, until killed
    os.rename(swap, parked)
    os.symlink(outside, swap)
    os.unlink(swap)
    os.rename(parked, swap)
"""


def _call(id: int, name: str, arguments: dict[str, object]) -> dict[str, object]:
    return {"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": name, "arguments": arguments}}


async def test_list_files_is_not_raced_out_of_its_root(
        start_mcp_server: StartServer, tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "OUTSIDE_MARKER").touch()
    (root / "swap").mkdir()
    (root / "swap" / "inside_marker").touch()
    server = await start_mcp_server(root=root, tools=("list_files",))
    swapper = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SWAPPER, str(root / "swap"), str(root / "parked"), str(outside))
    peer = await WebSocketPeer.connect(server.base_url)
    leaked: list[str] = []
    inside = calls = 0
    try:
        await peer.initialize()
        deadline = time.monotonic() + RACE_SECONDS
        while calls < RACE_CALLS and time.monotonic() < deadline:
            for i in range(BATCH):
                await peer.send(_call(calls + i + 1, "list_files", {"path": "swap"}))
            for _ in range(BATCH):
                text = (await peer.recv())["result"]["content"][0]["text"]
                if "OUTSIDE_MARKER" in text:
                    leaked.append(text)
                inside += "inside_marker" in text
            calls += BATCH
    finally:
        swapper.kill()
        await swapper.wait()
        await peer.close()
    assert not leaked, f"{len(leaked)} of {calls} calls listed the outside directory"
    assert inside > 0, "the race never let the real directory be listed"
