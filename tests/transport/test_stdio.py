"""The stdio client transport against tiny child scripts: environment, stderr logging, a child
that dies, a child that will not die, and lines too long to take."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import textwrap
import time
from pathlib import Path

import orjson
import psutil
import pytest

from mcp_multi.protocol.errors import ConnectionClosed
from mcp_multi.transport import StdioTransport, stdio_url
from mcp_multi.transport.stdio import parse_stdio_url

TIMEOUT = 10.0
PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}


def script(tmp_path: Path, body: str) -> str:
    """A ``stdio:`` target running ``body`` as a Python script."""
    path = tmp_path / "child.py"
    path.write_text("import json, os, signal, subprocess, sys, time\n" + textwrap.dedent(body))
    return stdio_url([sys.executable, "-u", str(path)])


async def receive(transport: StdioTransport) -> object:
    async with asyncio.timeout(TIMEOUT):
        return orjson.loads(await transport.receive())


async def gone(pid: int, timeout: float = TIMEOUT) -> bool:
    """Whether process ``pid`` has ended (or is a zombie nobody reaped yet) within ``timeout``.

    The process is not our child, so there is nothing to wait on: ask its state until then.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        await asyncio.sleep(0.02)
    return False


def test_stdio_targets_round_trip() -> None:
    argv = [sys.executable, "-m", "pkg", "--name", "two words", "it's"]
    assert parse_stdio_url(stdio_url(argv)) == argv
    assert parse_stdio_url("stdio:npx -y @scope/server /tmp") == [
        "npx", "-y", "@scope/server", "/tmp"]
    for bad in ("stdio:", "stdio:  ", "stdio:'unclosed", "ws://x"):
        with pytest.raises(ValueError):
            parse_stdio_url(bad)


async def test_environment_is_merged_and_stderr_logged_under_the_servers_name(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    target = script(tmp_path, """
        print("hello from stderr", file=sys.stderr)
        request = json.loads(sys.stdin.readline())
        reply = {"jsonrpc": "2.0", "id": request["id"],
                 "result": {"var": os.environ.get("MCP_TEST_VAR"),
                            "path": bool(os.environ.get("PATH")), "cwd": os.getcwd()}}
        print(json.dumps(reply))
        sys.stdin.read()  # until the client closes stdin
        print("bye from stderr", file=sys.stderr)
    """)
    caplog.set_level(logging.INFO, logger="mcp_multi.transport.stdio")
    transport = StdioTransport(target, env={"MCP_TEST_VAR": "set ✓"}, cwd=str(tmp_path),
                               server_name="files")
    await transport.connect()
    try:
        await transport.send(PING)
        assert await receive(transport) == {"jsonrpc": "2.0", "id": 1, "result": {
            "var": "set ✓", "path": True, "cwd": str(tmp_path)}}
    finally:
        await transport.close()
    assert transport.returncode == 0  # it left on its own when stdin closed
    logged = [r.getMessage() for r in caplog.records if r.name == "mcp_multi.transport.stdio"]
    assert "files: hello from stderr" in logged and "files: bye from stderr" in logged


async def test_a_child_that_exits_ends_receive_at_once_saying_why(tmp_path: Path) -> None:
    target = script(tmp_path, """
        sys.stdin.readline()
        print("fatal: cannot open the database", file=sys.stderr)
        sys.exit(3)
    """)
    transport = StdioTransport(target)
    await transport.connect()
    try:
        pending = asyncio.create_task(transport.receive())
        await transport.send(PING)
        with pytest.raises(ConnectionClosed, match=r"exited with code 3; its last output: "
                                                   r"fatal: cannot open the database"):
            async with asyncio.timeout(TIMEOUT):
                await pending
        with pytest.raises(ConnectionClosed, match="exited with code 3"):
            await transport.send(PING)
    finally:
        await transport.close()


async def test_a_send_to_a_child_that_is_exiting_says_how_it_ended(tmp_path: Path) -> None:
    """Writing to a child that closed its stdin on its way out names its exit and last words,
    not the broken pipe."""
    target = script(tmp_path, """
        os.close(0)
        print("usage: child [--good-flag]", file=sys.stderr, flush=True)
        print("stdin closed", flush=True)
        time.sleep(0.3)
        sys.exit(2)
    """)
    transport = StdioTransport(target)
    await transport.connect()
    try:
        async with asyncio.timeout(TIMEOUT):
            assert await transport.receive() == b"stdin closed\n"
            with pytest.raises(ConnectionClosed, match=r"exited with code 2; its last output: "
                                                       r"usage: child"):
                await transport.send(PING)
    finally:
        await transport.close()


async def test_close_escalates_to_kill_and_takes_grandchildren(tmp_path: Path) -> None:
    target = script(tmp_path, """
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        print(json.dumps({"jsonrpc": "2.0", "method": "pid", "params": {"pid": grandchild.pid}}))
        while True:  # deaf to stdin closing and to SIGTERM
            time.sleep(1)
    """)
    transport = StdioTransport(target, close_timeout=0.3)
    await transport.connect()
    note = await receive(transport)
    assert isinstance(note, dict)
    grandchild = note["params"]["pid"]
    start = time.monotonic()
    await transport.close()
    assert time.monotonic() - start < 5
    assert transport.returncode == -9  # SIGKILL after stdin and SIGTERM did nothing
    assert await gone(grandchild)


@pytest.mark.skipif(os.name != "posix", reason="process groups are POSIX")
async def test_close_of_a_polite_child_needs_no_signal(tmp_path: Path) -> None:
    target = script(tmp_path, "sys.stdin.read()\n")
    transport = StdioTransport(target, close_timeout=5)
    await transport.connect()
    start = time.monotonic()
    await transport.close()
    assert transport.returncode == 0 and time.monotonic() - start < 4


async def test_lines_over_the_limit_are_dropped(tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    target = script(tmp_path, """
        print(json.dumps({"jsonrpc": "2.0", "method": "big", "params": {"x": "y" * 5000}}))
        print(json.dumps({"jsonrpc": "2.0", "method": "small"}))
        sys.stdin.read()
    """)
    transport = StdioTransport(target, max_message_size=1024)
    await transport.connect()
    try:
        assert await receive(transport) == {"jsonrpc": "2.0", "method": "small"}
    finally:
        await transport.close()
    assert any("dropped a line of 50" in r.getMessage() for r in caplog.records)
