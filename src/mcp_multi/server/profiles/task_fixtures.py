"""The conformance profile's tools for the tasks extension and for ``Mcp-Param-*`` headers.

The tasks scenarios call these by name: ``greet`` (never a task), ``slow_compute`` (a task
that sleeps), ``failing_job`` (only a task; ends in a tool error), ``protocol_error_job``
(ends in a JSON-RPC error, so its task fails), ``confirm_delete`` and ``multi_input`` (tasks
that wait on the client: one question, then two at once), ``test_tool_with_task`` (only a
task, but asks its question first, in the call itself, then becomes the task).
``http-custom-header-server-validation`` calls the first tool whose schema mirrors an argument
into a header: ``route_query``.
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


def _form(message: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {"mode": "form", "message": message,
            "requestedSchema": {"type": "object", "properties": properties,
                                "required": list(properties)}}


def _accepted(answer: dict[str, Any]) -> dict[str, Any]:
    """What an elicitation answer filled in; empty unless the person accepted."""
    content = answer.get("content") if answer.get("action") == "accept" else None
    return content if isinstance(content, dict) else {}


async def _confirm_delete(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    filename = arguments["filename"]

    async def work(task: ToolContext) -> dict[str, Any]:
        answer = await task.ask(m.ELICITATION_CREATE, _form(
            f"Delete {filename}?", {"confirm": {"type": "boolean"}}))
        if _accepted(answer).get("confirm") is True:
            return m.tool_result(f"Deleted {filename} (nothing was really deleted)")
        return m.tool_result(f"Kept {filename}")

    return await ctx.as_task(work)


async def _multi_input(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    async def work(task: ToolContext) -> dict[str, Any]:
        answers = await task.ask_all({
            "name": (m.ELICITATION_CREATE, _form("Your name?", {"name": {"type": "string"}})),
            "confirm": (m.ELICITATION_CREATE, _form("Go ahead?",
                                                    {"confirm": {"type": "boolean"}})),
        })
        name = _accepted(answers["name"]).get("name", "stranger")
        go = _accepted(answers["confirm"]).get("confirm") is True
        return m.tool_result(f"Got name={name}, confirm={go}")

    return await ctx.as_task(work)


async def _tool_with_task(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    # Asked in the call itself (2026-07-28: an input_required round), before any task exists.
    answer = await ctx.ask(m.ELICITATION_CREATE, _form(
        "What is your name?", {"name": {"type": "string"}}), key="user_name")
    name = _accepted(answer).get("name", "stranger")

    async def work(task: ToolContext) -> dict[str, Any]:
        await asyncio.sleep(0.2)
        return m.tool_result(f"Hello, {name}! (from a task)")

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
    Tool("confirm_delete", "Asks the client to confirm, then 'deletes' a file (runs as a task "
         "where the client takes one).",
         _schema({"filename": {"type": "string", "maxLength": 500}}, ["filename"]),
         _confirm_delete, execution={"taskSupport": "optional"}),
    Tool("multi_input", "Asks the client two questions at once (runs as a task where the "
         "client takes one).", _schema({}), _multi_input,
         execution={"taskSupport": "optional"}),
    Tool("test_tool_with_task", "Asks the client's name, then greets it from a task (runs "
         "only as a task).", _schema({}), _tool_with_task,
         execution={"taskSupport": "required"}),
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
