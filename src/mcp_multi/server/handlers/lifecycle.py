"""The lifecycle methods: ``initialize`` and ``ping`` (handshake era), ``server/discover``
(2026-07-28)."""

from __future__ import annotations

from typing import Any

from ...protocol import methods as m
from ...protocol.envelope import CacheHint
from ...protocol.errors import InvalidParams
from ...protocol.server_state import SessionEvent
from ...protocol.versions import HANDSHAKE, MODERN, MODERN_VERSIONS, negotiate
from .router import Call, private, route
from .tasks import advertise

__all__ = ["capabilities", "discover", "initialize", "instructions", "ping"]


def capabilities(modern: bool, policy: bool = False) -> dict[str, Any]:
    """What the server offers.

    ``listChanged`` is declared where a list can change while the server runs and the change
    is announced: tools (an admin may enable and disable them; a reloaded policy may show a
    caller others), prompts (a profile may add and remove them), and resources when a
    ``policy`` is loaded (a reload may change what a caller sees); else the resources are
    fixed for the life of the process. Subscriptions to resources are
    ``resources/subscribe`` in the handshake era; 2026-07-28 has no such method
    (``subscriptions/listen`` names the URIs instead).
    """
    resources: dict[str, Any] = {"listChanged": policy}
    if not modern:
        resources["subscribe"] = True
    return {"tools": {"listChanged": True}, "resources": resources,
            "prompts": {"listChanged": True}, "completions": {}, "logging": {}}


def instructions(call: Call) -> str:
    """The server's instructions, naming the tools this caller may use."""
    server = call.server
    names = server.registry.names
    access = server.permissions.access(call.session.principal)
    if access is not None:
        names = [n for n in names if access.tool(n)]
    return (
        f"{server.settings.name}: demo MCP server with tools "
        f"{', '.join(names)}; read server://info for its configuration."
    )


def _has_policy(call: Call) -> bool:
    return call.server.permissions.policy is not None


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
        "capabilities": capabilities(modern=False, policy=_has_policy(call)),
        "serverInfo": dict(call.server.server_info),
        "instructions": instructions(call),
    }


@route(m.SERVER_DISCOVER, MODERN, cache=CacheHint(300_000))
async def discover(call: Call) -> dict[str, Any]:
    return private({
        "supportedVersions": list(MODERN_VERSIONS),
        "capabilities": advertise(call.server, capabilities(modern=True,
                                                            policy=_has_policy(call))),
        "instructions": instructions(call),
    }, call, call.server.permissions.policy)


@route(m.PING, HANDSHAKE, at_once=True)
async def ping(call: Call) -> dict[str, Any]:
    return {}
