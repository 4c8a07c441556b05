"""The handler registry: which methods each era serves, and that a new method is one
handler and one registration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mcp_multi.protocol.envelope import CacheHint
from mcp_multi.protocol.jsonrpc import Request
from mcp_multi.protocol.versions import HANDSHAKE, MODERN
from mcp_multi.server.dispatcher import build_dispatcher
from mcp_multi.server.handlers import ROUTER, Call, Router
from mcp_multi.server.session import ServerSession
from mcp_multi.server.settings import ServerSettings

COMMON = {"tools/list", "tools/call", "resources/list", "resources/read",
          "resources/templates/list", "prompts/list", "prompts/get", "completion/complete"}


def test_each_era_serves_its_methods() -> None:
    assert set(ROUTER.methods(HANDSHAKE)) == COMMON | {
        "initialize", "ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe"}
    assert set(ROUTER.methods(MODERN)) == COMMON | {"server/discover", "subscriptions/listen",
                                                    "tasks/get", "tasks/update", "tasks/cancel"}
    cached = {method for method in ROUTER.methods(MODERN)
              if (found := ROUTER.find(MODERN, method)) and found.cache is not None}
    assert cached == {"server/discover", "tools/list", "resources/list", "resources/read",
                      "resources/templates/list", "prompts/list"}


def test_a_method_registers_once_per_era() -> None:
    router = Router()

    @router.route("x/y", HANDSHAKE)
    async def first(call: Call) -> dict[str, Any]:
        return {}

    with pytest.raises(ValueError, match="x/y already has a handler in the handshake era"):
        router.route("x/y")(first)
    router.route("x/y", MODERN)(first)  # the other era is free
    assert router.find(MODERN, "x/y") is not None and router.find(MODERN, "x/z") is None


async def test_a_new_method_is_one_handler_and_one_registration(tmp_path: Path) -> None:
    router = Router()

    @router.route("greet", MODERN, cache=CacheHint(1000))
    async def greet(call: Call) -> dict[str, Any]:
        return {"greeting": f"hello from {call.server.settings.name}"}

    dispatcher = build_dispatcher(ServerSettings(name="g", root=tmp_path), ("stdio",), {},
                                  router=router)
    session = ServerSession("stdio")
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {}}
    reply = await dispatcher.handle(session, Request(1, "greet", {"_meta": meta}))
    assert reply is not None
    result = reply["result"]
    assert result["greeting"] == "hello from g" and result["ttlMs"] == 1000
    assert result["resultType"] == "complete" and session.era == "modern"
    missing = await dispatcher.handle(session, Request(2, "tools/list", {"_meta": meta}))
    assert missing is not None and missing["error"]["code"] == -32601
