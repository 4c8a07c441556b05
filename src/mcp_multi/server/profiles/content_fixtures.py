"""The conformance suite's content fixtures: tools returning each kind of content, logging and
progress, a JSON Schema 2020-12 tool, static and templated resources, a watched resource,
and prompts (plain, with arguments, embedding a resource or an image).

Names and shapes are the ones the suite's scenarios ask for (tools-call-*, resources-*,
prompts-*, completion-complete, json-schema-2020-12, server-stateless). Two fixtures act on
the server, which is how the tests make its notifications happen:
``test_trigger_prompt_change`` adds or removes the prompt ``test_dynamic_prompt``
(``notifications/prompts/list_changed``), ``test_trigger_tool_change`` enables or disables
the tool ``test_dynamic_tool`` (``notifications/tools/list_changed``), and
``test_touch_watched_resource`` changes
``test://watched-resource`` (``notifications/resources/updated`` to its subscribers).
"""

from __future__ import annotations

import asyncio
import base64
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from ...protocol.methods import text_content, tool_result
from ..prompts import Prompt, PromptArgument, embedded, message
from ..resources import Resource, ResourceTemplate, complete_from
from ..tools import Tool, ToolContext, ToolError
from . import Profile

if TYPE_CHECKING:
    from ..asking import Asker
    from ..handlers.router import ServerContext

__all__ = ["AUDIO_WAV", "IMAGE_PNG", "profile"]

NO_ARGUMENTS: dict[str, Any] = {"type": "object", "properties": {}}
# The steps of the logging and progress fixtures (the suite asks for about 50 ms).
STEP = 0.05


def _png_1x1_red() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # 1x1, 8-bit RGB
    pixels = zlib.compress(b"\x00\xff\x00\x00")  # filter 0, one red pixel
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels)
            + chunk(b"IEND", b""))


def _wav_silence(samples: int = 800, rate: int = 8000) -> bytes:
    """A tenth of a second of 8-bit mono silence."""
    data = b"\x80" * samples
    return (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate, 1, 8)
            + b"data" + struct.pack("<I", len(data)) + data)


IMAGE_PNG = base64.b64encode(_png_1x1_red()).decode()
AUDIO_WAV = base64.b64encode(_wav_silence()).decode()


def _image() -> dict[str, Any]:
    return {"type": "image", "data": IMAGE_PNG, "mimeType": "image/png"}


def _tool(name: str, description: str, handler: Any,
          schema: dict[str, Any] | None = None) -> Tool:
    return Tool(name=name, description=description, input_schema=schema or NO_ARGUMENTS,
                handler=handler)


# ---------------------------------------------------------------- tools returning content

async def simple_text(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    return tool_result("This is a simple text response for testing.")


async def image_content(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    return {"content": [_image()]}


async def audio_content(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    return {"content": [{"type": "audio", "data": AUDIO_WAV, "mimeType": "audio/wav"}]}


async def embedded_resource(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    return {"content": [{"type": "resource", "resource": {
        "uri": "test://embedded-resource", "mimeType": "text/plain",
        "text": "This is an embedded resource content.",
    }}]}


async def multiple_content_types(arguments: dict[str, Any],
                                 ctx: ToolContext) -> dict[str, Any]:
    return {"content": [
        text_content("Multiple content types test:"),
        _image(),
        {"type": "resource", "resource": {
            "uri": "test://mixed-content-resource", "mimeType": "application/json",
            "text": orjson.dumps({"test": "data", "value": 123}).decode(),
        }},
    ]}


async def with_logging(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """Three info log messages, a step apart (sent only at the level the client asked for)."""
    await ctx.log("info", "Tool execution started")
    await asyncio.sleep(STEP)
    await ctx.log("info", "Tool processing data")
    await asyncio.sleep(STEP)
    await ctx.log("info", "Tool execution completed")
    return tool_result("Tool with logging executed successfully")


async def error_handling(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    raise ToolError("This tool intentionally returns an error for testing")


async def with_progress(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """Progress 0, 50 and 100 of 100, a step apart (sent only with a progress token)."""
    for done in (0, 50, 100):
        if done:
            await asyncio.sleep(STEP)
        await ctx.progress(done, 100, None)
    return tool_result("Tool with progress executed successfully")


JSON_SCHEMA_2020_12: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {"address": {"$anchor": "addressDef", "type": "object", "properties": {
        "street": {"type": "string"}, "city": {"type": "string"}}}},
    "properties": {
        "name": {"type": "string"},
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": {"type": "string"},
        "email": {"type": "string"},
    },
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}


async def json_schema_tool(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    return tool_result(f"Received: {orjson.dumps(arguments).decode()}")


# ---------------------------------------------------------------- resources and templates

def _text(text: str, mime_type: str = "text/plain") -> dict[str, Any]:
    return {"mimeType": mime_type, "text": text}


def _template_data(values: Mapping[str, str]) -> dict[str, Any]:
    ident = values["id"]
    body = {"id": ident, "templateTest": True, "data": f"Data for ID: {ident}"}
    return _text(orjson.dumps(body).decode(), "application/json")


TEMPLATE = ResourceTemplate(
    uri_template="test://template/{id}/data", name="template-data",
    description="Data for one ID, substituted into the template",
    mime_type="application/json", read=_template_data,
    complete={"id": complete_from(("123", "124", "200"))},
)


# ---------------------------------------------------------------- prompts

def _fixed(*messages: dict[str, Any]) -> Any:
    async def render(args: Mapping[str, str], asker: Asker) -> list[dict[str, Any]]:
        return list(messages)

    return render


async def _with_arguments(args: Mapping[str, str], asker: Asker) -> list[dict[str, Any]]:
    return [message(f"Prompt with arguments: arg1='{args['arg1']}', arg2='{args['arg2']}'")]


async def _with_embedded_resource(args: Mapping[str, str],
                                  asker: Asker) -> list[dict[str, Any]]:
    return [
        embedded({"uri": args["resourceUri"], "mimeType": "text/plain",
                  "text": "Embedded resource content for testing."}),
        message("Please process the embedded resource above."),
    ]


PROMPTS = (
    Prompt("test_simple_prompt", "A simple prompt without arguments",
           _fixed(message("This is a simple prompt for testing."))),
    Prompt("test_prompt_with_arguments", "A prompt with two required arguments",
           _with_arguments, arguments=(
               PromptArgument("arg1", "First test argument", required=True,
                              complete=complete_from(("paris", "park", "party"))),
               PromptArgument("arg2", "Second test argument", required=True),
           )),
    Prompt("test_prompt_with_embedded_resource", "A prompt embedding a resource",
           _with_embedded_resource, arguments=(
               PromptArgument("resourceUri", "URI of the resource to embed", required=True),
           )),
    Prompt("test_prompt_with_image", "A prompt with an image",
           _fixed(message(_image()), message("Please analyze the image above."))),
)

DYNAMIC_PROMPT = Prompt("test_dynamic_prompt", "A prompt test_trigger_prompt_change adds "
                        "and removes", _fixed(message("This prompt comes and goes.")))


# ---------------------------------------------------------------- fixtures acting on the server

@dataclass
class _Server:
    """What the acting fixtures of one server reach, kept when the server starts."""

    context: ServerContext | None = None
    watched_version: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def start(self, context: ServerContext) -> None:
        self.context = context

    def server(self) -> ServerContext:
        if self.context is None:
            raise ToolError("the server has not started")
        return self.context

    def read_watched(self) -> dict[str, Any]:
        return _text(f"Watched resource, version {self.watched_version}")

    async def trigger_prompt_change(self, arguments: dict[str, Any],
                                    ctx: ToolContext) -> dict[str, Any]:
        prompts = self.server().prompts
        async with self.lock:
            if DYNAMIC_PROMPT.name in prompts.names:
                await prompts.remove(DYNAMIC_PROMPT.name)
                return tool_result(f"Removed prompt {DYNAMIC_PROMPT.name}")
            await prompts.add(DYNAMIC_PROMPT)
            return tool_result(f"Added prompt {DYNAMIC_PROMPT.name}")

    async def trigger_tool_change(self, arguments: dict[str, Any],
                                  ctx: ToolContext) -> dict[str, Any]:
        server = self.server()
        async with self.lock:
            enable = DYNAMIC_TOOL not in server.registry.names
            server.registry.set_enabled(DYNAMIC_TOOL, enable)
            await server.notifier.list_changed("tools")
        return tool_result(f"{'Enabled' if enable else 'Disabled'} tool {DYNAMIC_TOOL}")

    async def touch_watched(self, arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        self.watched_version += 1
        told = await self.server().notifier.resource_updated(WATCHED)
        return tool_result(f"{WATCHED} is now version {self.watched_version}; "
                           f"{told} subscriber(s) told")


WATCHED = "test://watched-resource"
DYNAMIC_TOOL = "test_dynamic_tool"


def profile() -> Profile:
    """The content fixtures of one server (the acting ones bound to it when it starts)."""
    server = _Server()
    tools = (
        _tool("test_simple_text", "Returns simple text content", simple_text),
        _tool("test_image_content", "Returns image content", image_content),
        _tool("test_audio_content", "Returns audio content", audio_content),
        _tool("test_embedded_resource", "Returns an embedded resource", embedded_resource),
        _tool("test_multiple_content_types", "Returns text, image and resource content",
              multiple_content_types),
        _tool("test_tool_with_logging", "Sends three log messages while it runs",
              with_logging),
        _tool("test_logging_tool", "Sends log messages (only at the level asked for)",
              with_logging),
        _tool("test_error_handling", "Always fails", error_handling),
        _tool("test_tool_with_progress", "Reports progress 0, 50 and 100 of 100",
              with_progress),
        _tool("json_schema_2020_12_tool", "Tool with JSON Schema 2020-12 features",
              json_schema_tool, JSON_SCHEMA_2020_12),
        _tool("test_trigger_prompt_change", "Adds or removes the prompt test_dynamic_prompt",
              server.trigger_prompt_change),
        _tool("test_trigger_tool_change", f"Enables or disables the tool {DYNAMIC_TOOL}",
              server.trigger_tool_change),
        _tool(DYNAMIC_TOOL, "A tool test_trigger_tool_change disables and enables",
              simple_text),
        _tool("test_touch_watched_resource", f"Changes {WATCHED} and tells its subscribers",
              server.touch_watched),
    )
    resources = (
        Resource("test://static-text", "static-text", "A static text resource",
                 lambda: _text("This is the content of the static text resource."),
                 "text/plain"),
        Resource("test://static-binary", "static-binary", "A static binary resource (PNG)",
                 lambda: {"mimeType": "image/png", "blob": IMAGE_PNG}, "image/png"),
        Resource(WATCHED, "watched-resource", "A resource test_touch_watched_resource changes",
                 server.read_watched, "text/plain"),
    )
    return Profile("content", tools=tools, resources=resources, templates=(TEMPLATE,),
                   prompts=PROMPTS, on_start=(server.start,))
