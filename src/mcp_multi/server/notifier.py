"""Notifications the server sends on its own initiative, to sessions other than the caller's.

Theory of operation. Most server-to-client traffic answers a request and travels back on that
request's stream; a handler's ``call.notify`` does it. Two kinds belong to no request:
``notifications/{tools,prompts,resources}/list_changed`` (a list changed while clients hold a
copy) and ``notifications/resources/updated`` (a resource someone subscribed to changed). The
:class:`Notifier` is the one server-wide place that knows who wants them:

- handshake-era sessions join once ``initialize`` succeeds (any transport); they hear every
  ``list_changed`` once initialized, and ``resources/updated`` for the URIs they subscribed
  to with ``resources/subscribe``. Sessions are held weakly and skipped once closed, so no
  endpoint has to tell the notifier a session ended;
- 2026-07-28 clients have no session: a ``subscriptions/listen`` request registers a
  :class:`Listener` for as long as its stream is open, with the kinds it asked for, and
  every message it receives carries its subscription id.

Delivery goes through each target's own bounded send (a stream's queue, a WebSocket's send
buffer, each with its transport's write deadline), to all targets concurrently, and a target
that fails is only logged: one slow or broken client never harms the others, and the change
that is announced waits at most one write deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from ..protocol import methods as m
from ..protocol.envelope import SUBSCRIPTION_ID_META
from ..protocol.jsonrpc import RequestId, notification
from ..protocol.versions import HANDSHAKE
from .auth.principal import ANONYMOUS, Principal
from .session import ServerSession

__all__ = ["LIST_KINDS", "MAX_SUBSCRIPTIONS", "MAX_WATCHED_URI", "ListKind", "Listener", "Notifier",
           "SubscriptionLimit"]

logger = logging.getLogger(__name__)

ListKind = Literal["tools", "prompts", "resources"]
LIST_KINDS: tuple[ListKind, ...] = ("tools", "prompts", "resources")

_LIST_CHANGED: dict[ListKind, str] = {
    "tools": m.TOOLS_LIST_CHANGED,
    "prompts": m.PROMPTS_LIST_CHANGED,
    "resources": m.RESOURCES_LIST_CHANGED,
}

# Resource URIs one session (or one listen stream) may watch at once.
MAX_SUBSCRIPTIONS = 1000
# Characters of one watched URI: the count alone let a session keep 1000 URIs of a message's
# size each (a template matching any id), for as long as it lived.
MAX_WATCHED_URI = 8192

Send = Callable[[dict[str, Any]], Awaitable[None]]


class SubscriptionLimit(Exception):
    """A session asked to watch more than :data:`MAX_SUBSCRIPTIONS` resources, or a URI
    longer than :data:`MAX_WATCHED_URI` characters."""


@dataclass(eq=False, slots=True)
class Listener:
    """One open ``subscriptions/listen`` stream: where to send, and what it asked for."""

    send: Send
    subscription_id: RequestId
    lists: frozenset[ListKind] = frozenset()
    uris: frozenset[str] = frozenset()
    principal: Principal = ANONYMOUS  # who opened it (what a policy lets it see)

    def tagged(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """A notification of ``method`` carrying this stream's subscription id."""
        body = dict(params or {})
        body["_meta"] = {SUBSCRIPTION_ID_META: self.subscription_id}
        return notification(method, body)


@dataclass(slots=True)
class Notifier:
    """The live sessions and listen streams of one server, and what each subscribed to."""

    _sessions: weakref.WeakSet[ServerSession] = field(default_factory=weakref.WeakSet)
    _watching: weakref.WeakKeyDictionary[ServerSession, set[str]] = field(
        default_factory=weakref.WeakKeyDictionary)
    _listeners: set[Listener] = field(default_factory=set)

    # ------------------------------------------------------------ who listens

    def join(self, session: ServerSession) -> None:
        """Count a handshake-era session in (its ``initialize`` succeeded)."""
        self._sessions.add(session)

    def subscribe(self, session: ServerSession, uri: str) -> None:
        """Send ``session`` ``notifications/resources/updated`` for ``uri`` from now on.

        Raises:
            SubscriptionLimit: the session already watches :data:`MAX_SUBSCRIPTIONS` URIs,
                or ``uri`` is longer than :data:`MAX_WATCHED_URI`.
        """
        if len(uri) > MAX_WATCHED_URI:
            raise SubscriptionLimit(f"a watched URI may hold at most {MAX_WATCHED_URI} "
                                    "characters")
        watched = self._watching.setdefault(session, set())
        if uri not in watched and len(watched) >= MAX_SUBSCRIPTIONS:
            raise SubscriptionLimit(f"a session may watch at most {MAX_SUBSCRIPTIONS} resources")
        watched.add(uri)

    def unsubscribe(self, session: ServerSession, uri: str) -> bool:
        """Stop watching ``uri`` for ``session``; False when it did not watch it."""
        watched = self._watching.get(session)
        if watched is None or uri not in watched:
            return False
        watched.discard(uri)
        return True

    def subscriptions(self, session: ServerSession) -> frozenset[str]:
        """The URIs ``session`` watches."""
        return frozenset(self._watching.get(session, ()))

    @contextlib.contextmanager
    def listening(self, listener: Listener) -> Iterator[Listener]:
        """Deliver to ``listener`` while the ``with`` body runs (a listen stream is open)."""
        self._listeners.add(listener)
        try:
            yield listener
        finally:
            self._listeners.discard(listener)

    @property
    def listeners(self) -> int:
        """Listen streams open now."""
        return len(self._listeners)

    # ------------------------------------------------------------ what happened

    async def list_changed(self, kind: ListKind,
                           affected: Callable[[Principal], bool] | None = None) -> int:
        """Tell every initialized session, and every listen stream that asked, that the
        ``kind`` list changed; with ``affected``, only those whose caller it is true of (a
        policy shows callers different lists). Returns how many targets it was sent to."""
        method = _LIST_CHANGED[kind]
        plain = notification(method, None)
        targets: list[tuple[Send, dict[str, Any]]] = [
            (session.send, plain) for session in self._live()
            if session.initialized and (affected is None or affected(session.principal))
        ]
        targets += [(lis.send, lis.tagged(method)) for lis in self._listeners
                    if kind in lis.lists and (affected is None or affected(lis.principal))]
        await self._deliver(targets)
        return len(targets)

    async def resource_updated(self, uri: str) -> int:
        """Tell the sessions and listen streams watching ``uri`` that it changed. Returns how
        many targets it was sent to."""
        params = {"uri": uri}
        plain = notification(m.RESOURCES_UPDATED, params)  # one message for all sessions
        targets: list[tuple[Send, dict[str, Any]]] = [
            (session.send, plain)
            for session in self._live() if uri in self._watching.get(session, ())
        ]
        targets += [(lis.send, lis.tagged(m.RESOURCES_UPDATED, params))
                    for lis in self._listeners if uri in lis.uris]
        await self._deliver(targets)
        return len(targets)

    def _live(self) -> list[ServerSession]:
        return [s for s in list(self._sessions) if not s.closed and s.era == HANDSHAKE]

    @staticmethod
    async def _deliver(targets: list[tuple[Send, dict[str, Any]]]) -> None:
        async def one(send: Send, message: dict[str, Any]) -> None:
            try:
                await send(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # that client's stream is gone or stalled
                logger.debug("could not deliver %s: %s", message.get("method"), exc)

        if targets:
            await asyncio.gather(*(one(send, message) for send, message in targets))
