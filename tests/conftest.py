"""Shared fixtures: real servers on free loopback ports.

The suite runs in several worker processes (pytest-xdist, see ``addopts`` in pyproject.toml),
and many tests start Python processes of their own (our client and server, the SDK's). Each
of them would compile every module it imports again when ``$PYTHONDONTWRITEBYTECODE`` is set
(some environments set it for everything): the assertion rewriting of the test modules alone
is about ten seconds per worker, and a client start a third slower. So the test run writes
its byte code (into the ``__pycache__`` folders that git ignores) whatever that variable says:
for this process, from here on, and for every process the tests start.

``-n auto`` starts two workers per core, four at least and eight at most
(:func:`pytest_xdist_auto_num_workers`): most tests spend their time waiting on a process
they started or on a server's answer, so a worker per core would leave the cores idle, and
beyond eight the start-up of the workers costs more than it brings. ``-n 0`` runs the suite
in this process, ``$PYTEST_XDIST_AUTO_NUM_WORKERS`` sets the number for ``auto``.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from mcp_multi.server.app import RunningServer, start_server
from mcp_multi.server.settings import ServerSettings

from .oauth.fixtures import StartOAuthServer, oauth_server, start_oauth_server

__all__ = ["StartOAuthServer", "StartServer", "oauth_server", "start_oauth_server"]

sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

# A run started in the background by a shell without job control (`pytest &` in a script,
# nohup) has SIGINT ignored, and every process it starts inherits that: the client started by
# a test that presses Ctrl-C would never see it. The run's processes get the default back.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """How many workers ``-n auto`` starts (see the module docstring); None leaves the
    choice to pytest-xdist (it reads ``$PYTEST_XDIST_AUTO_NUM_WORKERS``)."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    return min(max(2 * len(os.sched_getaffinity(0)), 4), 8)

StartServer = Callable[..., Awaitable[RunningServer]]


@pytest.fixture
async def start_mcp_server(tmp_path: Path) -> AsyncIterator[StartServer]:
    """Start any number of our servers on 127.0.0.1:0; all are closed after the test."""
    running: list[RunningServer] = []

    async def start(**overrides: Any) -> RunningServer:
        overrides.setdefault("root", tmp_path)
        settings = ServerSettings(host="127.0.0.1", port=0, **overrides)
        server = await start_server(settings)
        running.append(server)
        return server

    yield start
    for server in running:
        await server.close()


@pytest.fixture
async def mcp_server(start_mcp_server: StartServer) -> RunningServer:
    """One server with every tool, named ``test-server``."""
    return await start_mcp_server(name="test-server")
