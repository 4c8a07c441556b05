"""The resource methods: ``resources/list``, ``resources/read``, ``resources/templates/list``
(both eras), and ``resources/subscribe`` / ``resources/unsubscribe`` (handshake era; in
2026-07-28 a ``subscriptions/listen`` stream names the URIs it watches).

Under a policy (``--policy``) a caller lists only the resources and templates its roles
allow, and a read or subscription of any other is answered exactly as one of a URI the
server does not have."""

from __future__ import annotations

from typing import Any

from ...protocol import methods as m
from ...protocol.envelope import CacheHint
from ...protocol.errors import InvalidParams, ResourceNotFound
from ...protocol.versions import HANDSHAKE
from ..auth.policy import Access
from ..notifier import SubscriptionLimit
from ..resources import TOOL_TEMPLATE, not_found, tool_not_found
from .router import Call, route, visible_page

__all__ = ["check_readable", "resources_list", "resources_read", "resources_subscribe",
           "resources_templates_list", "resources_unsubscribe"]

# The resource list is fixed for the life of a server process; the resources themselves
# (uptime, statistics) are stale at once.
_FIXED = CacheHint(300_000)


@route(m.RESOURCES_LIST, cache=_FIXED)
async def resources_list(call: Call) -> dict[str, Any]:
    return visible_page(call, call.server.resources.list_resources(), "resources",
                        Access.resources)


@route(m.RESOURCES_READ, cache=CacheHint(0, "private"))
async def resources_read(call: Call) -> dict[str, Any]:
    uri = _uri(call)
    try:
        access = _check_readable(call, uri)
        return call.server.resources.read(uri, None if access is None else access.tool)
    except ResourceNotFound as exc:
        if call.modern:  # 2026-07-28 replaced RESOURCE_NOT_FOUND with INVALID_PARAMS
            raise InvalidParams(exc.message, exc.data) from None
        raise


@route(m.RESOURCES_TEMPLATES_LIST, cache=_FIXED)
async def resources_templates_list(call: Call) -> dict[str, Any]:
    return visible_page(call, call.server.resources.list_templates(), "resourceTemplates",
                        Access.templates)


@route(m.RESOURCES_SUBSCRIBE, HANDSHAKE)
async def resources_subscribe(call: Call) -> dict[str, Any]:
    """Watch a resource that exists (reading it proves that): its changes reach this
    session, and no other, as ``notifications/resources/updated``."""
    uri = _uri(call)
    _check_readable(call, uri)
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


def _check_readable(call: Call, uri: str) -> Access | None:
    """Refuse a URI the caller's policy hides as one the server does not have; the caller's
    access (``None``: no policy)."""
    access = call.server.permissions.access(call.session.principal)
    if access is not None:
        check_readable(access, call.server.resources.template_of(uri), uri)
    return access


def check_readable(access: Access, found: tuple[Any, dict[str, str]] | None, uri: str) -> None:
    """Raise what a read of ``uri`` raises when it does not exist, unless ``access`` allows
    it (``found``: the template serving it, and its values). A tool's entry is readable only
    by who may see the tool."""
    template = None if found is None else found[0].uri_template
    if not access.readable(uri, template):
        raise not_found(uri)
    if found is not None and template == TOOL_TEMPLATE and not access.tool(found[1]["name"]):
        raise tool_not_found(found[1]["name"])


def _uri(call: Call) -> str:
    uri = call.params.get("uri")
    if not isinstance(uri, str):
        raise InvalidParams('Invalid params: "uri" must be a string')
    return uri
