"""The tool methods: ``tools/list`` and ``tools/call`` (both eras).

Under a policy (``--policy``) a caller lists only the tools its roles allow, and a call of
any other is answered exactly as a call of a tool that does not exist."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ...protocol import methods as m
from ...protocol.envelope import CacheHint
from ...protocol.errors import InvalidParams, JSONRPCError
from ...protocol.versions import LATEST_HANDSHAKE_VERSION, supports
from ..auth.policy import Access
from ..tools import SHOWN, DisabledToolError, ToolContext, ToolError, UnknownToolError
from .logging import NO_PROGRESS, log_fn, progress_fn
from .router import Call, ServerContext, route, visible_page
from .tasks import task_context

__all__ = ["tools_call", "tools_list"]

logger = logging.getLogger(__name__)


@route(m.TOOLS_LIST, cache=CacheHint(300_000), at_once=True)
async def tools_list(call: Call) -> dict[str, Any]:
    return visible_page(call, call.server.registry.list_tools(), "tools", Access.tools)


def _call_at_once(server: ServerContext, params: dict[str, Any]) -> bool:
    name = params.get("name")
    return not isinstance(name, str) or name not in server.registry.waiting


@route(m.TOOLS_CALL, at_once=_call_at_once)
async def tools_call(call: Call) -> dict[str, Any]:
    params, server = call.params, call.server
    name = params.get("name")
    if not isinstance(name, str):
        raise InvalidParams('Invalid params: "name" must be a string')
    arguments = params.get("arguments")
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise InvalidParams('Invalid params: "arguments" must be an object')
    registry = server.registry
    try:
        policy = server.permissions.policy
        if policy is not None and not policy.access(call.session.principal).tool(name):
            raise UnknownToolError(name)  # hidden: said as of a tool that does not exist
        tool = registry.get(name)
    except (UnknownToolError, DisabledToolError) as exc:
        raise InvalidParams(str(exc), {"tool": name}) from None
    server.stats.calls_served += 1
    validator = tool.validator
    if not validator.accepts(arguments) and (problems := validator.errors(arguments, SHOWN)):
        message = f"Invalid arguments for tool '{name}': " + "; ".join(problems)
        # From 2025-11-25 (and in 2026-07-28) the model sees the violation as a tool error
        # it can correct; earlier revisions answer it as invalid params.
        version = call.session.protocol_version or LATEST_HANDSHAKE_VERSION
        if call.modern or supports(version, "input_validation_as_tool_error"):
            return m.tool_result(message, is_error=True)
        raise InvalidParams(message, {"tool": name, "problems": problems})
    meta = params.get("_meta")  # (a look first: most calls ask for no progress)
    progress = (progress_fn(params, call.notify) if type(meta) is dict and "progressToken" in meta
                else NO_PROGRESS)
    if progress is not NO_PROGRESS:
        # A client that asked for progress hears at once that the call has started (over
        # Streamable HTTP this opens the response stream, so a long call stays visible).
        await progress(0, None, f"Calling {name}")
    ctx = ToolContext(server.settings, progress, log_fn(call, name), registry.commands,
                      call.session.id, call)
    if tool.execution:  # it may run as a task (the tasks extension)
        task_context(call, tool, ctx)
    try:
        return await tool.handler(arguments, ctx)
    except ToolError as exc:
        return m.tool_result(str(exc), is_error=True)
    except (asyncio.CancelledError, JSONRPCError):
        # A protocol error (a capability the client lacks, bad inputResponses) answers the
        # request itself; it is not the tool's failure.
        raise
    except Exception as exc:
        logger.exception("tool %s failed", name)
        return m.tool_result(f"Tool '{name}' failed: {type(exc).__name__}: {exc}",
                             is_error=True)
