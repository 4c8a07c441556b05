"""The resource methods: ``resources/list``, ``resources/read``, ``resources/templates/list``
(both eras), and ``resources/subscribe`` / ``resources/unsubscribe`` (handshake era; in
2026-07-28 a ``subscriptions/listen`` stream names the URIs it watches)."""

from __future__ import annotations

from typing import Any

from ...protocol import methods as m
from ...protocol.envelope import CacheHint
from ...protocol.errors import InvalidParams, ResourceNotFound
from ...protocol.versions import HANDSHAKE
from ..notifier import SubscriptionLimit
from .router import Call, page, route

__all__ = ["resources_list", "resources_read", "resources_subscribe",
           "resources_templates_list", "resources_unsubscribe"]

# The resource list is fixed for the life of a server process; the resources themselves
# (uptime, statistics) are stale at once.
_FIXED = CacheHint(300_000)


@route(m.RESOURCES_LIST, cache=_FIXED)
async def resources_list(call: Call) -> dict[str, Any]:
    resources, more = page(call.server.resources.list_resources(), call.params, "resources",
                           call.server.settings.page_size)
    return {"resources": resources, **more}


@route(m.RESOURCES_READ, cache=CacheHint(0, "private"))
async def resources_read(call: Call) -> dict[str, Any]:
    uri = _uri(call)
    try:
        return call.server.resources.read(uri)
    except ResourceNotFound as exc:
        if call.modern:  # 2026-07-28 replaced RESOURCE_NOT_FOUND with INVALID_PARAMS
            raise InvalidParams(exc.message, exc.data) from None
        raise


@route(m.RESOURCES_TEMPLATES_LIST, cache=_FIXED)
async def resources_templates_list(call: Call) -> dict[str, Any]:
    templates, more = page(call.server.resources.list_templates(), call.params,
                           "resourceTemplates", call.server.settings.page_size)
    return {"resourceTemplates": templates, **more}


@route(m.RESOURCES_SUBSCRIBE, HANDSHAKE)
async def resources_subscribe(call: Call) -> dict[str, Any]:
    """Watch a resource that exists (reading it proves that): its changes reach this
    session, and no other, as ``notifications/resources/updated``."""
    uri = _uri(call)
    call.server.resources.read(uri)  # ResourceNotFound (-32002) for a URI we do not have
    try:
        call.server.notifier.subscribe(call.session, uri)
    except SubscriptionLimit as exc:
        raise InvalidParams(f"Invalid params: {exc}") from None
    return {}


@route(m.RESOURCES_UNSUBSCRIBE, HANDSHAKE)
async def resources_unsubscribe(call: Call) -> dict[str, Any]:
    """Stop watching a resource; unsubscribing from one not watched is not an error."""
    call.server.notifier.unsubscribe(call.session, _uri(call))
    return {}


def _uri(call: Call) -> str:
    uri = call.params.get("uri")
    if not isinstance(uri, str):
        raise InvalidParams('Invalid params: "uri" must be a string')
    return uri
