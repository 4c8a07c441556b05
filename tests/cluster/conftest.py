"""Fixtures of the scale-out tests: a cluster of our servers behind nginx (see harness.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from .harness import Cluster

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
        await cluster.close()
        print(cluster.logs())
