"""The conformance profile's tools for the tasks extension and for ``Mcp-Param-*`` headers.

The tasks scenarios call these by name: ``greet`` (never a task), ``slow_compute`` (a task
that sleeps), ``failing_job`` (only a task; ends in a tool error), ``protocol_error_job``
(ends in a JSON-RPC error, so its task fails). ``http-custom-header-server-validation``
calls the first tool whose schema mirrors an argument into a header: ``route_query``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ...protocol import methods as m
from ...protocol.errors import InternalError
from ..tools import Tool, ToolContext, ToolError

__all__ = ["TOOLS"]

# The longest slow_compute sleeps (a task lives task_ttl seconds at most anyway).
MAX_SECONDS = 600


def _schema(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties,
                              "additionalProperties": False}
    if required:
        schema["required"] = required
    return schema


async def _greet(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    return m.tool_result(f"Hello, {arguments['name']}!")


async def _slow_compute(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    seconds = float(arguments.get("seconds", 1))
    label = arguments.get("label", "job")

    async def work(task: ToolContext) -> dict[str, Any]:
        await task.progress(0, seconds, f"Computing {label}")
        await asyncio.sleep(seconds)
        return m.tool_result(f"Computed {label} in {seconds:g}s",
                             structured={"label": label, "seconds": seconds})

    return await ctx.as_task(work)


async def _failing_job(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    async def work(task: ToolContext) -> dict[str, Any]:
        await asyncio.sleep(1)
        raise ToolError("The job failed: the input could not be processed")

    return await ctx.as_task(work)


async def _protocol_error_job(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    async def work(task: ToolContext) -> dict[str, Any]:
        await asyncio.sleep(0.2)
        raise InternalError("Internal error: the job's backend went away")

    return await ctx.as_task(work)


async def _route_query(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    shown: dict[str, Any] = {k: arguments[k] for k in ("region", "tenant", "priority", "dry_run")
                             if k in arguments}
    return m.tool_result(f"Ran {arguments['query']!r} with {shown}", structured=shown)


TOOLS: tuple[Tool, ...] = (
    Tool("greet", "Greet someone (never runs as a task).",
         _schema({"name": {"type": "string", "maxLength": 200}}, ["name"]), _greet),
    Tool("slow_compute", "Sleep `seconds`, then answer; runs as a task where the client "
         "takes one.",
         _schema({"seconds": {"type": "number", "minimum": 0, "maximum": MAX_SECONDS},
                  "label": {"type": "string", "maxLength": 200}}),
         _slow_compute, execution={"taskSupport": "optional"}),
    Tool("failing_job", "Runs only as a task, and ends in a tool error after a second.",
         _schema({}), _failing_job, execution={"taskSupport": "required"}),
    Tool("protocol_error_job", "Runs as a task that ends in a JSON-RPC error.",
         _schema({}), _protocol_error_job, execution={"taskSupport": "optional"}),
    Tool("route_query", "Run a query in a region; the region (and tenant, priority, dry_run) "
         "travel as Mcp-Param-* headers too, so a gateway can route on them.",
         _schema({
             "region": {"type": "string", "maxLength": 200, "x-mcp-header": "Region"},
             "query": {"type": "string", "maxLength": 2000},
             "tenant": {"type": "string", "maxLength": 200, "x-mcp-header": "Tenant"},
             "priority": {"type": "integer", "x-mcp-header": "Priority"},
             "dry_run": {"type": "boolean", "x-mcp-header": "DryRun"},
         }, ["region", "query"]), _route_query),
)
