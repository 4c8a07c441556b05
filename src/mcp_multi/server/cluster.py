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
  a client's answer to a request this instance sent it, a cancellation, and a session ended
  elsewhere. The endpoints say what each means.
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

from aiohttp import web

from ..protocol.text import for_display
from .endpoints.sse import receive_forwarded
from .endpoints.streamable_http import end_shared_session, receive_answer
from .state import STATE, ServerState
from .store import Delivery, StoreUnavailable

__all__ = ["start_sharing", "stop_sharing"]

logger = logging.getLogger(__name__)

_KEEPER: web.AppKey[asyncio.Task[None]] = web.AppKey("mcp_store_keeper", asyncio.Task)


async def start_sharing(app: web.Application) -> None:
    """``on_startup``: connect to the store and listen for this instance's deliveries. A store
    that cannot be reached now is no reason not to start: requests that need it get 503 until
    it can (the store says so once, and reconnects by itself)."""
    state = app[STATE]
    store = state.store
    if not store.shared:
        return
    try:
        await store.start(lambda delivery: _inbox(state, delivery))
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


async def _inbox(state: ServerState, delivery: Delivery) -> None:
    """One delivery from another instance (or from this one, through the store)."""
    session_id = delivery.session_id
    if delivery.kind == "close":
        end_shared_session(state, session_id)
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
