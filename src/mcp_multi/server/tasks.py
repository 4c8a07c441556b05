"""Tasks (the ``io.modelcontextprotocol/tasks`` extension): work that outlives its request.

Theory of operation. A ``tools/call`` that becomes a task hands its work to the server's
:class:`TaskRunner` and answers at once with a ``CreateTaskResult``; the work then runs as an
asyncio task of its own, so neither a closed HTTP stream nor the end of the request stops it.
The task's state (:class:`~mcp_multi.protocol.tasks.TaskState`, plain data) lives in a
:class:`TaskStore`; the default keeps it in memory, and the interface is small so a shared
store can take its place. What cannot leave the process (the running asyncio task, the
futures its questions wait on) stays in the runner.

Who sees a task. A task belongs to a *scope*: the session that made it (WebSocket, legacy SSE,
stdio, a Streamable HTTP session), or, for a stateless 2026-07-28 HTTP request that has no
session, the stateless scope, where the task id itself is the credential (256 random bits, as
the spec lets a server use ids as bearer handles). A task of another scope is answered exactly
as an unknown id (-32602), so its existence does not leak. There is no ``tasks/list``.

Bounds. Each task counts against its *client* (its session, or a stateless client's address),
its client's address, and the server: ``max_tasks_per_client`` tasks, running or finished,
an address's share of the server's (three quarters, as in the session tables: one address
opening session after session cannot take them all), ``max_tasks``, and
:data:`RESULT_BYTES` of kept results in all. A task lives ``task_ttl`` seconds from its
creation: a reaper stops work still running then and forgets the task; it also ends the tasks
of a session that went away (nobody can read them any more). A result larger than a message
may be is not kept: the task fails instead.

Questions. Work that needs the client (elicitation, sampling, roots) calls the ``ask`` it is
given: the task becomes ``input_required`` and lists the request under a key never used
before in that task; ``tasks/update`` delivers the answer and the work goes on. Answers to
keys not pending are ignored.

Status notifications (``notifications/tasks``) go to whoever :meth:`TaskRunner.listen`\\ s to a
task, each carrying what ``tasks/get`` would answer at that moment.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from ..protocol import methods as m
from ..protocol.errors import InternalError, InvalidParams, InvalidRequest, JSONRPCError
from ..protocol.input_required import check_answer, input_request
from ..protocol.jsonrpc import notification
from ..protocol.tasks import TaskState, TaskStatus
from ..protocol.text import for_display
from .session import SendFn, ServerSession
from .session_table import default_share
from .settings import ServerSettings
from .tools import ToolError

__all__ = [
    "RESULT_BYTES",
    "AskFn",
    "MemoryTaskStore",
    "Owner",
    "TaskControl",
    "TaskRecord",
    "TaskRunner",
    "TaskStore",
    "Work",
]

logger = logging.getLogger(__name__)

# Bytes of results (and errors) all kept tasks together may hold.
RESULT_BYTES = 256 * 1024 * 1024
# What ``pollIntervalMs`` suggests.
POLL_INTERVAL_MS = 1000
# Seconds between two rounds of the reaper (expired tasks, tasks of sessions gone).
REAP_INTERVAL = 1.0
# Input requests one task may have pending at once.
MAX_PENDING_INPUTS = 16

AskFn = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class TaskControl:
    """What the work of a task may do besides returning: ask the client (the task waits in
    ``input_required``) and say how it is doing (the task's ``statusMessage``)."""

    ask: AskFn
    say: Callable[[str], None]


# The work of a task: returns the request's result.
Work = Callable[[TaskControl], Awaitable[dict[str, Any]]]
# Asks another instance about one of its tasks: (instance, method, owner, task id, params).
Elsewhere = Callable[[str, str, "Owner", str, dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Owner:
    """Who makes or asks about a task: the scope that may see it, the client whose count it
    is in, and (for a session) the session, whose end ends the task."""

    scope: str
    client: str
    address: str = ""  # the client's network address, where the transport knows it
    # Held until the reaper sees it closed (at most REAP_INTERVAL later), then let go.
    session: ServerSession | None = None

    @classmethod
    def of(cls, session: ServerSession) -> Owner:
        """The owner a request on ``session`` speaks for."""
        if session.stateless:
            return cls("", "stateless:" + session.peer, session.peer)
        return cls("session:" + session.id, "session:" + session.id, session.peer, session)

    @property
    def gone(self) -> bool:
        """Whether the owning session has ended (never, for the stateless scope)."""
        return self.session is not None and self.session.closed


@dataclass(slots=True)
class TaskRecord:
    """One task as a store keeps it: its state, who owns it, when it expires, and the bytes
    of its kept outcome."""

    state: TaskState
    owner: Owner
    expires: float  # time.monotonic() deadline
    size: int = 0

    @property
    def task_id(self) -> str:
        return self.state.task_id


class TaskStore(Protocol):
    """Where task records live. Implementations enforce the bounds in :meth:`add`."""

    def add(self, record: TaskRecord) -> None:
        """Keep a new record.

        Raises:
            InvalidRequest: the client or the server holds as many tasks as it may.
        """
        ...

    def find(self, task_id: str) -> TaskRecord | None:
        """The record of ``task_id``, whoever owns it; ``None`` when there is none."""
        ...

    def save(self, record: TaskRecord) -> None:
        """Record that ``record`` changed (a shared store writes it back)."""
        ...

    def remove(self, task_id: str) -> TaskRecord | None:
        """Forget ``task_id``; its record, or ``None`` when there was none."""
        ...

    def charge(self, record: TaskRecord, size: int) -> bool:
        """Count ``size`` bytes of kept outcome for ``record``; False when they do not fit."""
        ...

    def records(self) -> Iterator[TaskRecord]:
        """Every record (for the reaper)."""
        ...


class MemoryTaskStore:
    """Task records in this process's memory, bounded per client, per address and in all, in
    count and in bytes."""

    def __init__(self, per_client: int, total: int, result_bytes: int = RESULT_BYTES) -> None:
        self.per_client = per_client
        self.total = total
        self.per_address = default_share(total)
        self.result_bytes = result_bytes
        self.bytes_held = 0
        self._records: dict[str, TaskRecord] = {}
        self._by_client: Counter[str] = Counter()
        self._by_address: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._records)

    def add(self, record: TaskRecord) -> None:
        client = record.owner.client
        if self._by_client[client] >= self.per_client:
            raise InvalidRequest(
                f"Too many tasks: this client holds {self.per_client}, the most it may; "
                "wait for one to expire or cancel one")
        address = record.owner.address
        if self._by_address[address] >= self.per_address:
            raise InvalidRequest(
                f"Too many tasks: this address holds {self.per_address} of the server's "
                f"{self.total}, one address's share; wait for one to expire or cancel one")
        if len(self._records) >= self.total:
            raise InvalidRequest(f"Too many tasks: the server holds {self.total}; retry later")
        self._records[record.task_id] = record
        self._by_client[client] += 1
        self._by_address[address] += 1

    def find(self, task_id: str) -> TaskRecord | None:
        return self._records.get(task_id)

    def save(self, record: TaskRecord) -> None:
        return None  # records are the live objects

    def remove(self, task_id: str) -> TaskRecord | None:
        record = self._records.pop(task_id, None)
        if record is not None:
            client = record.owner.client
            self._by_client[client] -= 1
            if not self._by_client[client]:
                del self._by_client[client]
            address = record.owner.address
            self._by_address[address] -= 1
            if not self._by_address[address]:
                del self._by_address[address]
            self.bytes_held -= record.size
            record.size = 0
        return record

    def charge(self, record: TaskRecord, size: int) -> bool:
        if self.bytes_held + size > self.result_bytes:
            return False
        self.bytes_held += size
        record.size += size
        return True

    def records(self) -> Iterator[TaskRecord]:
        return iter(list(self._records.values()))


@dataclass(slots=True)
class _Running:
    """The process-local half of a task: its asyncio task and the questions it waits on."""

    task: asyncio.Task[None] | None = None
    pending: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    asked: int = 0  # keys issued so far: a key is never used twice in one task


class TaskRunner:
    """The server's tasks: creates them, runs their work, answers about them."""

    def __init__(self, settings: ServerSettings, store: TaskStore | None = None) -> None:
        self.settings = settings
        self.store: TaskStore = store or MemoryTaskStore(settings.max_tasks_per_client,
                                                         settings.max_tasks)
        self._running: dict[str, _Running] = {}
        self._listeners: dict[str, set[SendFn]] = {}
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False
        # Instances sharing sessions (see mcp_multi.server.cluster): this one's id starts the
        # ids of its tasks, and ``elsewhere`` asks the instance another id names about it.
        self.instance: str | None = None
        self.elsewhere: Elsewhere | None = None

    # ----------------------------------------------------------------- creating

    def start(self, owner: Owner, work: Work, message: str | None = None) -> dict[str, Any]:
        """Create a task running ``work`` and return its ``CreateTaskResult``.

        The task is in the store before this returns, so a ``tasks/get`` sent as soon as the
        answer arrives finds it.

        Raises:
            InvalidRequest: the client or the server holds too many tasks, or the server is
                shutting down.
        """
        if self._closed:
            raise InvalidRequest("Server shutting down: no new tasks")
        ttl = self.settings.task_ttl
        token = secrets.token_urlsafe(32)
        state = TaskState(token if self.instance is None else f"{self.instance}.{token}",
                          ttl_ms=int(ttl * 1000),
                          poll_interval_ms=POLL_INTERVAL_MS, status_message=message)
        record = TaskRecord(state, owner, time.monotonic() + ttl)
        self.store.add(record)
        running = _Running()
        self._running[state.task_id] = running
        running.task = asyncio.create_task(self._run(record, running, work),
                                           name=f"mcp-task-{state.task_id[:8]}")
        self._wake_reaper()
        return state.create_result()

    async def _run(self, record: TaskRecord, running: _Running, work: Work) -> None:
        state = record.state
        try:
            control = TaskControl(self._ask_fn(record, running),
                                  lambda message: self._say(record, message))
            result = await work(control)
        except asyncio.CancelledError:
            self._settle(record, TaskStatus.CANCELLED, "Cancelled")
            return
        except ToolError as exc:
            result = m.tool_result(str(exc), is_error=True)
        except JSONRPCError as exc:
            self._fail(record, exc)
            return
        except Exception as exc:
            logger.exception("task %s failed", state.task_id[:8])
            self._fail(record, InternalError(f"Internal error: {type(exc).__name__}: {exc}"))
            return
        finally:
            for future in running.pending.values():
                future.cancel()
            running.pending.clear()
            self._running.pop(state.task_id, None)
        self._complete(record, result)

    def _complete(self, record: TaskRecord, result: dict[str, Any]) -> None:
        if record.state.terminal:
            return  # cancelled while the result was on its way: cancelled it stays
        size = len(orjson.dumps(result))
        if size > self.settings.max_message_size or not self.store.charge(record, size):
            self._fail(record, InternalError(
                f"Internal error: the task's result ({size} bytes) is too large to keep"))
            return
        record.state.complete(result)
        self._changed(record)

    def _fail(self, record: TaskRecord, exc: JSONRPCError) -> None:
        if record.state.terminal:
            return
        error = exc.to_error()
        size = len(orjson.dumps(error))
        if size > 64 * 1024 or not self.store.charge(record, size):
            error = InternalError("Internal error (details too large to keep)").to_error()
        record.state.fail(error, for_display(exc.message, 500))
        self._changed(record)

    def _settle(self, record: TaskRecord, status: TaskStatus, message: str) -> None:
        if not record.state.terminal:
            record.state.advance(status, message)
            self._changed(record)

    def _say(self, record: TaskRecord, message: str) -> None:
        state = record.state
        if not state.terminal:
            state.advance(state.status, for_display(message, 500))
            self._changed(record)

    # ----------------------------------------------------------------- questions

    def _ask_fn(self, record: TaskRecord, running: _Running) -> AskFn:
        async def ask(method: str, params: dict[str, Any]) -> dict[str, Any]:
            if len(running.pending) >= MAX_PENDING_INPUTS:
                raise InternalError(
                    f"Internal error: a task may wait on {MAX_PENDING_INPUTS} inputs at once")
            running.asked += 1
            key = f"input-{running.asked}"
            future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            running.pending[key] = future
            state = record.state
            state.input_requests[key] = input_request(method, params)
            state.advance(TaskStatus.INPUT_REQUIRED, f"Waiting for the client: {method}")
            self._changed(record)
            try:
                return await future
            finally:
                running.pending.pop(key, None)
                self._answered(record, key)

        return ask

    def _answered(self, record: TaskRecord, key: str) -> None:
        """``key`` is no longer pending; the task works again once nothing is."""
        state = record.state
        if state.input_requests.pop(key, None) is None or state.terminal:
            return
        if not state.input_requests:
            state.advance(TaskStatus.WORKING, "Working")
        self._changed(record)

    # ----------------------------------------------------------------- the methods

    def home(self, task_id: str) -> str | None:
        """The other instance running the task ``task_id``, when its id names one (and this
        instance can ask it); None for a task of this instance, or of nobody."""
        if self.elsewhere is None:
            return None
        instance, sep, _token = task_id.partition(".")
        return instance if sep and instance and instance != self.instance else None

    async def answer(self, owner: Owner, method: str, task_id: str,
                     params: Mapping[str, Any]) -> dict[str, Any]:
        """Answer ``tasks/get``, ``tasks/update`` or ``tasks/cancel`` about ``task_id`` for
        ``owner``: here, or at the instance running it.

        Raises:
            JSONRPCError: as the method's own refusal (an unknown task: -32602).
        """
        home = self.home(task_id)
        if home is not None:
            assert self.elsewhere is not None
            return await self.elsewhere(home, method, owner, task_id, dict(params))
        if method == m.TASKS_GET:
            return self.get(owner, task_id)
        if method == m.TASKS_UPDATE:
            self.update(owner, task_id, params.get("inputResponses"))
        elif method == m.TASKS_CANCEL:
            self.cancel(owner, task_id)
        else:
            raise InvalidRequest(f"Invalid Request: {for_display(method, 40)} is not asked of "
                                 "a task")
        return {}

    def find(self, owner: Owner, task_id: Any) -> TaskRecord:
        """The task ``task_id`` as ``owner`` may see it.

        Raises:
            InvalidParams: no such task for this caller (unknown, expired, another scope's,
                or not a string at all): one answer for all, so nothing leaks.
        """
        if not isinstance(task_id, str):
            raise InvalidParams('Invalid params: "taskId" must be a string')
        record = self.store.find(task_id)
        if record is not None and record.expires <= time.monotonic():
            self._forget(record)
            record = None
        if record is None or record.owner.scope != owner.scope:
            raise InvalidParams(f"Invalid params: unknown task {for_display(task_id, 80)}",
                                {"taskId": for_display(task_id, 80)})
        return record

    def get(self, owner: Owner, task_id: Any) -> dict[str, Any]:
        """``tasks/get``: the task's ``DetailedTask``."""
        return self.find(owner, task_id).state.detailed()

    def update(self, owner: Owner, task_id: Any, responses: Any) -> None:
        """``tasks/update``: deliver answers to pending input requests (others are ignored).
        Nothing is delivered unless every answer to a pending request is usable.

        Raises:
            InvalidParams: unknown task, ``inputResponses`` not an object, or an answer to a
                pending request that is not a result of its method.
        """
        record = self.find(owner, task_id)
        if not isinstance(responses, Mapping):
            raise InvalidParams('Invalid params: "inputResponses" must be an object')
        running = self._running.get(record.task_id)
        if running is None:
            return
        for key, answer in responses.items():
            future = running.pending.get(key)
            asked = record.state.input_requests.get(key)
            if future is None or future.done() or asked is None:
                continue
            problem = check_answer(asked["method"], answer)
            if problem is not None:
                raise InvalidParams(
                    f"Invalid params: the response to {for_display(str(key), 80)} {problem}")
        for key, answer in responses.items():
            future = running.pending.get(key)
            if future is not None and not future.done():
                future.set_result(answer)
                self._answered(record, key)

    def cancel(self, owner: Owner, task_id: Any) -> None:
        """``tasks/cancel``: stop the work; the task is ``cancelled`` at once (a terminal
        task stays as it is)."""
        record = self.find(owner, task_id)
        if record.state.terminal:
            return
        self._settle(record, TaskStatus.CANCELLED, "Cancelled by the client")
        running = self._running.get(record.task_id)
        if running is not None and running.task is not None:
            running.task.cancel()

    # ----------------------------------------------------------------- notifications

    def listen(self, owner: Owner, task_ids: list[Any], send: SendFn) -> list[str]:
        """Send ``notifications/tasks`` for each of ``task_ids`` that ``owner`` may see to
        ``send`` until :meth:`unlisten`; the ids it will hear about."""
        accepted = []
        for task_id in task_ids:
            try:
                record = self.find(owner, task_id)
            except InvalidParams:
                continue
            self._listeners.setdefault(record.task_id, set()).add(send)
            accepted.append(record.task_id)
        return accepted

    def unlisten(self, task_ids: list[str], send: SendFn) -> None:
        for task_id in task_ids:
            listeners = self._listeners.get(task_id)
            if listeners is not None:
                listeners.discard(send)
                if not listeners:
                    del self._listeners[task_id]

    def _changed(self, record: TaskRecord) -> None:
        self.store.save(record)
        listeners = self._listeners.get(record.task_id)
        if not listeners:
            return
        note = notification(m.TASKS_NOTIFICATION, record.state.detailed())
        for send in list(listeners):
            task = asyncio.get_running_loop().create_task(self._notify(send, note))
            task.add_done_callback(_quiet)

    @staticmethod
    async def _notify(send: SendFn, note: dict[str, Any]) -> None:
        await send(note)

    # ----------------------------------------------------------------- upkeep

    def _forget(self, record: TaskRecord) -> None:
        self.store.remove(record.task_id)
        self._listeners.pop(record.task_id, None)
        running = self._running.pop(record.task_id, None)
        if running is not None and running.task is not None and not running.task.done():
            running.task.cancel()

    def _wake_reaper(self) -> None:
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.create_task(self._reap(), name="mcp-task-reaper")

    async def _reap(self) -> None:
        """Forget expired tasks and those of sessions that ended, until none is left."""
        while True:
            await asyncio.sleep(min(REAP_INTERVAL, self.settings.task_ttl / 2))
            now = time.monotonic()
            alive = 0
            for record in self.store.records():
                if record.expires <= now or record.owner.gone:
                    self._forget(record)
                else:
                    alive += 1
            if not alive:
                return

    def close(self) -> None:
        """Server shutdown: stop every task's work and the reaper; refuse new tasks."""
        self._closed = True
        for running in self._running.values():
            if running.task is not None and not running.task.done():
                running.task.cancel()
        if self._reaper is not None:
            self._reaper.cancel()

    @property
    def running(self) -> int:
        """Tasks whose work runs now."""
        return sum(1 for r in self._running.values() if r.task is not None and not r.task.done())


def _quiet(task: asyncio.Task[None]) -> None:
    """A status notification that could not be sent is dropped (its listener went away)."""
    if not task.cancelled() and task.exception() is not None:
        logger.debug("task notification not sent: %s", task.exception())

