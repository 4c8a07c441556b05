"""Ctrl-C in the shell on a real pseudo-terminal: it aborts the running command, not the client."""

from __future__ import annotations

import asyncio
import fcntl
import os
import select
import sys
import termios
import time

import pytest

from .test_shell import ROOT, TIMEOUT


class Terminal:
    """The master side of a pseudo-terminal, read without blocking the event loop."""

    def __init__(self, master: int) -> None:
        self.master = master
        self.seen = b""

    async def read_until(self, token: bytes, timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while token not in self.seen and time.monotonic() < deadline:
            ready, _, _ = await asyncio.to_thread(select.select, [self.master], [], [], 0.2)
            if not ready:
                continue
            try:
                self.seen += os.read(self.master, 65536)
            except OSError:  # the child closed its side
                break
        assert token in self.seen, (token, self.seen[-500:])

    def write(self, data: bytes) -> None:
        os.write(self.master, data)


def _controlling_terminal() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


async def silent_server() -> tuple[asyncio.Server, asyncio.Event]:
    """A TCP server that accepts, reads and never answers; the event is set once it has read."""
    got_bytes = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(65536):
            got_bytes.set()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0), got_bytes


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
async def test_ctrl_c_aborts_a_slow_add_and_the_shell_goes_on() -> None:
    master, slave = os.openpty()
    env = {**os.environ, "MCP_CLIENT_HISTORY": os.devnull, "TERM": "xterm"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "mcp_client.py"), "--timeout", "120",
        stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT,
        # Its own session, the pseudo-terminal its controlling one: Ctrl-C becomes SIGINT.
        start_new_session=True, preexec_fn=_controlling_terminal)
    os.close(slave)
    terminal = Terminal(master)
    server, got_bytes = await silent_server()
    port = server.sockets[0].getsockname()[1]
    try:
        await terminal.read_until(b"\x1b[?2004h")  # the prompt is up
        terminal.write(f"add slow http://127.0.0.1:{port}/mcp\r".encode())
        async with asyncio.timeout(TIMEOUT):
            await got_bytes.wait()  # the add is under way, and will never be answered
        start = time.monotonic()
        terminal.write(b"\x03")
        await terminal.read_until(b"Error: interrupted, add aborted")
        assert time.monotonic() - start < 5
        terminal.seen = b""
        await terminal.read_until(b"\x1b[?2004h")  # the prompt is back
        terminal.write(b"servers\r")
        await terminal.read_until(b"Connected servers: []")
        terminal.write(b"quit\r")
        async with asyncio.timeout(TIMEOUT):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        os.close(master)
        server.close()
    assert b"Traceback" not in terminal.seen
