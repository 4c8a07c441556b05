"""The session store that many instances share: Redis, through the ``redis`` package's
asyncio client.

Theory of operation. Everything lives under the prefix ``mcp:``:

==========================  ===========================================================
``mcp:s:{sid}``             hash ``kind``, ``owner``, ``state`` (JSON) of one session, with
                            its TTL; ``get`` renews it in the same round trip (pipeline)
``mcp:i:{instance}``        an instance's heartbeat: set for 15 s, renewed every 5 s
``mcp:to:{instance}``       the pub/sub channel of one instance (``send_to``)
``mcp:all``                 the channel of every instance (``broadcast``)
``mcp:e:{sid}:{key}``       a journal: a Redis stream, entry ids ``0-<n>``, at most
                            ``limit`` entries (exact ``MAXLEN``), expiring ``ttl`` after
                            the last append; fields ``d`` (the event) and ``p`` (the
                            instance that appended it), or ``end`` for the end mark
``mcp:e:{sid}:{key}:n``     the journal's counter when the store numbers its events
``mcp:c:{name}``            a claim: the holder's instance id, with a TTL
==========================  ===========================================================

A delivery travels on a channel as ``b"<kind> <sid> <sender>\\n" + body`` (see
:mod:`.wire`); the sender lets an instance skip its own broadcasts.

Connections: one pool for the commands, and one more connection for the pub/sub
*listener*, a task that subscribes to this instance's channel and ``mcp:all`` and hands
each delivery to the inbox, one after the other. The listener pings an idle connection and
reconnects by itself after any failure (backoff up to 2 s), subscribing again; the
heartbeat is renewed at once on each reconnect, since a restarted Redis has lost it.

Journal appends never wait: they are queued (bounded in bytes and entries; past it they are
dropped with one warning) and one writer task per store sends them in order, many per round
trip (see :mod:`.redis_journal`).

Outage: every operation is bounded (socket and connect timeouts of 2 s, redis-py's own
retries off, and a guard around each operation) and raises :exc:`~.base.StoreUnavailable`
with a one-line message naming the store's URL (its password masked). The first failure
logs one warning and makes :attr:`RedisStore.available` False; the first operation that
*starts* after the last failure and succeeds logs one info line and makes it True again.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import secrets
from collections.abc import Awaitable, Collection
from typing import Any, TypeVar
from urllib.parse import urlsplit

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from .base import Delivery, Inbox, Journal, SessionRecord, SessionStore, StoreUnavailable
from .redis_journal import JournalWriter, RedisJournal
from .wire import (
    check_key,
    check_session_id,
    decode_delivery,
    encode_delivery,
    printable,
    public_url,
    valid_session_id,
)

__all__ = ["RedisStore"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

PREFIX = "mcp:"
BROADCAST = PREFIX + "all"
SOCKET_TIMEOUT = 2.0
# The longest one operation may take: a connect and a reply, with some slack.
OP_TIMEOUT = 2 * SOCKET_TIMEOUT + 1.0
HEARTBEAT_TTL = 15.0
HEARTBEAT_EVERY = 5.0
BACKOFF_FIRST = 0.05
BACKOFF_MAX = 2.0
# The listener pings an idle connection this often, and gives it up when nothing at all
# came back for LISTENER_SILENCE seconds.
IDLE_PING = 5.0
LISTENER_SILENCE = 12.0
WAITING_READS = 32
# Errors that mean "the store cannot be reached now" (TimeoutError covers asyncio's).
STORE_ERRORS = (RedisError, OSError, TimeoutError)
_INSTANCE = re.compile(r"[0-9a-f]{12}")
_DB_PATH = re.compile(r"/?|/[0-9]{1,5}/?")

# KEYS[1] the claim; ARGV: this instance, the TTL in ms, the prefix of heartbeat keys. Taken
# when free, or when its holder's heartbeat has lapsed (it died holding it).
ACQUIRE_LUA = """
local holder = redis.call('GET', KEYS[1])
if holder and (holder == ARGV[1] or redis.call('EXISTS', ARGV[3] .. holder) == 1) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
RENEW_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def _client_options() -> dict[str, Any]:
    """Options that only some versions of the client know. Where the asyncio client handles
    maintenance notifications, their default ("auto", even over RESP2) turns off the pool's
    check of idle connections, so that after a Redis restart the first command on each old
    connection fails; we use no maintenance notifications, so we turn them off."""
    if "maint_notifications_config" not in inspect.signature(Redis.__init__).parameters:
        return {}
    from redis.maint_notifications import MaintNotificationsConfig
    return {"maint_notifications_config": MaintNotificationsConfig(enabled=False)}


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisStore(SessionStore):
    """Sessions shared by every instance that uses the same Redis (see the module
    docstring).

    Args:
        url: ``redis://[[user]:password@]host:port/db``, ``rediss://...`` or
            ``unix://[[user]:password@]/path?db=N``.
        queue_bytes, queue_items: how much the journal writer may hold queued.

    Raises:
        ValueError: ``url`` cannot be used (one line, password masked).
    """

    shared = True

    def __init__(self, url: str, *, queue_bytes: int = 32 << 20,
                 queue_items: int = 65536) -> None:
        self.instance = secrets.token_hex(6)
        self.url = public_url(url)
        try:
            parts = urlsplit(url)
            self._password = parts.password
            if parts.scheme.lower() != "unix" and not _DB_PATH.fullmatch(parts.path):
                raise ValueError("the path must be the database number, /0 to /15 or so")
            self._client: Redis = Redis.from_url(
                url, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=SOCKET_TIMEOUT,
                retry=Retry(NoBackoff(), 0), decode_responses=False, **_client_options())
        except ValueError as exc:
            raise ValueError(f"--session-store: {self.url}: {self._one_line(exc)}") from None
        self._channel = f"{PREFIX}to:{self.instance}".encode("ascii")
        self._release = self._client.register_script(RELEASE_LUA)
        self._acquire = self._client.register_script(ACQUIRE_LUA)
        self._renew = self._client.register_script(RENEW_LUA)
        self._available = True
        self._failures = 0
        self._inbox: Inbox | None = None
        self._listener: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._attempted = asyncio.Event()
        self._listening = False
        self._closed = False
        # Reads that wait (XREAD BLOCK) hold a connection each: at most this many at once.
        self.readers = asyncio.Semaphore(WAITING_READS)
        self.writer = JournalWriter(self, self._client, max_bytes=queue_bytes,
                                    max_items=queue_items)

    # --- failures and recovery

    @property
    def available(self) -> bool:
        return self._available

    def _one_line(self, exc: BaseException) -> str:
        text = str(exc) or type(exc).__name__
        if self._password:
            text = text.replace(self._password, "***")
        return printable(text.replace("\n", " "), 200)

    def failed(self, exc: BaseException) -> StoreUnavailable:
        """Note that the store failed with ``exc``; the exception to raise for it."""
        self._failures += 1
        reason = self._one_line(exc)
        if self._available:
            self._available = False
            logger.warning("session store %s is unavailable: %s", self.url, reason)
        return StoreUnavailable(f"session store {self.url} is unavailable: {reason}")

    def succeeded(self, since: int) -> None:
        """Note a success of an operation that started when ``since`` failures were
        counted (one that started before the last failure proves nothing)."""
        if not self._available and since == self._failures:
            self._available = True
            logger.info("session store %s is available again", self.url)

    async def run(self, operation: Awaitable[T]) -> T:
        """The result of ``operation``, bounded in time; StoreUnavailable on failure."""
        since = self._failures
        try:
            async with asyncio.timeout(OP_TIMEOUT):
                result = await operation
        except STORE_ERRORS as exc:
            raise self.failed(exc) from exc
        self.succeeded(since)
        return result

    # --- life

    async def start(self, inbox: Inbox) -> None:
        """Start the listener and the heartbeat; return once the first subscription was
        tried (a store that cannot be reached logs it and keeps trying)."""
        if self._listener is not None:
            raise RuntimeError("the store is started already")
        self._inbox = inbox
        self._listener = asyncio.create_task(self._listen(), name="store-listener")
        self._heartbeat = asyncio.create_task(self._beat(), name="store-heartbeat")
        await self._attempted.wait()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        tasks = [task for task in (self._listener, self._heartbeat) if task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            # Bounded: redis-py's pub/sub can swallow a cancel that lands while it connects,
            # and the listener then waits on. Closing the client below fails its connection,
            # and a listener that sees _closed ends instead of connecting again.
            await asyncio.wait(tasks, timeout=OP_TIMEOUT)
        await self.writer.close(OP_TIMEOUT)
        if self._inbox is not None and self._available:
            try:
                await self.run(self._client.delete(self._beat_key))
            except StoreUnavailable:
                pass
        await self._client.aclose()
        if tasks:
            await asyncio.wait(tasks, timeout=OP_TIMEOUT)

    @property
    def _beat_key(self) -> str:
        return f"{PREFIX}i:{self.instance}"

    async def _beat_once(self) -> None:
        try:
            await self.run(self._client.set(self._beat_key, b"1", px=_ms(HEARTBEAT_TTL)))
        except StoreUnavailable:
            pass  # logged once; the listener and the next beat try again

    async def _beat(self) -> None:
        while not self._closed:
            await asyncio.sleep(HEARTBEAT_EVERY)
            await self._beat_once()

    async def _listen(self) -> None:
        backoff = BACKOFF_FIRST
        while not self._closed:
            pubsub = self._client.pubsub()
            since = self._failures
            try:
                await self._receive(pubsub, since)
            except STORE_ERRORS as exc:
                self.failed(exc)
                if self._listening:
                    backoff = BACKOFF_FIRST  # it was a working connection: retry soon
            finally:
                self._listening = False
                self._attempted.set()
                try:
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                except STORE_ERRORS:
                    pass
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    async def _receive(self, pubsub: PubSub, since: int) -> None:
        """Subscribe on ``pubsub`` and hand over deliveries until the connection fails."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(OP_TIMEOUT):
            await pubsub.subscribe(self._channel, BROADCAST)
        started = last_seen = pinged = loop.time()
        confirmed = 0
        while True:
            message = await pubsub.get_message(timeout=1.0)
            now = loop.time()
            if message is None:
                if confirmed < 2 and now - started > OP_TIMEOUT:
                    raise TimeoutError("no answer to SUBSCRIBE")
                if now - last_seen > LISTENER_SILENCE:
                    raise TimeoutError("the pub/sub connection went silent")
                if confirmed == 2 and now - pinged >= IDLE_PING:
                    pinged = now
                    await pubsub.ping()
                continue
            last_seen = now
            kind = message.get("type")
            if kind == "subscribe":
                confirmed += 1
                if confirmed == 2:
                    self._listening = True
                    self.succeeded(since)
                    await self._beat_once()
                    self._attempted.set()
            elif kind == "message":
                await self._deliver(message.get("channel"), message.get("data"))

    async def _deliver(self, channel: Any, frame: Any) -> None:
        if not isinstance(frame, bytes):
            return
        try:
            delivery, sender = decode_delivery(frame)
        except ValueError as exc:
            logger.warning("session store: dropped a malformed delivery (%s): %s", exc,
                           printable(frame))
            return
        if sender == self.instance and channel == BROADCAST.encode("ascii"):
            return
        inbox = self._inbox
        if inbox is None:
            return
        try:
            await inbox(delivery)
        except Exception:
            logger.exception("session store: the inbox failed on a %s delivery for %s",
                             delivery.kind, printable(delivery.session_id))

    # --- registry

    async def put(self, record: SessionRecord, ttl: float) -> None:
        key = f"{PREFIX}s:{check_session_id(record.id)}"
        pipe = self._client.pipeline(transaction=True)
        pipe.hset(key, mapping={b"kind": record.kind.encode(), b"owner": record.owner.encode(),
                                b"state": orjson.dumps(record.state)})
        pipe.pexpire(key, _ms(ttl))
        await self.run(pipe.execute())

    async def get(self, session_id: str, ttl: float) -> SessionRecord | None:
        if not valid_session_id(session_id):
            return None
        key = f"{PREFIX}s:{session_id}"
        pipe = self._client.pipeline(transaction=False)
        pipe.hgetall(key)
        pipe.pexpire(key, _ms(ttl))
        fields, _ = await self.run(pipe.execute())
        if not fields:
            return None
        try:
            kind = fields[b"kind"].decode("ascii")
            owner = fields[b"owner"].decode("ascii")
            state = orjson.loads(fields[b"state"])
            if not isinstance(state, dict):
                raise ValueError("the state is not an object")
        except (KeyError, ValueError) as exc:
            logger.warning("session store: the record of %s is malformed (%s), ignored",
                           printable(session_id), printable(str(exc)))
            return None
        return SessionRecord(session_id, kind, owner, state)

    async def delete(self, session_id: str) -> bool:
        if not valid_session_id(session_id):
            return False
        deleted: int = await self.run(self._client.delete(f"{PREFIX}s:{session_id}"))
        return deleted > 0

    async def refresh(self, session_ids: Collection[str], ttl: float) -> None:
        keys = [f"{PREFIX}s:{sid}" for sid in session_ids if valid_session_id(sid)]
        if not keys:
            return
        pipe = self._client.pipeline(transaction=False)
        for key in keys:
            pipe.pexpire(key, _ms(ttl))
        await self.run(pipe.execute())

    # --- deliveries

    async def send_to(self, instance: str, delivery: Delivery) -> bool:
        if not _INSTANCE.fullmatch(instance):
            return False
        frame = encode_delivery(delivery, self.instance)
        receivers: int = await self.run(self._client.publish(f"{PREFIX}to:{instance}", frame))
        return receivers > 0

    async def broadcast(self, delivery: Delivery) -> None:
        await self.run(self._client.publish(BROADCAST, encode_delivery(delivery, self.instance)))

    async def alive(self, instance: str) -> bool:
        if not _INSTANCE.fullmatch(instance):
            return False
        found: int = await self.run(self._client.exists(f"{PREFIX}i:{instance}"))
        return found > 0

    # --- journals and claims

    def journal(self, session_id: str, key: str, *, limit: int, ttl: float) -> Journal:
        stream = f"{PREFIX}e:{check_session_id(session_id)}:{check_key(key)}"
        return RedisJournal(self, self._client, stream, limit=limit, ttl=ttl)

    async def acquire(self, name: str, ttl: float) -> bool:
        taken = await self.run(self._acquire(keys=[f"{PREFIX}c:{name}"],
                                             args=[self.instance, _ms(ttl), f"{PREFIX}i:"]))
        return bool(taken)

    async def renew(self, name: str, ttl: float) -> bool:
        kept = await self.run(self._renew(keys=[f"{PREFIX}c:{name}"],
                                          args=[self.instance, _ms(ttl)]))
        return bool(kept)

    async def release(self, name: str) -> None:
        await self.run(self._release(keys=[f"{PREFIX}c:{name}"], args=[self.instance]))
