"""Runtime configuration: the admin tool enables and disables tools while the server runs,
SIGHUP reloads the policy file, and each session whose view changed is told
(``notifications/tools/list_changed``), over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mcp_multi.server.app import RunningServer

from ...conftest import StartServer
from ..wire import TIMEOUT, RawPeer, WebSocketPeer
from .test_policy import GUEST_TOOLS, OPS_TOKEN, WIRES, ask, names, peer_for, write_policy

LIST_CHANGED = "notifications/tools/list_changed"


@pytest.fixture
async def policy_server(start_mcp_server: StartServer, tmp_path: Path) -> RunningServer:
    return await start_mcp_server(name="admin-server", policy=write_policy(tmp_path))


async def admin(peer: RawPeer, wire: str, id: int, **arguments: str) -> dict[str, Any]:
    return await ask(peer, wire, "tools/call", {"name": "admin_tools", "arguments": arguments},
                     id=id)


# (the admin's transport, the connected guest's)
PAIRS = [("http", "websocket"), ("websocket", "sse"), ("sse", "websocket"),
         ("http-modern", "sse")]


@pytest.mark.parametrize(("wire", "guest_wire"), PAIRS)
async def test_a_runtime_disable_reaches_connected_clients(wire: str, guest_wire: str,
                                                           policy_server: RunningServer
                                                           ) -> None:
    ops = await peer_for(wire, policy_server, OPS_TOKEN)
    guest = await peer_for(guest_wire, policy_server, None)
    try:
        listed = await admin(ops, wire, 1, action="list")
        state = json.loads(listed["result"]["content"][0]["text"])["tools"]
        assert {"name": "echo", "enabled": True} in state
        done = await admin(ops, wire, 2, action="disable", name="echo")
        assert done["result"]["content"][0]["text"] == "Tool 'echo' disabled"
        # The guest may see echo: it is told its list changed, before anything else.
        assert (await guest.recv())["method"] == LIST_CHANGED
        assert names(await guest.request("tools/list", {}, 3)) == ["get_time"]
        refused = await guest.request("tools/call", {"name": "echo",
                                                     "arguments": {"message": "x"}}, 4)
        assert refused["error"]["code"] == -32602
        assert refused["error"]["message"] == "Tool 'echo' is not enabled on this server"
        # run_command is not the guest's: disabling it tells the guest nothing.
        await admin(ops, wire, 5, action="disable", name="run_command")
        assert (await guest.request("ping", {}, 6))["result"] == {}
        again = await admin(ops, wire, 7, action="enable", name="echo")
        assert again["result"]["content"][0]["text"] == "Tool 'echo' enabled"
        assert (await guest.recv())["method"] == LIST_CHANGED
        assert names(await guest.request("tools/list", {}, 8)) == GUEST_TOOLS
    finally:
        await ops.close()
        await guest.close()


@pytest.mark.parametrize("wire", WIRES)
async def test_admin_tool_refuses_what_it_cannot_do(wire: str,
                                                    policy_server: RunningServer) -> None:
    ops = await peer_for(wire, policy_server, OPS_TOKEN)
    try:
        unknown = await admin(ops, wire, 1, action="disable", name="nope")
        assert unknown["result"]["isError"] is True
        assert "No tool 'nope'" in unknown["result"]["content"][0]["text"]
        itself = await admin(ops, wire, 2, action="disable", name="admin_tools")
        assert itself["result"]["isError"] is True
        nameless = await admin(ops, wire, 3, action="enable")
        assert nameless["result"]["isError"] is True
        twice = await admin(ops, wire, 4, action="enable", name="echo")
        assert twice["result"]["content"][0]["text"] == "Tool 'echo' was already enabled"
    finally:
        await ops.close()


# ------------------------------------------------------------------ SIGHUP


@contextlib.asynccontextmanager
async def server_process(*args: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """A real ``mcp-server`` on a free loopback port, and its base URL."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mcp_multi.server", "--port", "0", "--log-level", "INFO", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        first = (await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)).decode()
        port = first.split(" on ", 1)[1].split(" ", 1)[0].rsplit(":", 1)[1]
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), TIMEOUT)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def log_line(proc: asyncio.subprocess.Process, needle: str) -> str:
    """The next line of the server's log holding ``needle``."""
    assert proc.stderr is not None
    while True:
        line = (await asyncio.wait_for(proc.stderr.readline(), TIMEOUT)).decode()
        assert line, "the server's log ended"
        if needle in line:
            return line


async def test_sighup_reloads_the_policy(tmp_path: Path) -> None:
    path = write_policy(tmp_path)
    async with server_process("--policy", str(path)) as (proc, base_url):
        guest = await WebSocketPeer.connect(base_url)
        try:
            await guest.initialize()
            assert names(await guest.request("tools/list", {}, 1)) == GUEST_TOOLS
            path.write_text(path.read_text().replace('tools = ["echo", "get_*"]',
                                                     'tools = ["echo", "math_calc"]'))
            os.kill(proc.pid, signal.SIGHUP)
            assert (await guest.recv())["method"] == LIST_CHANGED
            assert names(await guest.request("tools/list", {}, 2)) == ["echo", "math_calc"]
            await log_line(proc, "policy reloaded")
            # A bad file keeps the policy in force, and says why in one line.
            path.write_text("[roles.guest]\ntool = []\n")
            os.kill(proc.pid, signal.SIGHUP)
            line = await log_line(proc, "policy not reloaded")
            assert "roles.guest: unknown key 'tool'" in line
            assert names(await guest.request("tools/list", {}, 3)) == ["echo", "math_calc"]
            # A change that does not touch the guest's view tells it nothing.
            text = write_policy(tmp_path).read_text()
            path.write_text(text.replace('tools = ["echo", "get_*"]',
                                         'tools = ["echo", "math_calc"]')
                            .replace('prompts = ["*"]', 'prompts = []'))
            os.kill(proc.pid, signal.SIGHUP)
            await log_line(proc, "policy reloaded")
            assert (await guest.request("ping", {}, 4))["result"] == {}
        finally:
            await guest.close()


async def test_sighup_reloads_the_policy_of_a_stdio_server(tmp_path: Path) -> None:
    path = write_policy(tmp_path)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mcp_multi.server", "--stdio", "--policy", str(path),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL)
    assert proc.stdin is not None and proc.stdout is not None
    stdin, stdout = proc.stdin, proc.stdout

    async def send(message: dict[str, Any]) -> None:
        stdin.write(json.dumps(message).encode() + b"\n")
        await stdin.drain()

    async def recv() -> dict[str, Any]:
        line = await asyncio.wait_for(stdout.readline(), TIMEOUT)
        assert line, "the server's stdout ended"
        reply: dict[str, Any] = json.loads(line)
        return reply

    try:
        await send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"}}})
        assert "result" in await recv()
        await send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        await send({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        assert names(await recv()) == GUEST_TOOLS  # a stdio client holds the default role
        path.write_text(path.read_text().replace('tools = ["echo", "get_*"]',
                                                 'tools = ["echo", "math_calc"]'))
        os.kill(proc.pid, signal.SIGHUP)
        assert (await recv())["method"] == LIST_CHANGED
        await send({"jsonrpc": "2.0", "id": 3, "method": "tools/list"})
        assert names(await recv()) == ["echo", "math_calc"]
    finally:
        stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), TIMEOUT)
        except TimeoutError:
            proc.kill()
            await proc.wait()
