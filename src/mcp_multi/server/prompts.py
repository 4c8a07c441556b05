"""Prompts: templates of messages a client fills in with arguments (``prompts/list``,
``prompts/get``), the registry that checks those arguments, and the server's own prompts.

A :class:`Prompt` names its arguments (required or not, each with an optional completer for
``completion/complete``) and renders the messages from the arguments given, as strings. The
registry refuses what the specification calls invalid params (-32602): an unknown prompt, a
required argument missing, an argument the prompt does not take, a value that is not a
string. Prompts can be added and removed while the server runs; each change is announced
with ``notifications/prompts/list_changed`` through the server's notifier.

Every server offers :func:`demo_prompts`, written for someone building against MCP:
``explain_tool_call`` (what a call of one of our tools does, with its schema embedded as a
resource and the arguments checked against it) and ``explain_error`` (what a JSON-RPC or MCP
error code means and what usually causes it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from ..protocol.errors import InvalidParams, ResourceNotFound
from ..protocol.text import clip
from .notifier import Notifier
from .resources import Completer, Resources, complete_from
from .tools import NO_CLIENT, ToolRegistry

if TYPE_CHECKING:
    from .asking import Asker

__all__ = [
    "Prompt",
    "PromptArgument",
    "PromptRegistry",
    "Render",
    "demo_prompts",
    "embedded",
    "message",
    "unknown_prompt",
]

SHOWN = 200
# What one argument value may hold: prompts are text for a model, not a file transfer.
MAX_ARGUMENT = 64 * 1024

Render = Callable[[Mapping[str, str], "Asker"], Awaitable[list[dict[str, Any]]]]
"""(the arguments given, all strings; the request's asker) -> the prompt's messages.

A prompt that needs something from the client (a sampling reply, a form, its roots) asks
it through the asker, as a tool does: a server-to-client request in the handshake era, an
``input_required`` result in 2026-07-28 (:mod:`mcp_multi.server.asking`)."""


def message(content: dict[str, Any] | str, role: str = "user") -> dict[str, Any]:
    """One prompt message; a string is a text block."""
    if isinstance(content, str):
        content = {"type": "text", "text": content}
    return {"role": role, "content": content}


def embedded(item: dict[str, Any], role: str = "user") -> dict[str, Any]:
    """A message embedding one resource (a ``contents`` item of ``resources/read``)."""
    return message({"type": "resource", "resource": item}, role)


@dataclass(frozen=True, slots=True)
class PromptArgument:
    name: str
    description: str
    required: bool = False
    complete: Completer | None = None

    def to_wire(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "required": self.required}


@dataclass(frozen=True, slots=True)
class Prompt:
    name: str
    description: str
    render: Render
    arguments: tuple[PromptArgument, ...] = ()
    title: str | None = None
    _by_name: dict[str, PromptArgument] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {a.name: a for a in self.arguments})

    def to_wire(self) -> dict[str, Any]:
        """The prompt's entry in a ``prompts/list`` result."""
        entry: dict[str, Any] = {"name": self.name, "description": self.description,
                                 "arguments": [a.to_wire() for a in self.arguments]}
        if self.title:
            entry["title"] = self.title
        return entry

    def argument(self, name: str) -> PromptArgument:
        """The argument ``name``; raises :class:`InvalidParams` when the prompt has none."""
        found = self._by_name.get(name)
        if found is None:
            raise InvalidParams(
                f"Invalid params: prompt {self.name!r} has no argument {clip(name, SHOWN)!r}; "
                f"its arguments: {', '.join(self._by_name) or 'none'}",
                {"prompt": self.name})
        return found

    def check(self, arguments: Any) -> dict[str, str]:
        """``arguments`` as the prompt takes them; raises :class:`InvalidParams` otherwise."""
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            raise InvalidParams('Invalid params: "arguments" must be an object')
        for key, value in arguments.items():
            self.argument(key)
            if not isinstance(value, str):
                raise InvalidParams(f"Invalid params: argument {key!r} must be a string",
                                    {"prompt": self.name, "argument": key})
            if len(value) > MAX_ARGUMENT:
                raise InvalidParams(
                    f"Invalid params: argument {key!r} holds {len(value)} characters, more "
                    f"than {MAX_ARGUMENT}", {"prompt": self.name, "argument": key})
        missing = [a.name for a in self.arguments if a.required and a.name not in arguments]
        if missing:
            raise InvalidParams(
                f"Invalid params: prompt {self.name!r} requires {', '.join(missing)}",
                {"prompt": self.name, "missing": missing})
        return arguments


def unknown_prompt(name: str) -> InvalidParams:
    """The error of a ``prompts/get`` (or completion) of a prompt the server does not have."""
    return InvalidParams(f"Invalid params: unknown prompt {clip(name, SHOWN)!r}",
                         {"prompt": clip(name, SHOWN)})


class PromptRegistry:
    """The prompts one server offers; changes are announced through ``notifier``."""

    def __init__(self, prompts: Iterable[Prompt] = (), notifier: Notifier | None = None) -> None:
        self._prompts: dict[str, Prompt] = {}
        self._notifier = notifier
        for prompt in prompts:
            if prompt.name in self._prompts:
                raise ValueError(f"prompt {prompt.name} is defined twice")
            self._prompts[prompt.name] = prompt
        self._listing = [p.to_wire() for p in self._prompts.values()]

    @property
    def names(self) -> list[str]:
        return list(self._prompts)

    def list_prompts(self) -> list[dict[str, Any]]:
        return self._listing

    def get(self, name: Any) -> Prompt:
        """The prompt ``name``; raises :class:`InvalidParams` when there is none."""
        if not isinstance(name, str):
            raise InvalidParams('Invalid params: "name" must be a string')
        prompt = self._prompts.get(name)
        if prompt is None:
            raise unknown_prompt(name)
        return prompt

    async def render(self, name: Any, arguments: Any,
                     asker: Asker = NO_CLIENT) -> dict[str, Any]:
        """The ``prompts/get`` result of ``name`` with ``arguments``; ``asker`` is the request
        being served (what the prompt may ask its client through)."""
        prompt = self.get(name)
        messages = await prompt.render(prompt.check(arguments), asker)
        return {"description": prompt.description, "messages": messages}

    def complete(self, name: Any, argument: str, value: str,
                 context: Mapping[str, str]) -> list[str]:
        """Candidate values of ``argument`` of the prompt ``name``."""
        completer = self.get(name).argument(argument).complete
        return completer(value, context) if completer is not None else []

    async def add(self, prompt: Prompt) -> None:
        """Offer ``prompt`` from now on (replacing one of its name), and say so."""
        self._prompts[prompt.name] = prompt
        await self._changed()

    async def remove(self, name: str) -> bool:
        """Stop offering the prompt ``name``, and say so; False when there was none."""
        if self._prompts.pop(name, None) is None:
            return False
        await self._changed()
        return True

    async def _changed(self) -> None:
        self._listing = [p.to_wire() for p in self._prompts.values()]
        if self._notifier is not None:
            await self._notifier.list_changed("prompts")


# ---------------------------------------------------------------- the server's own prompts

# JSON-RPC and MCP error codes a developer meets, and what usually causes each.
ERROR_CODES: dict[str, tuple[str, str]] = {
    "-32700": ("Parse error", "the message is not valid JSON (a truncated body, a stray "
               "byte, two messages on one stdio line)"),
    "-32600": ("Invalid Request", "not a JSON-RPC 2.0 request: no jsonrpc \"2.0\", a missing "
               "method, an id reused while its request runs, or a request before initialize"),
    "-32601": ("Method not found", "the server does not serve the method in the protocol "
               "version in use (2026-07-28 removed initialize, ping, logging/setLevel and "
               "resources/subscribe)"),
    "-32602": ("Invalid params", "arguments that fail the schema, a missing required prompt "
               "argument, an unknown tool, prompt or cursor, or (2026-07-28) a missing _meta "
               "envelope or an unknown resource"),
    "-32603": ("Internal error", "the server failed while handling a valid request"),
    "-32002": ("Resource not found", "resources/read of a URI the server does not have "
               "(before 2026-07-28)"),
    "-32800": ("Request cancelled", "notifications/cancelled or a shutdown stopped it"),
    "-32020": ("Header mismatch", "2026-07-28 over HTTP: MCP-Protocol-Version, Mcp-Method or "
               "Mcp-Name disagree with the body"),
    "-32021": ("Missing required client capability", "the request needs a client capability "
               "(sampling, elicitation, roots) that the client did not declare"),
    "-32022": ("Unsupported protocol version", "the server serves none of the versions "
               "asked for; error.data.supported lists what it serves"),
}


def demo_prompts(registry: ToolRegistry, resources: Resources) -> tuple[Prompt, ...]:
    """The prompts every server offers (they read the server's own tools)."""

    async def explain_tool_call(args: Mapping[str, str], asker: Asker) -> list[dict[str, Any]]:
        name = args["tool"]
        uri = f"server://tools/{name}"
        try:
            item = resources.read(uri)["contents"][0]
        except ResourceNotFound:
            raise InvalidParams(f"Invalid params: no tool {clip(name, SHOWN)!r} is enabled "
                                f"here; tools: {', '.join(registry.names)}",
                                {"argument": "tool"}) from None
        ask = (f"Explain what calling the MCP tool `{name}` does: what each argument means, "
               "which are required, and what the result holds.")
        raw = args.get("arguments")
        if raw is not None:
            ask += "\n\n" + _checked_arguments(registry, name, raw)
        return [embedded(item), message(ask)]

    async def explain_error(args: Mapping[str, str], asker: Asker) -> list[dict[str, Any]]:
        code = args["code"].strip()
        meaning, cause = ERROR_CODES.get(code, ("not a code MCP defines",
                                                "a code the server chose itself"))
        text = (f"An MCP request failed with JSON-RPC error {code} ({meaning}); it usually "
                f"means {cause}.")
        if args.get("message"):
            text += f"\nThe error message was: {args['message']}"
        text += "\nExplain the likely cause in this case and how to fix the request."
        return [message(text)]

    return (
        Prompt(
            name="explain_tool_call", title="Explain a tool call", render=explain_tool_call,
            description="Explain what a call of one of this server's tools does; with "
                        "arguments, also check them against the tool's input schema",
            arguments=(
                PromptArgument("tool", "The tool's name", required=True,
                               complete=lambda v, c: complete_from(registry.names)(v, c)),
                PromptArgument("arguments", "The call's arguments as a JSON object"),
            ),
        ),
        Prompt(
            name="explain_error", title="Explain an error code", render=explain_error,
            description="Explain a JSON-RPC or MCP error code an MCP request failed with",
            arguments=(
                PromptArgument("code", "The error code, e.g. -32602", required=True,
                               complete=complete_from(ERROR_CODES)),
                PromptArgument("message", "The error's message, if any"),
            ),
        ),
    )


def _checked_arguments(registry: ToolRegistry, name: str, raw: str) -> str:
    """What the model should know of the arguments a person means to pass."""
    try:
        arguments = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidParams(f"Invalid params: argument 'arguments' is not JSON: {exc}",
                            {"argument": "arguments"}) from None
    if not isinstance(arguments, dict):
        raise InvalidParams("Invalid params: argument 'arguments' must be a JSON object",
                            {"argument": "arguments"})
    shown = orjson.dumps(arguments).decode()
    problems = registry.validation_errors(name, arguments)
    if not problems:
        return f"The call's arguments are {shown}; they satisfy the input schema."
    listed = "\n".join(f"- {p}" for p in problems)
    return (f"The call's arguments are {shown}; the server would refuse them:\n{listed}\n"
            "Say how to correct them.")
