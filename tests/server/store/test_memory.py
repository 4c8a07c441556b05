"""The in-memory store: what the Redis store does, for one process."""

from __future__ import annotations

import asyncio

import pytest

from mcp_multi.server.store import Delivery, MemoryStore, SessionRecord, open_store


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_open_store_without_url_is_memory() -> None:
    store = open_store(None)
    assert isinstance(store, MemoryStore)
    assert store.shared is False
    assert store.available
    assert len(store.instance) == 12 and int(store.instance, 16) >= 0


@pytest.mark.parametrize("url", ["http://x", "redis", "", "memcached://h:1", "redis://"])
def test_open_store_refuses_other_urls(url: str) -> None:
    with pytest.raises(ValueError, match="--session-store") as caught:
        open_store(url)
    assert "\n" not in str(caught.value)


def test_open_store_error_hides_the_password() -> None:
    with pytest.raises(ValueError) as caught:
        open_store("mysql://user:hunter2@db:1/0")
    assert "hunter2" not in str(caught.value)
    assert "user:***@db:1" in str(caught.value)


async def test_registry_put_get_expire_delete() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    record = SessionRecord("s1", "http", store.instance, {"version": "2025-06-18"})
    await store.put(record, 10)
    got = await store.get("s1", 10)
    assert got == record and got is not record
    clock.now += 9
    assert await store.get("s1", 10) is not None  # renewed for another 10 s
    clock.now += 9
    await store.refresh(["s1", "nope"], 5)
    clock.now += 4
    assert await store.get("s1", 1) is not None
    clock.now += 2
    assert await store.get("s1", 10) is None
    await store.put(record, 10)
    assert await store.delete("s1") is True
    assert await store.delete("s1") is False
    assert await store.get("s1", 10) is None


async def test_deliveries_reach_only_this_instance() -> None:
    store = MemoryStore()
    got: list[Delivery] = []
    arrived = asyncio.Event()

    async def inbox(delivery: Delivery) -> None:
        got.append(delivery)
        arrived.set()

    delivery = Delivery("s1", "message", b'{"jsonrpc":"2.0","method":"ping","id":1}')
    assert await store.send_to(store.instance, delivery) is False  # not started
    await store.start(inbox)
    assert await store.alive(store.instance)
    assert not await store.alive("0123456789ab")
    assert await store.send_to("0123456789ab", delivery) is False
    assert await store.send_to(store.instance, delivery) is True
    await asyncio.wait_for(arrived.wait(), 5)
    assert got == [delivery]
    await store.broadcast(Delivery("s1", "close", b""))
    await store.close()
    assert not await store.alive(store.instance)


async def test_journal_numbering_limit_end_and_expiry() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    journal = store.journal("s1", "0", limit=3, ttl=60)
    assert not await journal.exists()
    assert await journal.oldest() is None
    for n in range(1, 6):
        journal.append(b"e%d" % n, n)
    await journal.flush()
    assert await journal.oldest() == 3
    assert await journal.read(0, 0) == ([(3, b"e3"), (4, b"e4"), (5, b"e5")], False)
    assert await journal.read(4, 0) == ([(5, b"e5")], False)
    journal.append(b"late", 5)  # not after 5: dropped
    journal.end(b"bye")
    assert await journal.read(5, 0) == ([(6, b"bye")], True)
    assert await journal.read(6, 0) == ([], True)
    assert await journal.producer() == store.instance
    clock.now += 61
    assert not await journal.exists()
    assert await journal.producer() is None


async def test_journal_read_waits_for_an_append() -> None:
    store = MemoryStore()
    journal = store.journal("s1", "0", limit=10, ttl=60)
    reader = asyncio.create_task(journal.read(0, 10))
    await asyncio.sleep(0)
    assert not reader.done()
    store.journal("s1", "0", limit=10, ttl=60).append(b"one")
    assert await asyncio.wait_for(reader, 5) == ([(1, b"one")], False)
    assert await journal.read(1, 0.05) == ([], False)


def test_journal_refuses_keys_that_could_collide() -> None:
    store = MemoryStore()
    with pytest.raises(ValueError):
        store.journal("s1", "0:n", limit=1, ttl=1)
    with pytest.raises(ValueError):
        store.journal("s:1", "0", limit=1, ttl=1)
    with pytest.raises(ValueError):
        store.journal("s1", "0", limit=1, ttl=1).append(b"x", 0)


async def test_claims() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    assert await store.acquire("get:s1", 5)
    assert not await store.acquire("get:s1", 5)
    await store.release("get:s1")
    assert await store.acquire("get:s1", 5)
    clock.now += 6
    assert await store.acquire("get:s1", 5)


async def test_a_claim_is_renewed_only_while_held() -> None:
    store = MemoryStore()
    assert not await store.renew("get:s1", 5)
    assert await store.acquire("get:s1", 5)
    assert await store.renew("get:s1", 5)
    await store.release("get:s1")
    assert not await store.renew("get:s1", 5)
