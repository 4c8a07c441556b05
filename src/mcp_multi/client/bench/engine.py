"""The engine: one process's share of a load run against one target.

Theory of operation. :class:`LoadRun` opens its sessions (:class:`BenchSession`, each an
:class:`~mcp_multi.client.connection.MCPConnection` and the driver that sends over it), then
starts ``concurrency`` workers; worker ``w`` uses session ``w % sessions``. The clock starts
when the workers do: calls that start (closed model) or are due (open model) within the
first ``warmup`` seconds are made but only counted as warmup calls; the measurement then
runs for ``duration`` seconds (no call starts after it) or for exactly ``calls`` calls.

- Closed model: a worker sends, waits, records the time from sending. With ``calls`` the
  workers draw tickets from one counter, so exactly that many are measured.
- Open model (``rate``): call ``i`` is due at ``t0 + i/rate``; worker ``w`` of ``N`` makes
  calls ``w, w+N, w+2N…`` in order, sleeping when the next one is not due yet, and records
  the time from when it was due. A worker that falls behind sends at once, and the delay
  shows in every late call's latency; nothing queues beyond the workers themselves, and
  when the time is up the calls still behind are not made (as wrk2 does).

A session whose connection is lost fails its calls as ``connection lost`` and is opened
again, at most once a second (the workers on it wait for that attempt, so a dead server
costs one error per attempt, not a busy loop). When every session has been lost for
:data:`GIVE_UP` seconds the run stops early. A run that stopped early, or ended with a
session still lost, is partial: its tally's ``stopped`` says why. Every call is bounded by
the timeout, so the run always ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ...protocol.text import for_display
from ...transport import create_transport
from ..connection import MCPConnection
from ..targets import ServerSpec
from .drivers import Driver, driver_for
from .outcome import CONNECTION_LOST, Tally
from .plan import Call, Plan

__all__ = ["GIVE_UP", "REOPEN_EVERY", "BenchSession", "LoadRun", "Progress", "Target"]

# Seconds between two attempts to open a lost session again.
REOPEN_EVERY = 1.0
# Seconds with every session lost after which the run stops.
GIVE_UP = 5.0
# The longest an attempt to open a session may take (less when the timeout is shorter).
OPEN_LIMIT = 10.0
# How often the run looks at its sessions (and reports progress).
TICK = 0.25


@dataclass(frozen=True, slots=True)
class Target:
    """A server to load, and how its sessions are opened.

    Attributes:
        spec: the server (name, transport, URL, its own headers or stdio environment).
        headers: HTTP headers for it (``--header``; the spec's own win).
        protocol_version: ``--protocol-version`` (``None``: the client's choice).
        fast: whether calls may take the lean HTTP driver where it applies.
    """

    spec: ServerSpec
    headers: dict[str, str] = field(default_factory=dict)
    protocol_version: str | None = None
    fast: bool = True

    @property
    def name(self) -> str:
        return self.spec.name

    async def open(self, timeout: float) -> MCPConnection:
        """A connected session (the client's handshake or discovery, within ``timeout``).

        Raises:
            MCPError, ValueError: it could not be opened.
        """
        spec = self.spec
        options: dict[str, Any] = {"connect_timeout": min(timeout, OPEN_LIMIT)}
        if spec.transport == "stdio":
            options.update(env=dict(spec.env), cwd=spec.cwd, server_name=spec.name)
        else:
            options["headers"] = {**self.headers, **spec.headers}
        connection = MCPConnection(spec.name, create_transport(spec.transport, spec.url,
                                                               **options),
                                   timeout=timeout, protocol_version=self.protocol_version)
        await connection.connect()
        return connection

    def to_wire(self) -> dict[str, Any]:
        """This target as JSON-ready data (for a worker process)."""
        spec = self.spec
        return {"name": spec.name, "transport": spec.transport, "url": spec.url,
                "spec_headers": dict(spec.headers), "env": dict(spec.env), "cwd": spec.cwd,
                "headers": self.headers, "protocol_version": self.protocol_version,
                "fast": self.fast}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Target:
        spec = ServerSpec(data["name"], data["transport"], data["url"],
                          headers=data["spec_headers"], env=data["env"], cwd=data["cwd"])
        return cls(spec, dict(data["headers"]), data["protocol_version"], bool(data["fast"]))


def _reason(exc: BaseException) -> str:
    return for_display(str(exc) or type(exc).__name__, 300)


class BenchSession:
    """One session of the run: its connection and driver, opened again when lost."""

    __slots__ = ("_call", "_lock", "_next_attempt", "_stale", "_target", "_timeout",
                 "_workers", "connection", "driver", "lost", "lost_at")

    def __init__(self, target: Target, call: Call, timeout: float, workers: int) -> None:
        self._target = target
        self._call = call
        self._timeout = timeout
        self._workers = workers  # how many use it: the most HTTP connections it needs
        self._lock = asyncio.Lock()
        self._next_attempt = 0.0
        self._stale: Driver | None = None  # a lost connection's driver, still to be closed
        self.connection: MCPConnection | None = None
        self.driver: Driver | None = None
        self.lost: str | None = None  # why, while the session is lost
        self.lost_at = 0.0

    async def open(self) -> None:
        """Open the session (raises as :meth:`Target.open`)."""
        connection = await self._target.open(self._timeout)
        try:
            if self._call.tool is not None and connection.transport_kind == "http":
                # Over Streamable HTTP a tool's arguments may be mirrored into headers
                # (2026-07-28 x-mcp-header): the transport learns which from the list.
                await connection.list_tools()
        except BaseException:
            await connection.close()
            raise
        self.adopt(connection)

    def adopt(self, connection: MCPConnection) -> None:
        """Use an open connection (the pre-flight's) as this session."""
        self.connection = connection
        self.driver = driver_for(connection, self._call, fast=self._target.fast,
                                 limit=self._workers)
        self.lost = None

    async def call(self, timeout: float, stopping: asyncio.Event) -> str | None:
        """One call over this session (see :meth:`Driver.call`); a lost session is opened
        again first, when its next attempt is due."""
        driver = self.driver
        if driver is None:
            if not await self._revive(stopping):
                return CONNECTION_LOST
            driver = self.driver
            assert driver is not None
        kind = await driver.call(timeout)
        if kind == CONNECTION_LOST:
            self.lose(driver)
        return kind

    def lose(self, driver: Driver) -> None:
        """A call over ``driver`` found the connection lost: drop it (unless a newer one
        has replaced it meanwhile); the next call opens the session again."""
        if self.driver is not driver:
            return
        connection = self.connection
        reason = connection.closed_reason if connection is not None else None
        self.lost = reason or "the connection was lost"
        self.lost_at = time.perf_counter()
        self._stale, self.driver = driver, None
        self._next_attempt = asyncio.get_running_loop().time()  # try again at once, once

    async def _revive(self, stopping: asyncio.Event) -> bool:
        loop = asyncio.get_running_loop()
        async with self._lock:
            if self.driver is not None:
                return True
            delay = self._next_attempt - loop.time()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await stopping.wait()
            if stopping.is_set():
                return False
            self._next_attempt = loop.time() + REOPEN_EVERY
            await self.close()
            try:
                async with asyncio.timeout(min(self._timeout, OPEN_LIMIT)):
                    await self.open()
            except TimeoutError:
                self.lost = "the server did not answer in time"
                return False
            except Exception as exc:  # whatever it was, the session stays lost
                self.lost = _reason(exc)
                return False
            return True

    async def close(self) -> None:
        drivers = (self.driver, self._stale)
        self.driver = self._stale = None
        connection, self.connection = self.connection, None
        for driver in drivers:
            if driver is not None:
                await driver.close()
        if connection is not None:
            await connection.close()


@dataclass(slots=True)
class Progress:
    """Where a run is: seconds since it started, calls measured, errors, warmup calls."""

    elapsed: float
    calls: int
    errors: int
    warmup_calls: int


class LoadRun:
    """One process's share of the load on one target (see the module docstring).

    Use: :meth:`open` (or :meth:`adopt` a connection first), :meth:`run`, :meth:`close`.
    """

    def __init__(self, target: Target, call: Call, plan: Plan) -> None:
        self.target = target
        self.call = call
        self.plan = plan
        self.tally = Tally()
        count = max(1, min(plan.sessions, plan.concurrency))
        self.sessions = [BenchSession(target, call, plan.timeout,
                                      len(range(index, plan.concurrency, count)))
                         for index in range(count)]
        self.stopping = asyncio.Event()
        self._started = 0.0
        self._warm_end = 0.0
        self._end = math.inf
        self._last_done = 0.0
        self._remaining: int | None = plan.calls
        self._running = False

    # -- sessions ----------------------------------------------------------------------

    def adopt(self, connection: MCPConnection) -> None:
        """Use an open connection as the first session."""
        self.sessions[0].adopt(connection)

    async def open(self) -> None:
        """Open every session not open yet, concurrently.

        Raises:
            MCPError, ValueError: one could not be opened (the others are closed).
        """
        waiting = [s for s in self.sessions if s.driver is None]
        outcomes = await asyncio.gather(*(s.open() for s in waiting), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                await self.close()
                raise outcome

    async def close(self) -> None:
        await asyncio.gather(*(s.close() for s in self.sessions), return_exceptions=True)

    # -- the run -----------------------------------------------------------------------

    def stop(self, reason: str | None = None) -> None:
        """End the run now: no call starts after this; ``reason`` makes it partial."""
        if reason is not None and self.tally.stopped is None:
            self.tally.stopped = reason
        self._end = min(self._end, time.perf_counter())
        self._remaining = 0
        self.stopping.set()

    def progress(self) -> Progress:
        tally = self.tally
        elapsed = time.perf_counter() - self._started if self._running else 0.0
        return Progress(elapsed, tally.calls, tally.error_count, tally.warmup_calls)

    async def run(self, on_tick: Callable[[Progress], None] | None = None) -> Tally:
        """Run the load and return what was measured (see the module docstring)."""
        plan = self.plan
        self._started = now = time.perf_counter()
        self._warm_end = now + plan.warmup
        if plan.duration is not None:
            self._end = min(self._end, self._warm_end + plan.duration)
        self._last_done = self._warm_end
        self._running = True
        if self.stopping.is_set():
            self._end = now
        count = plan.concurrency
        sessions = self.sessions
        if plan.rate is not None:
            first = math.ceil(plan.warmup * plan.rate)
            last = first + plan.calls if plan.calls is not None else math.inf
            workers = [self._open_worker(w, count, sessions[w % len(sessions)], first, last)
                       for w in range(count)]
        else:
            workers = [self._closed_worker(sessions[w % len(sessions)]) for w in range(count)]
        tasks = [asyncio.create_task(worker) for worker in workers]
        watcher = asyncio.create_task(self._watch(on_tick))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            watcher.cancel()
            await asyncio.gather(*tasks, watcher, return_exceptions=True)
            self._running = False
        if self.tally.stopped is None:
            lost = next((s.lost for s in sessions if s.lost is not None), None)
            if lost is not None:
                self.tally.stopped = f"{CONNECTION_LOST}: {lost}"
        self.tally.duration = max(self._last_done - self._warm_end, 0.0)
        return self.tally

    async def _watch(self, on_tick: Callable[[Progress], None] | None) -> None:
        """Every :data:`TICK`: report progress; stop once every session stayed lost."""
        while True:
            await asyncio.sleep(TICK)
            self.tally.flush()
            if on_tick is not None:
                on_tick(self.progress())
            sessions = self.sessions
            if all(s.lost is not None for s in sessions):
                since = time.perf_counter() - max(s.lost_at for s in sessions)
                if since >= GIVE_UP:
                    self.stop(f"{CONNECTION_LOST}: {sessions[0].lost} (gave up after "
                              f"{GIVE_UP:g} s)")

    async def _closed_worker(self, session: BenchSession) -> None:
        clock = time.perf_counter
        tally = self.tally
        record = tally.pending.append
        errors = tally.errors
        timeout = self.plan.timeout
        stopping = self.stopping
        while True:
            start = clock()
            if start >= self._end:
                return
            warm = start < self._warm_end
            if not warm and self._remaining is not None:
                if self._remaining <= 0:
                    return
                self._remaining -= 1
            driver = session.driver
            if driver is not None:  # the common case, without a call of the session's
                kind = await driver.call(timeout)
                if kind == CONNECTION_LOST:
                    session.lose(driver)
            else:
                kind = await session.call(timeout, stopping)
            done = clock()
            if warm:
                tally.warmup_calls += 1
                continue
            if kind is None:
                record(done - start)
            else:
                errors[kind] += 1
            if done > self._last_done:
                self._last_done = done

    async def _open_worker(self, worker: int, count: int, session: BenchSession,
                           first: int, last: float) -> None:
        clock = time.perf_counter
        tally = self.tally
        record = tally.pending.append
        errors = tally.errors
        timeout = self.plan.timeout
        stopping = self.stopping
        interval = 1.0 / self.plan.rate if self.plan.rate else 0.0
        t0 = self._started
        index = worker
        while index < last:
            due = t0 + index * interval
            if due >= self._end:
                return
            wait = due - clock()
            if wait > TICK:  # a long wait: one a stop cuts short
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await stopping.wait()
                if due >= self._end:
                    return
            elif wait > 0:
                await asyncio.sleep(wait)
                if due >= self._end:
                    return
            elif clock() >= self._end:
                return  # behind the schedule, and the time is up: the rest is not made
            driver = session.driver
            if driver is not None:
                kind = await driver.call(timeout)
                if kind == CONNECTION_LOST:
                    session.lose(driver)
            else:
                kind = await session.call(timeout, stopping)
            done = clock()
            if index < first:
                tally.warmup_calls += 1
            else:
                if kind is None:
                    record(done - due)
                else:
                    errors[kind] += 1
                if done > self._last_done:
                    self._last_done = done
            index += count
