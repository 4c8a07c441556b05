"""The prompt methods: ``prompts/list`` and ``prompts/get`` (both eras).

Under a policy (``--policy``) a caller lists only the prompts its roles allow, and getting
any other is answered exactly as getting a prompt the server does not have."""

from __future__ import annotations

from typing import Any

from ...protocol import methods as m
from ...protocol.envelope import CacheHint
from ..auth.policy import Access
from ..prompts import no_enabled_tool, unknown_prompt
from .router import Call, route, visible_page

__all__ = ["check_prompt", "prompts_get", "prompts_list"]


# Prompts change rarely, and a change is announced (notifications/prompts/list_changed), so
# a client may keep the list as long as the tool list.
@route(m.PROMPTS_LIST, cache=CacheHint(300_000))
async def prompts_list(call: Call) -> dict[str, Any]:
    return visible_page(call, call.server.prompts.list_prompts(), "prompts", Access.prompts)


@route(m.PROMPTS_GET)
async def prompts_get(call: Call) -> dict[str, Any]:
    """Render a prompt; an unknown prompt or a missing required argument is -32602. The
    prompt may ask the client (an ``input_required`` result in 2026-07-28)."""
    check_prompt(call, call.params.get("name"))
    return await call.server.prompts.render(call.params.get("name"),
                                            call.params.get("arguments"), call)


def check_prompt(call: Call, name: Any) -> None:
    """Refuse a prompt the caller's policy hides as one the server does not have."""
    access = call.server.permissions.access(call.session.principal)
    if access is None or not isinstance(name, str):
        return
    if not access.prompt(name):
        raise unknown_prompt(name)
    if name == "explain_tool_call" and call.method == m.PROMPTS_GET:
        # It embeds a tool's schema and names the tools: only the caller's.
        arguments = call.params.get("arguments")
        tool = arguments.get("tool") if isinstance(arguments, dict) else None
        shown = [n for n in call.server.registry.names if access.tool(n)]
        if isinstance(tool, str) and tool not in shown:
            raise no_enabled_tool(tool, shown)
