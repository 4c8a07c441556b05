"""The lifecycle methods: ``initialize`` and ``ping`` (handshake era), ``server/discover``
(2026-07-28)."""

from __future__ import annotations

from typing import Any

from ...protocol import methods as m
from ...protocol.envelope import CacheHint
from ...protocol.errors import InvalidParams
from ...protocol.server_state import SessionEvent
from ...protocol.versions import HANDSHAKE, MODERN, MODERN_VERSIONS, negotiate
from .router import Call, ServerContext, route
from .tasks import advertise

__all__ = ["capabilities", "discover", "initialize", "instructions", "ping"]


def capabilities(modern: bool) -> dict[str, Any]:
    """What the server offers.

    ``listChanged`` is declared where a list can change while the server runs and the change
    is announced: prompts (a profile may add and remove them). Tools and resources are
    fixed for the life of the process. Subscriptions to resources are ``resources/subscribe``
    in the handshake era; 2026-07-28 has no such method (``subscriptions/listen`` names the
    URIs instead).
    """
    resources: dict[str, Any] = {"listChanged": False}
    if not modern:
        resources["subscribe"] = True
    return {"tools": {"listChanged": False}, "resources": resources,
            "prompts": {"listChanged": True}, "completions": {}, "logging": {}}


def instructions(server: ServerContext) -> str:
    return (
        f"{server.settings.name}: demo MCP server with tools "
        f"{', '.join(server.registry.names)}; read server://info for its configuration."
    )


@route(m.INITIALIZE, HANDSHAKE)
async def initialize(call: Call) -> dict[str, Any]:
    session, params = call.session, call.params
    requested = params.get("protocolVersion")
    if not isinstance(requested, str):
        raise InvalidParams('Invalid params: "protocolVersion" must be a string')
    version = negotiate(requested)
    session.lifecycle.process(SessionEvent.INITIALIZE, m.INITIALIZE, protocol_version=version)
    client_info = params.get("clientInfo")
    session.client_info = client_info if isinstance(client_info, dict) else None
    call.server.notifier.join(session)
    declared = params.get("capabilities")
    session.client_capabilities = declared if isinstance(declared, dict) else {}
    return {
        "protocolVersion": version,
        "capabilities": capabilities(modern=False),
        "serverInfo": dict(call.server.server_info),
        "instructions": instructions(call.server),
    }


@route(m.SERVER_DISCOVER, MODERN, cache=CacheHint(300_000))
async def discover(call: Call) -> dict[str, Any]:
    return {
        "supportedVersions": list(MODERN_VERSIONS),
        "capabilities": advertise(call.server, capabilities(modern=True)),
        "instructions": instructions(call.server),
    }


@route(m.PING, HANDSHAKE)
async def ping(call: Call) -> dict[str, Any]:
    return {}
