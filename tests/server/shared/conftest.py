"""Three of our servers sharing their sessions through a real redis-server, in one process."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from mcp_multi.server.app import RunningServer

from ...conftest import StartServer
from ...redis_server import redis_server, redis_url

__all__ = ["redis_server", "redis_url"]

Trio = Callable[..., Awaitable[list[RunningServer]]]


@pytest.fixture
def start_trio(redis_url: str, start_mcp_server: StartServer) -> Trio:
    # Redis first: it must outlive the servers, which close while it still answers.
    async def start(count: int = 3, **overrides: object) -> list[RunningServer]:
        overrides.setdefault("profile", "conformance")
        return [await start_mcp_server(name=f"inst-{n}", session_store=redis_url, **overrides)
                for n in range(count)]
    return start
