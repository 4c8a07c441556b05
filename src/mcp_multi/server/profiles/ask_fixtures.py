"""The conformance suite's tools that ask their client (sampling, elicitation, roots).

Each asks through ``ctx.ask``/``ctx.ask_all``, so the same tool serves both eras: in the
handshake era its questions are server-to-client requests, in 2026-07-28 ``input_required``
rounds (see :mod:`mcp_multi.server.asking`). Names, keys, messages and schemas are the ones the
suite's scenarios expect (tools-call-sampling, tools-call-elicitation,
elicitation-sep1034-defaults, elicitation-sep1330-enums, server-stateless,
input-required-result-*). One prompt asks too (input-required-result-non-tool-request): asking
is not a tool's privilege.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from ...protocol import methods as m
from ..prompts import Prompt, message
from ..tools import Tool, ToolContext

if TYPE_CHECKING:
    from ..asking import Asker

__all__ = ["PROMPTS", "TOOLS"]

_NO_ARGS: dict[str, Any] = {"type": "object", "properties": {}}


def _string_arg(name: str, description: str) -> dict[str, Any]:
    return {"type": "object", "properties": {name: {"type": "string", "description": description}},
            "required": [name]}


def _sampling(text: str, max_tokens: int = 100) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": {"type": "text", "text": text}}],
            "maxTokens": max_tokens}


def _form(message: str, properties: dict[str, Any],
          required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return {"message": message, "requestedSchema": schema}


def _sampled_text(result: dict[str, Any]) -> str:
    """The text of a sampling result (its first text block), or a note of what it was."""
    content = result.get("content")
    blocks = content if isinstance(content, list) else [content]
    for block in blocks:
        if isinstance(block, dict) and block.get("type") == "text":
            return str(block.get("text", ""))
    return "(no text)"


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _accepted(result: dict[str, Any]) -> dict[str, Any]:
    content = result.get("content")
    return content if result.get("action") == "accept" and isinstance(content, dict) else {}


# ------------------------------------------------------------------ handshake-era scenarios

async def test_sampling(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    result = await ctx.ask(m.SAMPLING_CREATE_MESSAGE, _sampling(arguments["prompt"]))
    return m.tool_result(f"LLM response: {_sampled_text(result)}")


async def test_elicitation(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    result = await ctx.ask(m.ELICITATION_CREATE, _form(arguments["message"], {
        "username": {"type": "string", "description": "User's response"},
        "email": {"type": "string", "description": "User's email address"},
    }, ["username", "email"]))
    return m.tool_result(f"User response: action={result['action']}, "
                         f"content={_json(result.get('content', {}))}")


async def _elicit_and_report(ctx: ToolContext, message: str,
                             properties: dict[str, Any]) -> dict[str, Any]:
    result = await ctx.ask(m.ELICITATION_CREATE, _form(message, properties))
    return m.tool_result(f"Elicitation completed: action={result['action']}, "
                         f"content={_json(result.get('content', {}))}")


async def test_elicitation_sep1034_defaults(arguments: dict[str, Any],
                                            ctx: ToolContext) -> dict[str, Any]:
    return await _elicit_and_report(ctx, "Please review and update the form fields", {
        "name": {"type": "string", "description": "User name", "default": "John Doe"},
        "age": {"type": "integer", "description": "User age", "default": 30},
        "score": {"type": "number", "description": "User score", "default": 95.5},
        "status": {"type": "string", "description": "User status",
                   "enum": ["active", "inactive", "pending"], "default": "active"},
        "verified": {"type": "boolean", "description": "Verification status",
                     "default": True},
    })


async def test_elicitation_sep1330_enums(arguments: dict[str, Any],
                                         ctx: ToolContext) -> dict[str, Any]:
    return await _elicit_and_report(ctx, "Please select options from the enum fields", {
        "untitledSingle": {"type": "string", "description": "Select one option",
                           "enum": ["option1", "option2", "option3"]},
        "titledSingle": {"type": "string", "description": "Select one option with titles",
                         "oneOf": [{"const": "value1", "title": "First Option"},
                                   {"const": "value2", "title": "Second Option"},
                                   {"const": "value3", "title": "Third Option"}]},
        "legacyEnum": {"type": "string", "description": "Select one option (legacy)",
                       "enum": ["opt1", "opt2", "opt3"],
                       "enumNames": ["Option One", "Option Two", "Option Three"]},
        "untitledMulti": {"type": "array", "description": "Select multiple options",
                          "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
        "titledMulti": {"type": "array", "description": "Select multiple options with titles",
                        "items": {"anyOf": [{"const": "value1", "title": "First Choice"},
                                            {"const": "value2", "title": "Second Choice"},
                                            {"const": "value3", "title": "Third Choice"}]}},
    })


async def test_url_elicitation(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """URL mode: the client opens a page (it needs ``elicitation.url``)."""
    result = await ctx.ask(m.ELICITATION_CREATE, {
        "mode": "url", "message": "Please sign in to continue",
        "url": "https://example.com/sign-in", "elicitationId": "sign-in-1"})
    return m.tool_result(f"URL elicitation: action={result['action']}")


async def test_list_roots(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    result = await ctx.ask(m.ROOTS_LIST, {})
    uris = [root["uri"] for root in result["roots"]]
    return m.tool_result(f"Roots: {', '.join(uris) if uris else '(none)'}")


# ------------------------------------------------------------------ server-stateless checks

async def test_missing_capability(arguments: dict[str, Any],
                                  ctx: ToolContext) -> dict[str, Any]:
    """Needs sampling: a client that did not declare it gets -32021."""
    result = await ctx.ask(m.SAMPLING_CREATE_MESSAGE, _sampling("Say hello"))
    return m.tool_result(f"Sampled: {_sampled_text(result)}")


async def test_streaming_elicitation(arguments: dict[str, Any],
                                     ctx: ToolContext) -> dict[str, Any]:
    """Reports progress, then asks: the question travels as the era wants it (a request on
    the stream, or the ``input_required`` result), never as a request on a modern stream."""
    await ctx.progress(1, 2, "Asking for a name")
    result = await ctx.ask(m.ELICITATION_CREATE, _form(
        "What is your name?", {"name": {"type": "string"}}, ["name"]), key="name")
    return m.tool_result(f"Hello, {_accepted(result).get('name', 'stranger')}!")


# ------------------------------------------------------------------ input_required rounds

def _name_form(message: str) -> tuple[str, dict[str, Any]]:
    return m.ELICITATION_CREATE, _form(message, {"name": {"type": "string"}}, ["name"])


async def test_input_required_result_elicitation(arguments: dict[str, Any],
                                                 ctx: ToolContext) -> dict[str, Any]:
    result = await ctx.ask(*_name_form("What is your name?"), key="user_name")
    return m.tool_result(f"Hello, {_accepted(result).get('name', 'stranger')}!")


async def test_input_required_result_sampling(arguments: dict[str, Any],
                                              ctx: ToolContext) -> dict[str, Any]:
    result = await ctx.ask(m.SAMPLING_CREATE_MESSAGE,
                           _sampling("What is the capital of France?"), key="capital_question")
    return m.tool_result(f"Sampling said: {_sampled_text(result)}")


async def test_input_required_result_list_roots(arguments: dict[str, Any],
                                                ctx: ToolContext) -> dict[str, Any]:
    result = await ctx.ask(m.ROOTS_LIST, {}, key="client_roots")
    uris = [root["uri"] for root in result["roots"]]
    return m.tool_result(f"Client roots: {', '.join(uris) if uris else '(none)'}")


def _confirm(message: str) -> tuple[str, dict[str, Any]]:
    return m.ELICITATION_CREATE, _form(message, {"ok": {"type": "boolean"}}, ["ok"])


async def test_input_required_result_request_state(arguments: dict[str, Any],
                                                   ctx: ToolContext) -> dict[str, Any]:
    # Reaching here on a retry means the echoed requestState passed its integrity check.
    result = await ctx.ask(*_confirm("Please confirm"), key="confirm")
    return m.tool_result(f"state-ok: confirmed={_accepted(result).get('ok') is True}")


async def test_input_required_result_tampered_state(arguments: dict[str, Any],
                                                    ctx: ToolContext) -> dict[str, Any]:
    result = await ctx.ask(*_confirm("Please confirm"), key="confirm")
    return m.tool_result(f"Confirmed: {_accepted(result).get('ok') is True}")


async def test_input_required_result_multi_round(arguments: dict[str, Any],
                                                 ctx: ToolContext) -> dict[str, Any]:
    first = await ctx.ask(*_name_form("Step 1: What is your name?"), key="step1")
    second = await ctx.ask(m.ELICITATION_CREATE, _form(
        "Step 2: What is your favorite color?", {"color": {"type": "string"}}, ["color"]),
        key="step2")
    name = _accepted(first).get("name", "stranger")
    return m.tool_result(f"{name} likes {_accepted(second).get('color', 'no color')}")


async def test_input_required_result_multiple_inputs(arguments: dict[str, Any],
                                                     ctx: ToolContext) -> dict[str, Any]:
    answers = await ctx.ask_all({
        "user_name": _name_form("What is your name?"),
        "greeting": (m.SAMPLING_CREATE_MESSAGE, _sampling("Generate a greeting", 50)),
        "client_roots": (m.ROOTS_LIST, {}),
    })
    name = _accepted(answers["user_name"]).get("name", "stranger")
    roots = len(answers["client_roots"]["roots"])
    return m.tool_result(f"{_sampled_text(answers['greeting'])} {name} ({roots} roots)")


async def test_input_required_result_capabilities(arguments: dict[str, Any],
                                                  ctx: ToolContext) -> dict[str, Any]:
    """Asks only what the client declared it can answer."""
    wanted = {
        "summary": (m.SAMPLING_CREATE_MESSAGE, _sampling("Summarize the request")),
        "user_name": _name_form("What is your name?"),
    }
    questions = {key: q for key, q in wanted.items() if ctx.can_ask(*q)}
    if not questions:
        return m.tool_result("Nothing asked: the client declares neither sampling nor "
                             "elicitation")
    answers = await ctx.ask_all(questions)
    return m.tool_result(f"Answered: {', '.join(sorted(answers))}")


def _tool(handler: Any, description: str, schema: dict[str, Any] | None = None) -> Tool:
    return Tool(handler.__name__, description, schema or _NO_ARGS, handler)


TOOLS: tuple[Tool, ...] = (
    _tool(test_sampling, "Asks the client to sample an LLM completion of a prompt",
          _string_arg("prompt", "The prompt to send to the LLM")),
    _tool(test_elicitation, "Asks the user for a username and an email address",
          _string_arg("message", "The message to show the user")),
    _tool(test_elicitation_sep1034_defaults,
          "Asks the user for a form whose fields all have defaults (SEP-1034)"),
    _tool(test_elicitation_sep1330_enums,
          "Asks the user for a form with every kind of enum field (SEP-1330)"),
    _tool(test_url_elicitation, "Asks the user to visit a URL (URL-mode elicitation)"),
    _tool(test_list_roots, "Asks the client for its roots"),
    _tool(test_missing_capability, "Needs the client's sampling capability"),
    _tool(test_streaming_elicitation, "Reports progress, then asks the user for a name"),
    _tool(test_input_required_result_elicitation, "Asks the user's name (key user_name)"),
    _tool(test_input_required_result_sampling,
          "Asks for the capital of France by sampling (key capital_question)"),
    _tool(test_input_required_result_list_roots, "Asks for the client's roots (key client_roots)"),
    _tool(test_input_required_result_request_state,
          "Asks for a confirmation and checks the requestState it gets back"),
    _tool(test_input_required_result_tampered_state,
          "Asks for a confirmation; a tampered requestState is refused"),
    _tool(test_input_required_result_multi_round, "Asks two questions, one round each"),
    _tool(test_input_required_result_multiple_inputs,
          "Asks for a name, a sampled greeting and the roots in one round"),
    _tool(test_input_required_result_capabilities,
          "Asks only for what the client's capabilities allow"),
)


async def _prompt_with_context(args: Mapping[str, str], asker: Asker) -> list[dict[str, Any]]:
    result = await asker.ask(m.ELICITATION_CREATE, _form(
        "What context should the prompt use?", {"context": {"type": "string"}}, ["context"]),
        key="user_context")
    context = _accepted(result).get("context", "none given")
    return [message(f"Answer with this context in mind: {context}")]


PROMPTS: tuple[Prompt, ...] = (
    Prompt("test_input_required_result_prompt",
           "Asks the user for the context it is rendered with (key user_context)",
           _prompt_with_context),
)
