"""Hostile callers of the tools, over real sockets: a path swapped for a symbolic link while
``list_files`` runs, and sessions that start more commands than the server allows."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from tests.conftest import StartServer
from tests.server.wire import TIMEOUT, WebSocketPeer

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


class ChildCount:
    """The most live child processes this process (the server's) has had while it ran."""

    def __init__(self) -> None:
        self.most = 0
        self._me = psutil.Process()

    def now(self) -> int:
        live = 0
        for child in self._me.children():
            with contextlib.suppress(psutil.NoSuchProcess):
                live += child.status() != psutil.STATUS_ZOMBIE
        return live

    async def reach(self, count: int) -> None:
        """Return once ``count`` children are alive (the process table has no event to await)."""
        while True:
            if self.now() >= count:
                return
            await asyncio.sleep(0.01)

    async def watch(self) -> None:
        while True:
            self.most = max(self.most, self.now())
            await asyncio.sleep(0.005)


async def _calls(peer: WebSocketPeer, commands: list[str]) -> list[dict[str, Any]]:
    """Send every command at once on ``peer``; their results, in order."""
    for i, command in enumerate(commands, 1):
        await peer.send(_call(i, "run_command", {"command": command}))
    results: dict[int, dict[str, Any]] = {}
    while len(results) < len(commands):
        reply = await peer.recv()
        if "id" in reply:
            results[reply["id"]] = reply["result"]
    return [results[i] for i in range(1, len(commands) + 1)]


async def test_sessions_together_never_run_more_commands_than_the_cap(
        start_mcp_server: StartServer) -> None:
    cap, sessions, each = 4, 4, 6
    server = await start_mcp_server(max_commands=cap, command_slot_wait=1.0)
    peers = [await WebSocketPeer.connect(server.base_url) for _ in range(sessions)]
    children = ChildCount()
    watcher = asyncio.create_task(children.watch())
    try:
        for peer in peers:
            await peer.initialize()
        async with asyncio.timeout(TIMEOUT):
            answers = await asyncio.gather(*(_calls(p, ["sleep 0.3"] * each) for p in peers))
    finally:
        watcher.cancel()
        for peer in peers:
            await peer.close()
    results = [r for answer in answers for r in answer]
    ran = [r for r in results if not r.get("isError")]
    busy = [r for r in results if r.get("isError")]
    assert len(results) == sessions * each  # every call answered
    assert children.most <= cap, f"{children.most} commands ran at once (cap {cap})"
    assert len(ran) >= cap and busy
    for result in busy:
        assert result["content"][0]["text"].startswith("Server busy: "), result


async def test_one_session_cannot_take_every_slot(start_mcp_server: StartServer) -> None:
    server = await start_mcp_server(max_commands=4, command_slot_wait=0.5)
    greedy = await WebSocketPeer.connect(server.base_url)
    other = await WebSocketPeer.connect(server.base_url)
    children = ChildCount()
    try:
        await greedy.initialize()
        await other.initialize()
        hogging = asyncio.create_task(_calls(greedy, ["sleep 2"] * 4))
        async with asyncio.timeout(TIMEOUT):
            await children.reach(2)  # the greedy session's share is running
            result = await other.request("tools/call", {
                "name": "run_command", "arguments": {"command": "echo mine"}}, id=1)
            assert result["result"]["content"][0]["text"] == "mine\nExit code: 0"
            refused = [r for r in await hogging if r.get("isError")]
        assert len(refused) == 2
        assert refused[0]["content"][0]["text"].startswith(
            "Server busy: this session already runs 2 commands")
    finally:
        await greedy.close()
        await other.close()
