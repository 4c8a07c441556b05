"""The Redis store's registry, deliveries and claims, between real instances."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio

from mcp_multi.server.store import Delivery, RedisStore, SessionRecord, open_store

from .stores import OpenStore


def test_open_store_takes_redis_urls_without_connecting() -> None:
    for url in ("redis://127.0.0.1:1/0", "rediss://h:1/2", "unix:///tmp/redis.sock?db=1",
                "REDIS://h"):
        store = open_store(url)
        assert isinstance(store, RedisStore)
        assert store.shared and store.available
    store = open_store("redis://u:s3cret@h:1/0")
    assert isinstance(store, RedisStore)
    assert store.url == "redis://u:***@h:1/0"


@pytest.mark.parametrize("url", ["redis://:s3cret@h:1/notadb", "redis://:s3cret@h:abc/0",
                                 "rediss://u:s3cret@h:99999/0", "redis://:s3cret@h/0?db=x"])
def test_a_bad_redis_url_is_one_line_without_the_password(url: str) -> None:
    with pytest.raises(ValueError, match="--session-store") as caught:
        open_store(url)
    assert "s3cret" not in str(caught.value) and "\n" not in str(caught.value)


async def test_registry_put_get_delete_refresh(open_redis: OpenStore, redis_url: str) -> None:
    a, _ = await open_redis()
    b, _ = await open_redis()
    state = {"version": "2025-06-18", "capabilities": {"sampling": {}}, "level": "info"}
    await a.put(SessionRecord("s1", "http", a.instance, state), 30)
    got = await b.get("s1", 30)
    assert got == SessionRecord("s1", "http", a.instance, state)
    assert await b.get("nope", 30) is None
    assert await b.get("bad id", 30) is None  # never a key of its own
    raw = redis.asyncio.Redis.from_url(redis_url)
    try:
        await b.get("s1", 100)
        assert 90_000 < await raw.pttl("mcp:s:s1") <= 100_000  # get renews the TTL
        await a.refresh(["s1", "nope"], 200)
        assert 190_000 < await raw.pttl("mcp:s:s1") <= 200_000
        assert not await raw.exists("mcp:s:nope")
    finally:
        await raw.aclose()
    assert await b.delete("s1") is True
    assert await a.get("s1", 30) is None
    assert await a.delete("s1") is False


async def test_records_expire(open_redis: OpenStore) -> None:
    a, _ = await open_redis()
    await a.put(SessionRecord("s2", "sse", a.instance, {}), 0.2)
    assert await a.get("s2", 0.2) is not None
    await asyncio.sleep(0.5)  # the TTL itself is what is tested
    assert await a.get("s2", 30) is None


async def test_a_malformed_record_reads_as_none(open_redis: OpenStore, redis_url: str) -> None:
    a, _ = await open_redis()
    raw = redis.asyncio.Redis.from_url(redis_url)
    try:
        await raw.hset("mcp:s:s3", mapping={"kind": "http", "owner": "x", "state": "[1]"})
        await raw.hset("mcp:s:s4", mapping={"kind": "http"})
    finally:
        await raw.aclose()
    assert await a.get("s3", 30) is None
    assert await a.get("s4", 30) is None


async def test_send_to_reaches_that_instance_only(open_redis: OpenStore) -> None:
    a, inbox_a = await open_redis()
    b, inbox_b = await open_redis()
    assert a.instance != b.instance
    assert await a.alive(b.instance) and await b.alive(a.instance)
    body = b'{"jsonrpc":"2.0","id":7,"method":"tools/list"}'
    assert await a.send_to(b.instance, Delivery("s1", "message", body)) is True
    assert await inbox_b.next() == Delivery("s1", "message", body)
    assert inbox_a.empty()


async def test_broadcast_skips_the_sender(open_redis: OpenStore) -> None:
    a, inbox_a = await open_redis()
    b, inbox_b = await open_redis()
    _c, inbox_c = await open_redis()
    await a.broadcast(Delivery("s1", "close", b""))
    assert await inbox_b.next() == Delivery("s1", "close", b"")
    assert await inbox_c.next() == Delivery("s1", "close", b"")
    # Something sent after the broadcast arrives at a; the broadcast never did.
    await b.send_to(a.instance, Delivery("s2", "message", b"{}"))
    assert await inbox_a.next() == Delivery("s2", "message", b"{}")


async def test_send_to_a_dead_instance_is_false(open_redis: OpenStore) -> None:
    a, _ = await open_redis()
    b, _ = await open_redis()
    gone = b.instance
    await b.close()
    assert await a.send_to(gone, Delivery("s1", "message", b"{}")) is False
    assert await a.alive(gone) is False
    assert await a.send_to("not-an-instance", Delivery("s1", "message", b"{}")) is False
    assert await a.alive("0123456789ab") is False


async def test_malformed_frames_are_dropped(open_redis: OpenStore, redis_url: str,
                                            caplog: pytest.LogCaptureFixture) -> None:
    a, inbox = await open_redis()
    raw = redis.asyncio.Redis.from_url(redis_url)
    try:
        for frame in (b"", b"no newline at all", b"message s1\n{}", b"message s1 zz\n{}",
                      b"Message s1 0123456789ab\n{}", b"message s:1 0123456789ab\n{}",
                      b"message s1 0123456789ab extra\n{}", b"\xff\x00" * 300):
            assert await raw.publish(f"mcp:to:{a.instance}", frame) == 1
        assert await raw.publish("mcp:all", b"close s9 0123456789ab\n") == 1
    finally:
        await raw.aclose()
    assert await inbox.next() == Delivery("s9", "close", b"")  # only the good one came
    assert inbox.empty()
    dropped = [r for r in caplog.records if "malformed delivery" in r.getMessage()]
    assert len(dropped) == 8
    assert all("\n" not in r.getMessage() and len(r.getMessage()) < 400 for r in dropped)


async def test_an_inbox_that_fails_does_not_stop_the_listener(
        open_redis: OpenStore, caplog: pytest.LogCaptureFixture) -> None:
    a, inbox = await open_redis()
    b, _ = await open_redis()

    async def flaky(delivery: Delivery) -> None:
        if delivery.body == b"1":
            raise RuntimeError("boom")
        await inbox(delivery)

    a._inbox = flaky
    await b.send_to(a.instance, Delivery("s1", "message", b"1"))
    await b.send_to(a.instance, Delivery("s1", "message", b"2"))
    assert (await inbox.next()).body == b"2"
    assert any("inbox failed" in r.getMessage() for r in caplog.records)


async def test_claims_are_exclusive_and_released_by_the_holder(open_redis: OpenStore) -> None:
    a, _ = await open_redis()
    b, _ = await open_redis()
    assert await a.acquire("get:s1", 30) is True
    assert await b.acquire("get:s1", 30) is False
    assert await a.acquire("get:s1", 30) is False  # not re-entrant
    await b.release("get:s1")  # not b's: nothing happens
    assert await b.acquire("get:s1", 30) is False
    await a.release("get:s1")
    assert await b.acquire("get:s1", 30) is True
    assert await b.acquire("get:s2", 0.2) is True
    await asyncio.sleep(0.5)  # the TTL itself is what is tested
    assert await a.acquire("get:s2", 30) is True


async def test_claims_are_renewed_by_their_holder_and_taken_from_the_dead(
        open_redis: OpenStore, redis_url: str) -> None:
    a, _ = await open_redis()
    b, _ = await open_redis()
    assert await a.acquire("stream:s1:0", 0.3) is True
    assert await b.renew("stream:s1:0", 30) is False  # not b's to renew
    assert await a.renew("stream:s1:0", 30) is True
    await asyncio.sleep(0.5)  # past the first TTL: the renewal kept it
    assert await b.acquire("stream:s1:0", 30) is False
    # a dies: its heartbeat lapses (deleted here rather than waited for).
    await a.close()
    raw = redis.asyncio.from_url(redis_url)
    try:
        await raw.delete(f"mcp:i:{a.instance}")
    finally:
        await raw.aclose()
    assert await b.acquire("stream:s1:0", 30) is True
    assert await b.renew("stream:s1:0", 30) is True
