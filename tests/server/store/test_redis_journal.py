"""Journals in Redis: order, numbering by one or many producers, waiting reads, the end
mark, trimming and expiry."""

from __future__ import annotations

import asyncio
import logging

import pytest
import redis.asyncio

from mcp_multi.server.store import Journal, RedisStore, open_store

from .stores import GUARD, OpenStore


async def read_all(journal: Journal, cursor: int = 0) -> tuple[list[tuple[int, bytes]], bool]:
    """Every event after ``cursor``, batch after batch, and whether the journal ended."""
    events: list[tuple[int, bytes]] = []
    while True:
        batch, ended = await asyncio.wait_for(journal.read(cursor, 0), GUARD)
        events += batch
        if ended or not batch:
            return events, ended
        cursor = batch[-1][0]


async def test_many_appends_keep_their_order(open_redis: OpenStore) -> None:
    store, _ = await open_redis()
    journal = store.journal("s1", "3", limit=10_000, ttl=60)
    payloads = [b'{"jsonrpc":"2.0","method":"n","params":{"i":%d}}' % i for i in range(3000)]
    for n, payload in enumerate(payloads, 1):
        journal.append(payload, n)
    await asyncio.wait_for(journal.flush(), GUARD)
    events, ended = await read_all(journal)
    assert events == list(enumerate(payloads, 1)) and not ended
    assert await journal.oldest() == 1
    assert await journal.producer() == store.instance
    # A number already stored (a retry) is refused by Redis without harm.
    journal.append(b"again", 3000)
    journal.append(b"next", 3001)
    await asyncio.wait_for(journal.flush(), GUARD)
    assert await journal.read(2999, 0) == ([(3000, payloads[-1]), (3001, b"next")], False)


async def test_two_producers_numbered_by_the_store(open_redis: OpenStore) -> None:
    a, _ = await open_redis()
    b, _ = await open_redis()
    on_a = a.journal("s1", "0", limit=1000, ttl=60)
    on_b = b.journal("s1", "0", limit=1000, ttl=60)
    for i in range(200):
        on_a.append(b"a%d" % i)
        on_b.append(b"b%d" % i)
        if i % 50 == 0:
            await asyncio.sleep(0)  # let both writers interleave their batches
    await asyncio.wait_for(asyncio.gather(on_a.flush(), on_b.flush()), GUARD)
    events, _ = await read_all(on_a)
    assert [n for n, _ in events] == list(range(1, 401))  # no number twice, none skipped
    payloads = [p for _, p in events]
    assert sorted(payloads) == sorted([b"a%d" % i for i in range(200)] +
                                      [b"b%d" % i for i in range(200)])
    assert [p for p in payloads if p[:1] == b"a"] == [b"a%d" % i for i in range(200)]
    assert [p for p in payloads if p[:1] == b"b"] == [b"b%d" % i for i in range(200)]


async def test_a_forgotten_script_is_loaded_again(open_redis: OpenStore,
                                                  redis_url: str) -> None:
    store, _ = await open_redis()
    journal = store.journal("s1", "0", limit=100, ttl=60)
    journal.append(b"one")
    await asyncio.wait_for(journal.flush(), GUARD)
    raw = redis.asyncio.Redis.from_url(redis_url)
    try:
        await raw.script_flush()
    finally:
        await raw.aclose()
    journal.append(b"two")
    journal.append(b"three", None)
    await asyncio.wait_for(journal.flush(), GUARD)
    assert await journal.read(0, 0) == ([(1, b"one"), (2, b"two"), (3, b"three")], False)


async def test_a_read_waits_for_the_next_event(open_redis: OpenStore) -> None:
    a, _ = await open_redis()
    b, _ = await open_redis()
    reader = asyncio.create_task(a.journal("s1", "0", limit=10, ttl=60).read(0, GUARD))
    await asyncio.sleep(0.3)
    assert not reader.done()
    b.journal("s1", "0", limit=10, ttl=60).append(b"first")
    assert await asyncio.wait_for(reader, GUARD) == ([(1, b"first")], False)
    # With nothing new, a read gives up after its timeout.
    assert await asyncio.wait_for(a.journal("s1", "0", limit=10, ttl=60).read(1, 0.2),
                                  GUARD) == ([], False)


async def test_a_long_read_spans_several_blocking_waits(open_redis: OpenStore) -> None:
    store, _ = await open_redis()
    journal = store.journal("s1", "0", limit=10, ttl=60)
    reader = asyncio.create_task(journal.read(0, GUARD))
    await asyncio.sleep(2.5)  # longer than one XREAD BLOCK and than the socket timeout
    assert not reader.done()
    journal.append(b"late")
    assert await asyncio.wait_for(reader, GUARD) == ([(1, b"late")], False)
    assert store.available


async def test_the_end_mark(open_redis: OpenStore) -> None:
    a, _ = await open_redis()
    b, _ = await open_redis()
    journal = a.journal("s1", "7", limit=100, ttl=60)
    journal.append(b"one", 1)
    journal.append(b"two", 2)
    journal.end(b"answer")
    reader = asyncio.create_task(b.journal("s1", "7", limit=100, ttl=60).read(3, GUARD))
    await asyncio.wait_for(journal.flush(), GUARD)
    assert await asyncio.wait_for(reader, GUARD) == ([], True)
    assert await read_all(journal) == ([(1, b"one"), (2, b"two"), (3, b"answer")], True)
    assert await journal.read(1, 0) == ([(2, b"two"), (3, b"answer")], True)
    bare = a.journal("s1", "8", limit=100, ttl=60)
    bare.append(b"x", 1)
    bare.end()
    await asyncio.wait_for(bare.flush(), GUARD)
    assert await bare.read(0, 0) == ([(1, b"x")], True)
    assert await bare.oldest() == 1


async def test_trimming_and_oldest(open_redis: OpenStore) -> None:
    store, _ = await open_redis()
    explicit = store.journal("s1", "1", limit=5, ttl=60)
    assert await explicit.oldest() is None and not await explicit.exists()
    for n in range(1, 21):
        explicit.append(b"e%d" % n, n)
    counted = store.journal("s1", "0", limit=5, ttl=60)
    for n in range(1, 21):
        counted.append(b"c%d" % n)
    counted.end()
    await asyncio.wait_for(counted.flush(), GUARD)
    assert await explicit.oldest() == 16
    assert await explicit.read(0, 0) == ([(n, b"e%d" % n) for n in range(16, 21)], False)
    # The end mark (21) is kept too and counts against the limit.
    assert await counted.oldest() == 17
    assert await counted.read(0, 0) == ([(n, b"c%d" % n) for n in range(17, 21)], True)


async def test_journals_expire(open_redis: OpenStore, redis_url: str) -> None:
    store, _ = await open_redis()
    journal = store.journal("s1", "0", limit=5, ttl=0.3)
    journal.append(b"x")
    await asyncio.wait_for(journal.flush(), GUARD)
    assert await journal.exists()
    raw = redis.asyncio.Redis.from_url(redis_url)
    try:
        assert 0 < await raw.pttl("mcp:e:s1:0") <= 300
        assert 0 < await raw.pttl("mcp:e:s1:0:n") <= 300
        await asyncio.sleep(0.6)  # the TTL itself is what is tested
        assert not await raw.exists("mcp:e:s1:0", "mcp:e:s1:0:n")
    finally:
        await raw.aclose()
    assert not await journal.exists()
    assert await journal.producer() is None and await journal.oldest() is None


async def test_the_producer_is_the_last_appender(open_redis: OpenStore) -> None:
    a, _ = await open_redis()
    b, _ = await open_redis()
    a.journal("s1", "0", limit=5, ttl=60).append(b"x")
    await asyncio.wait_for(a.journal("s1", "0", limit=5, ttl=60).flush(), GUARD)
    assert await b.journal("s1", "0", limit=5, ttl=60).producer() == a.instance
    b.journal("s1", "0", limit=5, ttl=60).append(b"y")
    await asyncio.wait_for(b.journal("s1", "0", limit=5, ttl=60).flush(), GUARD)
    assert await a.journal("s1", "0", limit=5, ttl=60).producer() == b.instance


async def test_a_full_queue_drops_with_one_warning(redis_url: str,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    store = RedisStore(redis_url, queue_items=10)
    try:
        journal = store.journal("s1", "0", limit=100, ttl=60)
        with caplog.at_level(logging.WARNING):
            for n in range(1, 31):  # synchronously: the writer has no chance to drain
                journal.append(b"%d" % n, n)
        full = [r for r in caplog.records if "queue is full" in r.getMessage()]
        assert len(full) == 1
        await asyncio.wait_for(journal.flush(), GUARD)
        assert await journal.read(0, 0) == ([(n, b"%d" % n) for n in range(1, 11)], False)
        journal.append(b"11", 11)  # the queue drained: appends are taken again
        await asyncio.wait_for(journal.flush(), GUARD)
        assert await journal.read(10, 0) == ([(11, b"11")], False)
    finally:
        await asyncio.wait_for(store.close(), GUARD)


def test_bad_journal_names_and_numbers_are_refused() -> None:
    store = open_store("redis://127.0.0.1:1/0")
    with pytest.raises(ValueError):
        store.journal("s1", "0:n", limit=5, ttl=1)
    with pytest.raises(ValueError):
        store.journal("s:1", "0", limit=5, ttl=1)
    with pytest.raises(ValueError):
        store.journal("s1", "0", limit=5, ttl=1).append(b"x", 0)
