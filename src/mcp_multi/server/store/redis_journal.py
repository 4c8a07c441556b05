"""Journals kept in Redis streams, and the one writer that stores their appends.

Theory of operation: a journal is the Redis stream ``mcp:e:{sid}:{key}`` whose entry ids are
``0-<n>``, ``n`` the event's number, so that Redis itself orders and finds events by number
(``XREAD`` from ``0-<cursor>`` gives exactly the events after a cursor). Each entry holds
the event (``d``) and the instance that appended it (``p``); the end mark is an entry with
an ``end`` field instead of an event, numbered one after the last event.

:meth:`RedisJournal.append` must never make the caller wait, so it only queues. One
:class:`JournalWriter` per store takes the queue in order and sends as much of it as fits a
batch in one pipeline: an event numbered by its producer is a plain ``XADD`` with that id;
one numbered by the store, and the end mark, run :data:`APPEND_LUA` (by its SHA, loaded
again when a restarted Redis has forgotten it), which takes the next number from the
counter ``mcp:e:{sid}:{key}:n`` and adds the entry in one atomic step, so that any number
of instances may append to the same journal. Every ``XADD`` trims the
stream to ``limit`` entries exactly (the oldest go first, so :meth:`RedisJournal.oldest`
is the true oldest number kept) and every batch renews the TTL of what it touched.

The queue is bounded (bytes and entries): past the bound, appends are dropped with one
warning until it drains. While the store is unreachable the writer keeps its batch and
tries again (backoff up to 2 s); a retried ``XADD`` that Redis had already stored is refused
by Redis as not after the stream's top, which is what we want. ``flush`` waits for the
writer to have stored what was queued before it was called, or raises StoreUnavailable
when a write fails meanwhile.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, ResponseError
from redis.typing import KeyT, StreamIdT

from .base import Journal, StoreUnavailable
from .wire import printable

if TYPE_CHECKING:
    from .redis_store import RedisStore

__all__ = ["APPEND_LUA", "APPEND_SHA", "JournalWriter", "RedisJournal"]

logger = logging.getLogger(__name__)

# Appends sent in one pipeline at most, by count and by bytes.
BATCH_ITEMS = 512
BATCH_BYTES = 1 << 20
# Events one read returns at most, and the longest one blocking XREAD waits (well under
# the socket timeout, so that a waiting reader never looks like a dead connection).
READ_BATCH = 256
READ_CHUNK = 1.0
BACKOFF_FIRST = 0.05
BACKOFF_MAX = 2.0
# What an entry costs in the queue beyond its payload.
OVERHEAD = 96

# KEYS: the stream, its counter. ARGV: the event, the instance, limit, ttl (ms), "1" for
# the end mark. The guard keeps the number after the stream's top whatever the counter says.
APPEND_LUA = """
local n = redis.call('INCR', KEYS[2])
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
if top then
  local last = tonumber(string.match(top[1], '^0%-(%d+)$'))
  if last and last >= n then
    n = last + 1
    redis.call('SET', KEYS[2], n)
  end
end
if ARGV[5] == '1' then
  redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[3], '0-' .. n, 'end', '1', 'p', ARGV[2])
else
  redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[3], '0-' .. n, 'd', ARGV[1], 'p', ARGV[2])
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return n
"""
APPEND_SHA = hashlib.sha1(APPEND_LUA.encode(), usedforsecurity=False).hexdigest()


@dataclass(slots=True)
class _Append:
    stream: str
    payload: bytes
    n: int | None
    end: bool
    limit: int
    ttl_ms: int
    seq: int = 0

    @property
    def size(self) -> int:
        return len(self.payload) + len(self.stream) + OVERHEAD


def _number(entry_id: Any) -> int | None:
    """The event number of a stream entry id ``0-<n>``; None for anything else."""
    if not isinstance(entry_id, bytes):
        return None
    ms, _, seq = entry_id.partition(b"-")
    return int(seq) if ms == b"0" and seq.isdigit() and len(seq) <= 20 else None


class JournalWriter:
    """The queue of one store's journal appends, and the task storing it."""

    def __init__(self, store: RedisStore, client: Redis, *, max_bytes: int,
                 max_items: int) -> None:
        self._store = store
        self._client = client
        self._max_bytes = max_bytes
        self._max_items = max_items
        self._queue: deque[_Append] = deque()
        self._bytes = 0
        self._queued = 0  # sequence number of the newest append queued
        self._stored = 0  # every append up to this one is stored
        self._failures = 0
        self._failure: StoreUnavailable | None = None
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.dropped = 0

    def push(self, append: _Append) -> None:
        if self._closed:
            logger.debug("session store closed: a journal append was dropped")
            return
        if len(self._queue) >= self._max_items or self._bytes + append.size > self._max_bytes:
            if self.dropped == 0:
                logger.warning("session store %s: the journal queue is full (%d entries, %d "
                               "bytes); appends are dropped until it drains", self._store.url,
                               len(self._queue), self._bytes)
            self.dropped += 1
            return
        self._queued += 1
        append.seq = self._queued
        self._queue.append(append)
        self._bytes += append.size
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="store-journal-writer")
        self._wake.set()

    def _signal(self) -> None:
        self._progress.set()
        self._progress = asyncio.Event()

    async def flush(self) -> None:
        target = self._queued
        failures = self._failures
        while self._stored < target:
            if self._failures != failures and self._failure is not None:
                raise StoreUnavailable(str(self._failure))
            if self._task is None or self._task.done():
                raise StoreUnavailable(f"session store {self._store.url} is closed")
            await self._progress.wait()

    async def close(self, timeout: float) -> None:
        """Store what is queued (waiting ``timeout`` at most), then stop."""
        self._closed = True
        self._wake.set()
        task = self._task
        if task is None:
            return
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(task)
        except TimeoutError:
            logger.warning("session store %s: %d journal entries were not stored at close",
                           self._store.url, len(self._queue))
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._signal()

    async def _run(self) -> None:
        backoff = BACKOFF_FIRST
        while True:
            if not self._queue:
                if self._closed:
                    return
                await self._wake.wait()
                self._wake.clear()
                continue
            batch = self._take()
            try:
                await self._store.run(self._write(batch))
            except StoreUnavailable as exc:
                self._failures += 1
                self._failure = exc
                self._signal()
                if self._closed:
                    return
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            backoff = BACKOFF_FIRST
            for _ in batch:
                self._bytes -= self._queue.popleft().size
            self._stored = batch[-1].seq
            if self.dropped and not self._queue:
                logger.info("session store %s: the journal queue drained; %d appends were "
                            "dropped", self._store.url, self.dropped)
                self.dropped = 0
            self._signal()

    def _take(self) -> list[_Append]:
        batch: list[_Append] = []
        size = 0
        for append in self._queue:
            if batch and (len(batch) >= BATCH_ITEMS or size + append.size > BATCH_BYTES):
                break
            batch.append(append)
            size += append.size
        return batch

    async def _write(self, batch: list[_Append]) -> None:
        results = await self._send(batch)
        # A Redis that restarted has forgotten the script: load it, then send again what
        # it refused for that (and only that: the rest is stored).
        unknown = [a for a, r in zip(batch, results, strict=True) if isinstance(r, NoScriptError)]
        if unknown:
            await self._client.script_load(APPEND_LUA)
            results = await self._send(unknown)
        refused = [r for r in results if isinstance(r, ResponseError)
                   and "equal or smaller" not in str(r)]
        if refused:
            logger.warning("session store %s: Redis refused %d journal entries: %s",
                           self._store.url, len(refused), printable(str(refused[0]), 200))

    async def _send(self, appends: list[_Append]) -> list[Any]:
        """Send ``appends`` in one pipeline; the result of each (an error included)."""
        instance = self._store.instance.encode("ascii")
        pipe = self._client.pipeline(transaction=False)
        expire: dict[str, int] = {}
        for a in appends:
            if a.n is not None:
                pipe.xadd(a.stream, {b"d": a.payload, b"p": instance}, id=f"0-{a.n}",
                          maxlen=a.limit, approximate=False)
                expire[a.stream] = a.ttl_ms
            else:
                pipe.evalsha(APPEND_SHA, 2, a.stream, a.stream + ":n", a.payload, instance,
                             a.limit, a.ttl_ms, b"1" if a.end else b"0")
        for stream, ttl_ms in expire.items():
            pipe.pexpire(stream, ttl_ms)
        results: list[Any] = await pipe.execute(raise_on_error=False)
        return results[:len(appends)]


class RedisJournal(Journal):
    """A journal in the Redis stream ``stream`` (see the module docstring)."""

    __slots__ = ("_client", "_limit", "_store", "_stream", "_ttl_ms")

    def __init__(self, store: RedisStore, client: Redis, stream: str, *, limit: int,
                 ttl: float) -> None:
        self._store = store
        self._client = client
        self._stream = stream
        self._limit = max(1, limit)
        self._ttl_ms = max(1, int(ttl * 1000))

    def append(self, payload: bytes, n: int | None = None) -> None:
        if n is not None and n < 1:
            raise ValueError("an event's number is 1 or more")
        self._store.writer.push(_Append(self._stream, payload, n, False, self._limit,
                                        self._ttl_ms))

    def end(self, final: bytes | None = None) -> None:
        if final is not None:
            self.append(final)
        self._store.writer.push(_Append(self._stream, b"", None, True, self._limit,
                                        self._ttl_ms))

    async def flush(self) -> None:
        await self._store.writer.flush()

    async def read(self, cursor: int, timeout: float) -> tuple[list[tuple[int, bytes]], bool]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        streams: dict[KeyT, StreamIdT] = {self._stream: f"0-{max(0, cursor)}"}
        reply = await self._store.run(self._client.xread(streams, count=READ_BATCH))
        while True:
            events, ended = self._events(reply)
            if events or ended:
                return events, ended
            async with self._store.readers:  # bounds the connections held by waiting reads
                block_ms = int(min(deadline - loop.time(), READ_CHUNK) * 1000)
                if block_ms < 1:  # never 0: BLOCK 0 waits forever
                    return [], False
                reply = await self._store.run(
                    self._client.xread(streams, count=READ_BATCH, block=block_ms))

    def _events(self, reply: Any) -> tuple[list[tuple[int, bytes]], bool]:
        events: list[tuple[int, bytes]] = []
        if isinstance(reply, dict):
            replies = list(reply.values())
        else:
            replies = [item[1] for item in reply or [] if isinstance(item, list | tuple)]
        for entries in replies:
            for entry_id, fields in entries:
                n = _number(entry_id)
                if n is None or not isinstance(fields, dict):
                    logger.debug("journal %s: skipped a foreign entry", self._stream)
                    continue
                if b"end" in fields:
                    return events, True
                payload = fields.get(b"d")
                if isinstance(payload, bytes):
                    events.append((n, payload))
        return events, False

    async def oldest(self) -> int | None:
        entries = await self._store.run(self._client.xrange(self._stream, count=1))
        return _number(entries[0][0]) if entries else None

    async def exists(self) -> bool:
        found: int = await self._store.run(self._client.exists(self._stream))
        return found > 0

    async def producer(self) -> str | None:
        entries = await self._store.run(self._client.xrevrange(self._stream, count=1))
        if not entries or not isinstance(entries[0][1], dict):
            return None
        producer = entries[0][1].get(b"p")
        if not isinstance(producer, bytes) or len(producer) != 12:
            return None
        text = producer.decode("ascii", "replace")
        return text if all(c in "0123456789abcdef" for c in text) else None
