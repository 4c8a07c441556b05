"""Redis going away and coming back: clear errors while it is gone, never a hang, one log
line each way, and everything working again afterwards, the listener included."""

from __future__ import annotations

import asyncio
import logging

import pytest

from mcp_multi.server.store import Delivery, RedisStore, SessionRecord, StoreUnavailable
from tests.redis_server import RedisProcess

from .stores import GUARD, Inbox, OpenStore

STORE_LOGGER = "mcp_multi.server.store.redis_store"


def store_lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == STORE_LOGGER and r.levelno == level]


async def deliver_eventually(sender: RedisStore, receiver: RedisStore, inbox: Inbox,
                             delivery: Delivery) -> None:
    """Send until the receiver's listener is subscribed again (it reconnects on its own
    schedule), then see the delivery arrive."""
    for _ in range(200):
        if await asyncio.wait_for(sender.send_to(receiver.instance, delivery), GUARD):
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the listener never came back")
    assert await inbox.next() == delivery


async def test_an_outage_raises_and_recovers(open_redis: OpenStore, redis_server: RedisProcess,
                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=STORE_LOGGER)
    a, inbox_a = await open_redis()
    b, _ = await open_redis()
    record = SessionRecord("s1", "http", a.instance, {"level": "info"})
    await a.put(record, 60)
    journal = a.journal("s1", "0", limit=100, ttl=60)

    redis_server.stop()
    operations = [
        a.put(record, 60), a.get("s1", 60), a.delete("s1"), a.refresh(["s1"], 60),
        a.send_to(b.instance, Delivery("s1", "message", b"{}")),
        a.broadcast(Delivery("s1", "close", b"")), a.alive(b.instance),
        a.acquire("get:s1", 10), a.release("get:s1"), journal.read(0, 1), journal.oldest(),
        journal.exists(), journal.producer(),
    ]
    for operation in operations:
        with pytest.raises(StoreUnavailable) as caught:
            await asyncio.wait_for(operation, GUARD)
        message = str(caught.value)
        assert redis_server.url in message and "\n" not in message
    journal.append(b"during", 1)  # queued: never raises, never waits
    with pytest.raises(StoreUnavailable):
        await asyncio.wait_for(journal.flush(), GUARD)
    assert not a.available
    assert len(store_lines(caplog, logging.WARNING)) == 2  # one per store, a and b
    assert store_lines(caplog, logging.INFO) == []

    redis_server.restart()  # empty: nothing was saved
    await asyncio.wait_for(a.put(record, 60), GUARD)
    assert a.available
    assert await a.get("s1", 60) == record
    await asyncio.wait_for(journal.flush(), GUARD)  # the queued append was kept and stored
    assert await journal.read(0, 0) == ([(1, b"during")], False)
    await deliver_eventually(b, a, inbox_a, Delivery("s1", "message", b'{"id":1}'))
    assert await b.alive(a.instance)  # the heartbeat was renewed on reconnecting
    assert len(store_lines(caplog, logging.WARNING)) == 2
    assert any("available again" in line for line in store_lines(caplog, logging.INFO))


async def test_starting_while_redis_is_down(redis_server: RedisProcess,
                                            caplog: pytest.LogCaptureFixture) -> None:
    redis_server.stop()
    store = RedisStore(redis_server.url)
    inbox = Inbox()
    try:
        await asyncio.wait_for(store.start(inbox), GUARD)  # returns: the listener keeps trying
        assert not store.available
        assert len(store_lines(caplog, logging.WARNING)) == 1
        redis_server.start()
        other = RedisStore(redis_server.url)
        try:
            await asyncio.wait_for(other.start(Inbox()), GUARD)
            await deliver_eventually(other, store, inbox, Delivery("s1", "close", b""))
        finally:
            await asyncio.wait_for(other.close(), GUARD)
        assert store.available
    finally:
        await asyncio.wait_for(store.close(), GUARD)


async def test_closing_while_redis_is_down_is_bounded(redis_server: RedisProcess) -> None:
    store = RedisStore(redis_server.url)
    await asyncio.wait_for(store.start(Inbox()), GUARD)
    redis_server.stop()
    store.journal("s1", "0", limit=5, ttl=60).append(b"lost")
    await asyncio.wait_for(store.close(), GUARD)


async def test_the_password_never_shows(redis_server: RedisProcess,
                                        caplog: pytest.LogCaptureFixture) -> None:
    url = f"redis://:hunter2@127.0.0.1:{redis_server.port}/0"
    redis_server.stop()
    store = RedisStore(url)
    try:
        with pytest.raises(StoreUnavailable) as caught:
            await asyncio.wait_for(store.get("s1", 1), GUARD)
        assert "hunter2" not in str(caught.value) and ":***@" in str(caught.value)
        assert all("hunter2" not in r.getMessage() for r in caplog.records)
    finally:
        await asyncio.wait_for(store.close(), GUARD)
