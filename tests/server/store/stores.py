"""Helpers of the store tests: started Redis stores and an inbox that remembers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from mcp_multi.server.store import Delivery, RedisStore, open_store

# A generous guard around anything that waits, so that a broken store fails the test
# instead of hanging it.
GUARD = 10.0


class Inbox:
    """Collects the deliveries of one store."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Delivery] = asyncio.Queue()

    async def __call__(self, delivery: Delivery) -> None:
        self.queue.put_nowait(delivery)

    async def next(self) -> Delivery:
        return await asyncio.wait_for(self.queue.get(), GUARD)

    def empty(self) -> bool:
        return self.queue.empty()


OpenStore = Callable[[], Awaitable[tuple[RedisStore, Inbox]]]


@pytest.fixture
async def open_redis(redis_url: str) -> AsyncIterator[OpenStore]:
    """Start any number of Redis stores (instances) on the test's Redis; all closed after."""
    stores: list[RedisStore] = []

    async def start() -> tuple[RedisStore, Inbox]:
        store = open_store(redis_url)
        assert isinstance(store, RedisStore)
        stores.append(store)
        inbox = Inbox()
        await asyncio.wait_for(store.start(inbox), GUARD)
        return store, inbox

    yield start
    for store in stores:
        await asyncio.wait_for(store.close(), GUARD)
