"""Sessions shared with other instances of the server, through the session store.

Theory of operation. With ``--session-store`` several instances (processes, machines) serve
the same sessions behind a load balancer that sends each request anywhere. What one instance
alone cannot do goes through the store (:mod:`mcp_multi.server.store`):

- **Records.** Each legacy SSE session and each Streamable HTTP session has a record in the
  store, with a time to live renewed by use. A legacy SSE session's record names the
  instance holding its stream; a Streamable HTTP session's holds what its handshake settled,
  from which any instance makes its own copy of the session (see the endpoints).
- **Deliveries.** Each instance listens on the store for messages addressed to it or to all
  (:func:`_inbox`): a legacy POST that another instance accepted for a stream this one holds,
  a client's answer to a request this instance sent it, a cancellation, a session's record
  changed elsewhere, and a session ended elsewhere. The endpoints say what each means.
- **Tasks.** A task runs on the instance that started it, whose id begins its id. A
  ``tasks/get``, ``tasks/update`` or ``tasks/cancel`` reaching another instance is asked of
  that one through the store (:class:`TaskCalls`), and its answer comes back the same way:
  a 2026-07-28 client polling its task may land anywhere.
- **Upkeep.** A legacy SSE session lives as long as its stream, however long it stays quiet,
  so the instance holding streams renews their records (:func:`_keep`), as it does those of
  the Streamable HTTP sessions it is delivering a stream of. An instance that dies renews
  nothing: its records lapse, and the store's heartbeat tells the others it is gone at once.

Nothing here runs when the store is the in-memory one: a single instance shares nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import Any

import orjson
from aiohttp import web

from ..protocol.errors import InternalError, InvalidParams, JSONRPCError
from ..protocol.text import for_display
from .endpoints.sse import receive_forwarded
from .endpoints.streamable_http import (
    end_shared_session,
    receive_answer,
    recheck_shared_session,
)
from .state import STATE, ServerState
from .store import Delivery, StoreUnavailable
from .tasks import Owner

__all__ = ["TaskCalls", "start_sharing", "stop_sharing"]

logger = logging.getLogger(__name__)

_KEEPER: web.AppKey[asyncio.Task[None]] = web.AppKey("mcp_store_keeper", asyncio.Task)
_CALLS: web.AppKey[TaskCalls] = web.AppKey("mcp_task_calls")
# Seconds an instance waits for another's answer about a task.
TASK_CALL_TIMEOUT = 10.0
# Questions about tasks one instance may have waiting on others at once.
MAX_TASK_CALLS = 1000
# Deliveries about no session travel under this id.
_NO_SESSION = "-"


class TaskCalls:
    """Questions about tasks this instance asks the instances running them, and answers to
    theirs (see the module docstring)."""

    def __init__(self, state: ServerState) -> None:
        self._state = state
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}

    async def ask(self, instance: str, method: str, owner: Owner, task_id: str,
                  params: dict[str, Any]) -> dict[str, Any]:
        """``TaskRunner.elsewhere``: ``method`` about ``task_id``, asked of ``instance``."""
        unknown = InvalidParams(f"Invalid params: unknown task {for_display(task_id, 80)}",
                                {"taskId": for_display(task_id, 80)})
        if len(self._waiting) >= MAX_TASK_CALLS:
            raise InternalError("Internal error: too many questions to other instances "
                                "outstanding; retry later")
        call_id = secrets.token_hex(8)
        body = orjson.dumps({"id": call_id, "from": self._state.store.instance,
                             "method": method, "task": task_id, "params": params,
                             "owner": [owner.scope, owner.client, owner.address]})
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[call_id] = future
        try:
            try:
                sent = await self._state.store.send_to(instance,
                                                       Delivery(_NO_SESSION, "task", body))
            except StoreUnavailable as exc:
                raise InternalError(f"Internal error: {exc}") from None
            if not sent:  # the instance running it is gone, and its tasks with it
                raise unknown
            try:
                async with asyncio.timeout(TASK_CALL_TIMEOUT):
                    answer = await future
            except TimeoutError:
                raise InternalError("Internal error: the instance running the task did not "
                                    "answer in time") from None
        finally:
            self._waiting.pop(call_id, None)
        error = answer.get("error")
        if isinstance(error, dict):
            code, message = error.get("code"), error.get("message")
            raise JSONRPCError(message if isinstance(message, str) else "Error",
                               error.get("data"),
                               code=code if isinstance(code, int) else None)
        result = answer.get("result")
        return result if isinstance(result, dict) else {}

    async def answer(self, body: bytes) -> None:
        """Answer another instance's question about one of this instance's tasks."""
        try:
            asked = orjson.loads(body)
            call_id, reply_to = asked["id"], asked["from"]
            method, task_id, params = asked["method"], asked["task"], asked["params"]
            scope, client, address = asked["owner"]
            if not all(isinstance(v, str) for v in (call_id, reply_to, method, task_id, scope,
                                                     client, address)) \
                    or not isinstance(params, dict):
                raise TypeError("fields of the wrong type")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            logger.warning("session store: a malformed question about a task dropped: %s",
                           for_display(str(exc), 100))
            return
        owner = Owner(scope, client, address)
        try:
            reply: dict[str, Any] = {"id": call_id, "result": await self._state.dispatcher.context
                                     .tasks.answer(owner, method, task_id, params)}
        except JSONRPCError as exc:
            reply = {"id": call_id, "error": exc.to_error()}
        with contextlib.suppress(StoreUnavailable):
            await self._state.store.send_to(reply_to, Delivery(_NO_SESSION, "reply",
                                                               orjson.dumps(reply)))

    def answered(self, body: bytes) -> None:
        """Another instance answered one of this instance's questions."""
        try:
            reply = orjson.loads(body)
        except orjson.JSONDecodeError:
            return
        call_id = reply.get("id") if isinstance(reply, dict) else None
        future = self._waiting.get(call_id) if isinstance(call_id, str) else None
        if future is not None and not future.done():
            future.set_result(reply)


async def start_sharing(app: web.Application) -> None:
    """``on_startup``: connect to the store and listen for this instance's deliveries. A store
    that cannot be reached now is no reason not to start: requests that need it get 503 until
    it can (the store says so once, and reconnects by itself)."""
    state = app[STATE]
    store = state.store
    if not store.shared:
        return
    calls = app[_CALLS] = TaskCalls(state)
    tasks = state.dispatcher.context.tasks
    tasks.instance, tasks.elsewhere = store.instance, calls.ask
    try:
        await store.start(lambda delivery: _inbox(state, calls, delivery))
    except StoreUnavailable as exc:
        logger.warning("session store: %s; serving what needs no store until it is back", exc)
    app[_KEEPER] = asyncio.create_task(_keep(state))
    logger.info("sharing sessions through the session store as instance %s", store.instance)


async def stop_sharing(app: web.Application) -> None:
    """``on_cleanup``: stop renewing records and listening. The sessions stay in the store:
    another instance serves them on (a legacy SSE session ended with its stream)."""
    state = app[STATE]
    keeper = app.get(_KEEPER)
    if keeper is not None:
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
    if state.chores:
        await asyncio.wait(list(state.chores), timeout=2.0)
    if state.store.shared:
        await state.store.close()


async def _inbox(state: ServerState, calls: TaskCalls, delivery: Delivery) -> None:
    """One delivery from another instance (or from this one, through the store)."""
    session_id = delivery.session_id
    if delivery.kind == "task":
        # Its answer may wait on nothing slow, but must not hold up the deliveries behind it.
        state.chore(calls.answer(delivery.body))
    elif delivery.kind == "reply":
        calls.answered(delivery.body)
    elif delivery.kind == "close":
        end_shared_session(state, session_id)
    elif delivery.kind == "changed":
        recheck_shared_session(state, session_id)
    elif delivery.kind != "message":
        logger.warning("session store: a delivery of unknown kind %s dropped",
                       for_display(delivery.kind, 40))
    elif session_id in state.sse_sessions:
        await receive_forwarded(state, session_id, delivery.body)
    else:
        await receive_answer(state, session_id, delivery.body)


async def _keep(state: ServerState) -> None:
    """Renew, a few times per time to live, the records of the sessions whose streams this
    instance holds (a stream open is a session in use, however quiet)."""
    period = min(60.0, max(1.0, state.store_ttl / 3))
    while True:
        await asyncio.sleep(period)
        held = [*state.sse_sessions,
                *(sid for sid, session in state.http_sessions.items() if session.busy)]
        if held:
            with contextlib.suppress(StoreUnavailable):
                await state.store.refresh(held, state.store_ttl)
