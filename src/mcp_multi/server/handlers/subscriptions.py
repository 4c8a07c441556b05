"""``subscriptions/listen`` (2026-07-28): a stream of change notifications."""

from __future__ import annotations

import asyncio
from typing import Any

from ...protocol import methods as m
from ...protocol.envelope import SUBSCRIPTION_ID_META
from ...protocol.errors import InvalidParams
from ...protocol.jsonrpc import notification
from ...protocol.versions import MODERN
from .router import Call, route
from .tasks import listen_tasks

__all__ = ["subscriptions_listen"]


@route(m.SUBSCRIPTIONS_LISTEN, MODERN)
async def subscriptions_listen(call: Call) -> dict[str, Any]:
    """Open a change-notification stream: acknowledge, then hold until cancelled.

    Our tools and resources never change while the server runs, so of the change
    notifications none is honoured and the acknowledgement says so; the status of tasks
    (``taskIds``, the tasks extension) is. The stream stays open
    until the client closes it (HTTP) or cancels the request (stdio, WebSocket).
    """
    wanted = call.params.get("notifications", {})
    if not isinstance(wanted, dict):
        raise InvalidParams('Invalid params: "notifications" must be an object')
    task_ids, stop_tasks = listen_tasks(call, wanted)  # the tasks extension's statuses
    agreed = {"taskIds": task_ids} if task_ids else {}
    try:
        await call.notify(notification(m.SUBSCRIPTIONS_ACKNOWLEDGED, {
            "_meta": {SUBSCRIPTION_ID_META: call.request_id}, "notifications": agreed,
        }))
        await asyncio.Event().wait()
    finally:
        stop_tasks()
    return {"_meta": {SUBSCRIPTION_ID_META: call.request_id}}  # pragma: no cover
