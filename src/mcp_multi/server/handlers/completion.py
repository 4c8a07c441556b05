"""``completion/complete`` (both eras): values for a prompt argument or a resource template
variable, from the value typed so far.

Under a policy (``--policy``) a prompt or template the caller may not use is answered as one
the server does not have, and tool names are offered only where the caller may see the tool."""

from __future__ import annotations

from typing import Any

from ...protocol import methods as m
from ...protocol.errors import InvalidParams
from ..resources import MAX_COMPLETIONS, TOOL_TEMPLATE, no_template
from .prompts import check_prompt
from .router import Call, route

__all__ = ["complete"]

# Characters of a typed value the completers look at; more is no one typing.
MAX_VALUE = 4096
# What completes to tool names: (ref type, prompt name or template, argument).
_TOOL_NAMES = {("ref/resource", TOOL_TEMPLATE, "name"),
               ("ref/prompt", "explain_tool_call", "tool")}


@route(m.COMPLETION_COMPLETE)
async def complete(call: Call) -> dict[str, Any]:
    """Complete ``argument.value`` for ``ref`` (``ref/prompt`` by name, ``ref/resource`` by
    its template), given the other arguments in ``context.arguments``.

    At most 100 values are returned; ``total`` and ``hasMore`` say how many there were.
    """
    params = call.params
    ref, argument = params.get("ref"), params.get("argument")
    if not isinstance(ref, dict):
        raise InvalidParams('Invalid params: "ref" must be an object')
    if not isinstance(argument, dict) or not isinstance(argument.get("name"), str) \
            or not isinstance(argument.get("value"), str):
        raise InvalidParams('Invalid params: "argument" must be an object with string "name" '
                            'and "value"')
    name, value = argument["name"], argument["value"][:MAX_VALUE]
    context = _context(params.get("context"))
    kind = ref.get("type")
    access = call.server.permissions.access(call.session.principal)
    if kind == "ref/prompt":
        target = ref.get("name")
        check_prompt(call, target)
        values = call.server.prompts.complete(target, name, value, context)
    elif kind == "ref/resource":
        target = ref.get("uri")
        if not isinstance(target, str):
            raise InvalidParams('Invalid params: "ref.uri" must be a string')
        if access is not None and not access.resource(target):
            raise no_template(target)
        values = call.server.resources.complete(target, name, value, context)
    else:
        raise InvalidParams('Invalid params: "ref.type" must be "ref/prompt" or "ref/resource"')
    if access is not None and (kind, target, name) in _TOOL_NAMES:
        values = [v for v in values if access.tool(v)]
    shown = values[:MAX_COMPLETIONS]
    return {"completion": {"values": shown, "total": len(values),
                           "hasMore": len(values) > len(shown)}}


def _context(raw: Any) -> dict[str, str]:
    """The arguments already chosen (``context.arguments``), strings only."""
    if raw is None:
        return {}
    arguments = raw.get("arguments") if isinstance(raw, dict) else None
    if arguments is None and isinstance(raw, dict):
        return {}
    if not isinstance(arguments, dict) or \
            not all(isinstance(v, str) for v in arguments.values()):
        raise InvalidParams('Invalid params: "context.arguments" must be an object of strings')
    return arguments
