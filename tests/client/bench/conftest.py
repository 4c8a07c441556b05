"""Fixtures of the load mode's tests: our server with two tools of the test's own, and the
load mode run as a real ``mcp-client bench`` process.

``bench_server`` is our server (every demo tool, and the conformance fixtures) plus the
profile ``bench-test``: ``count`` answers at once and counts its calls, ``stall`` answers at
once except its :data:`STALL_AT`-th call, which sleeps :data:`STALL_SECONDS` first. The server
runs in the test's event loop on a free loopback port; :func:`run_bench` runs the client as a
child process, as a person would, and returns its exit status, stdout and stderr.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from mcp_multi.protocol.methods import tool_result
from mcp_multi.server import profiles
from mcp_multi.server.app import RunningServer
from mcp_multi.server.profiles import Profile
from mcp_multi.server.profiles.conformance import profile as conformance_profile
from mcp_multi.server.tools import Tool, ToolContext

from ...conftest import StartServer

ROOT = Path(__file__).resolve().parents[3]
TIMEOUT = 60.0
STALL_AT = 30
STALL_SECONDS = 1.0
NO_ARGUMENTS: dict[str, Any] = {"type": "object", "properties": {}}


class Counted:
    """How many times the ``count`` tool ran; :meth:`reach` waits for a number of them."""

    def __init__(self) -> None:
        self.calls = 0
        self._changed = asyncio.Condition()

    async def add(self) -> None:
        async with self._changed:
            self.calls += 1
            self._changed.notify_all()

    async def reach(self, calls: int, timeout: float = 20.0) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: self.calls >= calls)


@dataclass
class BenchServer:
    """Our server, and how many times its ``count`` tool ran."""

    server: RunningServer
    counted: Counted

    def url(self, transport: str) -> str:
        base = self.server.base_url
        if transport == "websocket":
            return "ws" + base.removeprefix("http") + "/ws"
        return base + {"http": "/mcp", "sse": "/sse"}[transport]


def _profile(counted: Counted) -> Profile:
    async def count(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        await counted.add()
        return tool_result("counted")

    stalls = [0]

    async def stall(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        stalls[0] += 1
        if stalls[0] == STALL_AT:
            await asyncio.sleep(STALL_SECONDS)
        return tool_result("ok")

    conformance = conformance_profile()
    return Profile("bench-test", tools=(
        *conformance.tools,
        Tool("count", "Counts its calls.", NO_ARGUMENTS, count),
        Tool("stall", f"Call {STALL_AT} sleeps {STALL_SECONDS:g} s.", NO_ARGUMENTS, stall),
    ))


@pytest.fixture
async def bench_server(start_mcp_server: StartServer,
                       monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[BenchServer]:
    counted = Counted()
    monkeypatch.setitem(profiles.PROFILES, "bench-test", lambda: _profile(counted))
    server = await start_mcp_server(name="bench-server", profile="bench-test")
    yield BenchServer(server, counted)


@dataclass
class Outcome:
    status: int
    out: str
    err: str

    @property
    def report(self) -> dict[str, Any]:
        """The ``--json`` document (stdout holds it and nothing else)."""
        document = orjson.loads(self.out)
        assert isinstance(document, dict)
        return document

    def target(self, index: int = 0) -> dict[str, Any]:
        target = self.report["targets"][index]
        assert isinstance(target, dict)
        return target


async def start_bench(*args: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "mcp_client.py"), "bench", *args, cwd=ROOT, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)


async def finish(proc: asyncio.subprocess.Process, timeout: float = TIMEOUT) -> Outcome:
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    outcome = Outcome(proc.returncode, out.decode(), (err or b"").decode())
    assert "Traceback" not in outcome.err, outcome.err
    return outcome


async def run_bench(*args: str, timeout: float = TIMEOUT) -> Outcome:
    """``mcp-client bench ARGS`` in a child process, within ``timeout``."""
    return await finish(await start_bench(*args), timeout)
