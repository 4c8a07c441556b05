"""Fixtures of the scale-out tests: a cluster of our servers behind nginx (see harness.py),
and a real ``redis-server`` for them to share sessions through (tests/redis_server.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .harness import Cluster

if TYPE_CHECKING:
    from ..redis_server import RedisProcess

StartCluster = Callable[..., Awaitable[Cluster]]


@pytest.fixture
async def start_cluster(tmp_path: Path) -> AsyncIterator[StartCluster]:
    """Start clusters: ``await start_cluster(3, store_url=..., profile=...)``; each is stopped
    after the test, and the tail of its logs printed (pytest shows it when the test fails)."""
    clusters: list[Cluster] = []

    async def start(count: int = 3, *, store_url: str | None = None,
                    profile: str | None = None, extra_args: tuple[str, ...] = ()) -> Cluster:
        cluster = Cluster.build(tmp_path / f"cluster-{len(clusters)}", count,
                                store_url=store_url, profile=profile, extra_args=extra_args)
        clusters.append(cluster)
        await cluster.start_all()
        return cluster

    yield start
    for cluster in clusters:
        print(cluster.logs())
    await asyncio.gather(*(cluster.close() for cluster in clusters))


@pytest.fixture
async def redis(tmp_path: Path) -> AsyncIterator[RedisProcess]:
    """A ``redis-server`` of this test only (started and stopped off the event loop: the
    instances' store clients keep running meanwhile)."""
    # Imported here: the smoke tests of the harness need no Redis.
    from ..redis_server import start_redis

    server = await asyncio.to_thread(start_redis, tmp_path)
    yield server
    await asyncio.to_thread(server.stop)


@pytest.fixture
async def cluster(redis: RedisProcess, start_cluster: StartCluster) -> Cluster:
    """Three instances sharing ``redis``, with the conformance fixtures, behind nginx (stopped
    before ``redis``: the fixtures are set up in the order of the arguments)."""
    return await start_cluster(3, store_url=redis.url, profile="conformance")
