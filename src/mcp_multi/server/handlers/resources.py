"""The resource methods: ``resources/list``, ``resources/read``, ``resources/templates/list``
(both eras)."""

from __future__ import annotations

from typing import Any

from ...protocol import methods as m
from ...protocol.envelope import CacheHint
from ...protocol.errors import InvalidParams, ResourceNotFound
from .router import Call, check_cursor, route

__all__ = ["resources_list", "resources_read", "resources_templates_list"]

# The resource list is fixed for the life of a server process; the resources themselves
# (uptime, statistics) are stale at once.
_FIXED = CacheHint(300_000)


@route(m.RESOURCES_LIST, cache=_FIXED)
async def resources_list(call: Call) -> dict[str, Any]:
    check_cursor(call.params)
    return {"resources": call.server.resources.list_resources()}


@route(m.RESOURCES_READ, cache=CacheHint(0, "private"))
async def resources_read(call: Call) -> dict[str, Any]:
    uri = call.params.get("uri")
    if not isinstance(uri, str):
        raise InvalidParams('Invalid params: "uri" must be a string')
    try:
        return call.server.resources.read(uri)
    except ResourceNotFound as exc:
        if call.modern:  # 2026-07-28 replaced RESOURCE_NOT_FOUND with INVALID_PARAMS
            raise InvalidParams(exc.message, exc.data) from None
        raise


@route(m.RESOURCES_TEMPLATES_LIST, cache=_FIXED)
async def resources_templates_list(call: Call) -> dict[str, Any]:
    check_cursor(call.params)
    return {"resourceTemplates": []}
