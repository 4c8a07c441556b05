"""``subscriptions/listen`` (2026-07-28): a stream of change notifications."""

from __future__ import annotations

import asyncio
from typing import Any

from ...protocol import methods as m
from ...protocol.envelope import SUBSCRIPTION_ID_META
from ...protocol.errors import InvalidParams, JSONRPCError
from ...protocol.versions import MODERN
from ..notifier import LIST_KINDS, MAX_SUBSCRIPTIONS, MAX_WATCHED_URI, Listener, ListKind
from .lifecycle import capabilities
from .resources import check_readable
from .router import Call, route
from .tasks import listen_tasks

__all__ = ["subscriptions_listen"]

# The filter's key for each list, as the client names it.
_FILTER_KEYS: dict[ListKind, str] = {kind: f"{kind}ListChanged" for kind in LIST_KINDS}


@route(m.SUBSCRIPTIONS_LISTEN, MODERN)
async def subscriptions_listen(call: Call) -> dict[str, Any]:
    """Open a change-notification stream: acknowledge, then deliver until cancelled.

    Only what the client asked for and the server can send is honoured, and the
    acknowledgement says which: the lists whose changes are announced (``listChanged`` in
    our capabilities), ``resourceSubscriptions`` (each URI's
    ``notifications/resources/updated``) and the status of tasks (``taskIds``, the tasks
    extension). The stream stays open until the client closes it (HTTP) or cancels the
    request (stdio, WebSocket).
    """
    wanted = call.params.get("notifications", {})
    lists, uris = _wanted(wanted)
    offered = capabilities(modern=True, policy=call.server.permissions.policy is not None)
    lists = frozenset(kind for kind in lists if offered[kind].get("listChanged"))
    listener = Listener(call.notify, call.request_id, lists, _readable(call, uris),
                        call.session.principal)
    agreed: dict[str, Any] = {_FILTER_KEYS[kind]: True for kind in LIST_KINDS if kind in lists}
    if uris:
        agreed["resourceSubscriptions"] = sorted(uris)
    task_ids, stop_tasks = listen_tasks(call, wanted)  # the tasks extension's statuses
    if task_ids:
        agreed["taskIds"] = task_ids
    try:
        with call.server.notifier.listening(listener):
            # Registered before the acknowledgement, so no change after it is missed.
            await call.notify(listener.tagged(m.SUBSCRIPTIONS_ACKNOWLEDGED,
                                              {"notifications": agreed}))
            await asyncio.Event().wait()
    finally:
        stop_tasks()
    return {"_meta": {SUBSCRIPTION_ID_META: call.request_id}}  # pragma: no cover


def _wanted(raw: Any) -> tuple[frozenset[ListKind], frozenset[str]]:
    """The lists and resource URIs a ``notifications`` filter asks for."""
    if not isinstance(raw, dict):
        raise InvalidParams('Invalid params: "notifications" must be an object')
    lists = frozenset(kind for kind, key in _FILTER_KEYS.items() if raw.get(key) is True)
    uris = raw.get("resourceSubscriptions", [])
    if not isinstance(uris, list) or not all(isinstance(u, str) for u in uris):
        raise InvalidParams('Invalid params: "resourceSubscriptions" must be an array of '
                            'strings')
    if len(uris) > MAX_SUBSCRIPTIONS:
        raise InvalidParams(f"Invalid params: at most {MAX_SUBSCRIPTIONS} resource "
                            "subscriptions per stream")
    if any(len(uri) > MAX_WATCHED_URI for uri in uris):
        raise InvalidParams(f"Invalid params: a resource subscription's URI may hold at most "
                            f"{MAX_WATCHED_URI} characters")
    return lists, frozenset(uris)


def _readable(call: Call, uris: frozenset[str]) -> frozenset[str]:
    """The URIs of ``uris`` the caller may read. A hidden one is acknowledged as asked, like
    a URI the server does not have, and like it never hears of an update."""
    access = call.server.permissions.access(call.session.principal)
    if access is None:
        return uris
    readable = set()
    for uri in uris:
        try:
            check_readable(access, call.server.resources.template_of(uri), uri)
        except JSONRPCError:
            continue
        readable.add(uri)
    return frozenset(readable)
