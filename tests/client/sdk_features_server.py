"""A server of the official ``mcp`` SDK with what the shell's newer commands talk to: prompts,
a resource and a template, completions, subscriptions, logging, progress, and tools whose
results hold images, audio, embedded resources and structured content.

Imported by the tests (served over Streamable HTTP in the test's event loop), and run as a
script with ``sys.executable`` to serve stdio.
"""

from __future__ import annotations

import base64
import warnings
from typing import Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import (
    AudioContent,
    Completion,
    EmbeddedResource,
    EmptyResult,
    ImageContent,
    ModelHint,
    ModelPreferences,
    PromptReference,
    SamplingMessage,
    SetLevelRequestParams,
    SubscribeRequestParams,
    TextContent,
    TextResourceContents,
    UnsubscribeRequestParams,
)
from pydantic import BaseModel, Field

PNG = b"\x89PNG\r\n\x1a\n" + bytes(992)  # 1000 bytes
WAV = b"RIFF" + bytes(2044)  # 2048 bytes
NAMES = ("Ada", "Alan", "Grace")
PATHS = ("README.md", "src", "tests")


class Person(BaseModel):
    name: str
    colour: Literal["red", "green", "blue"] = "green"
    age: int = Field(default=30, ge=0)


def build_features_server() -> MCPServer:
    server = MCPServer("features")
    subscribed: set[str] = set()

    @server.tool()
    def picture() -> list[Any]:
        """An image, a sound and an embedded file"""
        return [
            TextContent(type="text", text="a picture"),
            ImageContent(type="image", data=base64.b64encode(PNG).decode(),
                         mime_type="image/png"),
            AudioContent(type="audio", data=base64.b64encode(WAV).decode(),
                         mime_type="audio/wav"),
            EmbeddedResource(type="resource", resource=TextResourceContents(
                uri="file:///notes.txt", mime_type="text/plain", text="line one\nline two")),
        ]

    @server.tool()
    def weather(city: str) -> dict[str, Any]:
        """Structured weather"""
        return {"city": city, "celsius": 21, "sky": ["clear", "calm"]}

    @server.tool()
    async def slow(ctx: Context) -> str:
        """Reports progress and logs"""
        with warnings.catch_warnings():  # logging is deprecated in 2026-07-28, still served
            warnings.simplefilter("ignore")
            await ctx.info("slow started")
        for step in (1, 2, 3):
            await ctx.report_progress(step, 3, f"step {step}")
        return "slow done"

    @server.tool()
    async def touch(uri: str, ctx: Context) -> str:
        """Say a resource changed"""
        if uri in subscribed:
            await ctx.session.send_resource_updated(uri)
        await ctx.notify_resource_updated(uri)
        return f"touched {uri}"

    @server.tool()
    async def ask(ctx: Context) -> str:
        """Ask the person for a name and a colour"""
        result = await ctx.elicit("Who are you?", schema=Person)
        if result.action != "accept":
            return f"no answer: {result.action}"
        return f"hello {result.data.name} ({result.data.colour}, {result.data.age})"

    @server.tool()
    async def haiku(topic: str, ctx: Context) -> str:
        """Ask the client's model for a haiku"""
        with warnings.catch_warnings():  # sampling is deprecated in 2026-07-28, still served
            warnings.simplefilter("ignore")
            result = await ctx.session.create_message(
                [SamplingMessage(role="user", content=TextContent(
                    type="text", text=f"Write a haiku about {topic}"))],
                max_tokens=50, system_prompt="You are a poet",
                model_preferences=ModelPreferences(hints=[ModelHint(name="claude")],
                                                   intelligence_priority=0.8),
                related_request_id=ctx.request_id)
        content = result.content
        return f"model {result.model} said: {getattr(content, 'text', content)}"

    @server.resource("info://about", mime_type="text/plain")
    def about() -> str:
        """What this server is"""
        return "a features server\nwith two lines"

    @server.resource("file:///{path}", mime_type="text/plain")
    def file(path: str) -> str:
        """A file by its path"""
        return f"contents of {path}"

    @server.prompt()
    def greet(name: str, style: str = "plain") -> str:
        """Greet someone"""
        return f"Say hello to {name} in a {style} way"

    @server.completion()
    async def complete(ref: Any, argument: Any, context: Any) -> Completion:
        pool = NAMES if isinstance(ref, PromptReference) else PATHS
        values = [v for v in pool if v.lower().startswith(argument.value.lower())]
        return Completion(values=values, total=len(values), has_more=False)

    lowlevel = server._lowlevel_server

    async def on_subscribe(ctx: Any, params: SubscribeRequestParams) -> EmptyResult:
        subscribed.add(str(params.uri))
        return EmptyResult()

    async def on_unsubscribe(ctx: Any, params: UnsubscribeRequestParams) -> EmptyResult:
        subscribed.discard(str(params.uri))
        return EmptyResult()

    async def on_set_level(ctx: Any, params: SetLevelRequestParams) -> EmptyResult:
        return EmptyResult()

    lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, on_subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams,
                                 on_unsubscribe)
    lowlevel.add_request_handler("logging/setLevel", SetLevelRequestParams, on_set_level)
    return server


if __name__ == "__main__":
    build_features_server().run("stdio")
