"""The prompt methods: ``prompts/list`` and ``prompts/get`` (both eras)."""

from __future__ import annotations

from typing import Any

from ...protocol import methods as m
from ...protocol.envelope import CacheHint
from .router import Call, page, route

__all__ = ["prompts_get", "prompts_list"]


# Prompts change rarely, and a change is announced (notifications/prompts/list_changed), so
# a client may keep the list as long as the tool list.
@route(m.PROMPTS_LIST, cache=CacheHint(300_000))
async def prompts_list(call: Call) -> dict[str, Any]:
    prompts, more = page(call.server.prompts.list_prompts(), call.params, "prompts",
                         call.server.settings.page_size)
    return {"prompts": prompts, **more}


@route(m.PROMPTS_GET)
async def prompts_get(call: Call) -> dict[str, Any]:
    """Render a prompt; an unknown prompt or a missing required argument is -32602. The
    prompt may ask the client (an ``input_required`` result in 2026-07-28)."""
    return await call.server.prompts.render(call.params.get("name"),
                                            call.params.get("arguments"), call)
