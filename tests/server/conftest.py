"""Fixtures of the server tests that talk to a ``--profile conformance`` server: one per test,
and a handshake-era peer on it over each transport in turn (the peer of a test that asks for
``profile_peer`` is parametrized over :data:`~tests.server.wire.TRANSPORTS`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from mcp_multi.server.app import RunningServer

from ..conftest import StartServer
from .wire import TRANSPORTS, RawPeer, connect


@pytest.fixture(params=TRANSPORTS)
def profile_transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def profile_server(start_mcp_server: StartServer) -> RunningServer:
    return await start_mcp_server(name="profile-server", profile="conformance")


@pytest.fixture
async def profile_peer(profile_transport: str,
                       profile_server: RunningServer) -> AsyncIterator[RawPeer]:
    """An initialized peer of :func:`profile_server` over ``profile_transport``."""
    p = await connect(profile_transport, profile_server)
    await p.initialize()
    yield p
    await p.close()
