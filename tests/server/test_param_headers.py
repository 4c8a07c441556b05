"""``x-mcp-header`` tools and their ``Mcp-Param-*`` headers on 2026-07-28 Streamable HTTP, over
real sockets: the server refuses a call whose mirrored headers are missing, malformed or
disagree with its arguments (-32020, HTTP 400), and accepts each encoding the spec allows."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from mcp_multi.server.app import RunningServer
from mcp_multi.server.tools import Tool, ToolRegistry

from ..conftest import StartServer
from .wire import MCP_ACCEPT, connect, enveloped, mirrored_headers

TOOL = "route_query"


def b64(text: str) -> str:
    return "=?base64?" + base64.b64encode(text.encode()).decode() + "?="


class Caller:
    """Raw tools/call POSTs of route_query with chosen arguments and headers."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http, self.url = http, url

    async def call(self, arguments: dict[str, Any], headers: dict[str, str] | list[
            tuple[str, str]], tool: str = TOOL) -> tuple[int, dict[str, Any]]:
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": enveloped({"name": tool, "arguments": arguments})}
        sent: list[tuple[str, str]] = [("Accept", MCP_ACCEPT),
                                       ("Content-Type", "application/json"),
                                       *mirrored_headers(body).items()]
        sent += list(headers.items()) if isinstance(headers, dict) else headers
        async with self.http.post(self.url, data=orjson.dumps(body), headers=sent) as resp:
            raw = await resp.read()
            return resp.status, orjson.loads(raw) if resp.content_type.endswith("json") else {
                "raw": raw.decode(errors="replace")}

    async def accepted(self, arguments: dict[str, Any], headers: Any,
                       tool: str = TOOL) -> dict[str, Any]:
        status, reply = await self.call(arguments, headers, tool)
        assert status == 200 and "result" in reply, reply
        assert not reply["result"].get("isError"), reply
        return reply["result"]  # type: ignore[no-any-return]

    async def refused(self, arguments: dict[str, Any], headers: Any) -> str:
        status, reply = await self.call(arguments, headers)
        assert status == 400, (status, reply)
        assert reply["error"]["code"] == -32020, reply
        return reply["error"]["message"]  # type: ignore[no-any-return]


@pytest.fixture
async def server(start_mcp_server: StartServer) -> RunningServer:
    return await start_mcp_server(name="test-server", profile="conformance")


@pytest.fixture
async def caller(server: RunningServer) -> AsyncIterator[Caller]:
    async with aiohttp.ClientSession() as http:
        yield Caller(http, server.base_url + "/mcp")


async def test_the_tool_lists_its_annotations(caller: Caller) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": enveloped()}
    async with caller.http.post(caller.url, data=orjson.dumps(body), headers={
            "Accept": MCP_ACCEPT, "Content-Type": "application/json",
            **mirrored_headers(body)}) as resp:
        tools = {t["name"]: t for t in orjson.loads(await resp.read())["result"]["tools"]}
    props = tools[TOOL]["inputSchema"]["properties"]
    assert props["region"]["x-mcp-header"] == "Region"
    assert props["priority"] == {"type": "integer", "x-mcp-header": "Priority"}


async def test_matching_headers_in_every_encoding(caller: Caller) -> None:
    args = {"region": "us-west1", "query": "q"}
    await caller.accepted(args, {"Mcp-Param-Region": "us-west1"})
    await caller.accepted(args, {"mcp-param-region": b64("us-west1")})  # any case, base64
    await caller.accepted(args, {"MCP-PARAM-REGION": "  us-west1 "})  # OWS is not the value
    odd = {"region": " Hello, 世界\n", "query": "q"}
    await caller.accepted(odd, {"Mcp-Param-Region": b64(" Hello, 世界\n")})
    # Without both markers a value is literal, even one that looks like base64.
    for literal in (base64.b64encode(b"Hello").decode(), "=?base64?SGVsbG8=", "SGVsbG8=?="):
        await caller.accepted({"region": literal, "query": "q"},
                              {"Mcp-Param-Region": literal})
    # Integers compare as numbers; booleans as true/false.
    full = {"region": "eu", "query": "q", "priority": 42, "dry_run": False, "tenant": "t"}
    result = await caller.accepted(full, {
        "Mcp-Param-Region": "eu", "Mcp-Param-Priority": "42.0", "Mcp-Param-DryRun": "false",
        "Mcp-Param-Tenant": "t"})
    assert result["structuredContent"] == {"region": "eu", "tenant": "t", "priority": 42,
                                           "dry_run": False}
    # A null or absent argument expects no header (the schema then judges the null: a tool
    # error, past the header check); unknown Mcp-Param-* headers are ignored.
    status, reply = await caller.call({"region": "eu", "query": "q", "tenant": None},
                                      {"Mcp-Param-Region": "eu"})
    assert status == 200 and "tenant: None" in reply["result"]["content"][0]["text"]
    await caller.accepted({"region": "eu", "query": "q"},
                          {"Mcp-Param-Region": "eu", "Mcp-Param-Unknown": "{anything]"})


async def test_missing_or_disagreeing_headers_are_refused(caller: Caller,
                                                          server: RunningServer) -> None:
    args = {"region": "us-west1", "query": "q"}
    assert "required" in await caller.refused(args, {})
    await caller.refused(args, {"Mcp-Param-Region": "us-east1"})
    await caller.refused(args, {"Mcp-Param-Region": "US-WEST1"})  # values are case-sensitive
    await caller.refused({"region": "Hello", "query": "q"},
                         {"Mcp-Param-Region": "=?base64?SGVsbG8?="})  # bad padding
    await caller.refused({"region": "Hello", "query": "q"},
                         {"Mcp-Param-Region": "=?base64?SGVs!!!bG8=?="})  # bad alphabet
    await caller.refused({"region": "Hello", "query": "q"},
                         {"Mcp-Param-Region": b64("Hello").replace("?=", "=?=")})
    # Present for an argument the body does not have: a router saw a value the server won't.
    await caller.refused(args, {"Mcp-Param-Region": "us-west1", "Mcp-Param-Tenant": "t"})
    await caller.refused({**args, "priority": 7},
                         {"Mcp-Param-Region": "us-west1", "Mcp-Param-Priority": "7.5"})
    await caller.refused({**args, "priority": 7},
                         {"Mcp-Param-Region": "us-west1", "Mcp-Param-Priority": "0x7"})
    await caller.refused({**args, "dry_run": True},
                         {"Mcp-Param-Region": "us-west1", "Mcp-Param-DryRun": "True"})
    # Said twice (even if both agree): which one would a router have read?
    status, reply = await raw_post(server, args, [b"Mcp-Param-Region: us-west1",
                                                  b"mcp-param-region: us-west1"])
    assert status == 400 and reply["error"]["code"] == -32020
    assert "more than once" in reply["error"]["message"]
    # An argument of a type no header can carry.
    await caller.refused({"region": ["us-west1"], "query": "q"},
                         {"Mcp-Param-Region": "us-west1"})


async def raw_post(server: RunningServer, arguments: dict[str, Any],
                   headers: list[bytes]) -> tuple[int, dict[str, Any]]:
    """A tools/call POST written byte by byte (HTTP clients refuse to send control
    characters in a header; an attacker's socket does not)."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": enveloped({"name": TOOL, "arguments": arguments})}
    payload = orjson.dumps(body)
    head = [b"POST /mcp HTTP/1.1", f"Host: 127.0.0.1:{server.port}".encode(),
            b"Accept: " + MCP_ACCEPT.encode(), b"Content-Type: application/json",
            b"Connection: close", f"Content-Length: {len(payload)}".encode(),
            *(f"{k}: {v}".encode() for k, v in mirrored_headers(body).items()), *headers]
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(b"\r\n".join(head) + b"\r\n\r\n" + payload)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    status = int(raw.split(b" ", 2)[1])
    _, _, rest = raw.partition(b"\r\n\r\n")
    return status, orjson.loads(rest) if rest.startswith(b"{") else {}


async def test_hostile_header_values(caller: Caller, server: RunningServer) -> None:
    args = {"region": "x", "query": "q"}
    for evil in (b"\x1b[2Jx", "h\u00e9llo".encode(), b"x\x00y", b"x\x7f"):
        status, reply = await raw_post(server, {"region": "x", "query": "q"},
                                       [b"Mcp-Param-Region: " + evil])
        assert status == 400, (evil, status, reply)
        if reply:  # our answer (the HTTP parser may refuse some bytes before we see them)
            assert reply["error"]["code"] == -32020
            assert "\x1b" not in reply["error"]["message"]
    huge = "A" * 7000
    message = await caller.refused({"region": huge, "query": "q"},
                                   {"Mcp-Param-Region": huge[:-1] + "B"})
    assert len(message) < 400  # the error quotes a clipped value, not the megabyte
    deep = {"region": "x" * 10, "query": "q"}
    await caller.refused(deep, {"Mcp-Param-Region": b64("x" * 9)})
    # A header past what the HTTP parser takes is refused before any JSON-RPC happens.
    status, _reply = await caller.call(args, {"Mcp-Param-Region": "y" * 100_000})
    assert status in (400, 431)
    # The server is still fine.
    await caller.accepted(args, {"Mcp-Param-Region": "x"})


async def test_tools_without_annotations_and_other_transports(caller: Caller,
                                                              server: RunningServer) -> None:
    # A tool mirroring nothing ignores Mcp-Param-* headers altogether.
    await caller.accepted({"message": "hi"}, {"Mcp-Param-Region": "anything"}, tool="echo")
    # An unknown tool is reported as such, not as a header problem.
    status, reply = await caller.call({}, {}, tool="no_such_tool")
    assert status == 400 and reply["error"]["code"] == -32602
    # Over WebSocket there are no headers to mirror into: the call simply runs.
    peer = await connect("websocket", server)
    try:
        reply = await peer.modern_request("tools/call", {
            "name": TOOL, "arguments": {"region": "eu", "query": "q"}})
        assert reply["result"]["resultType"] == "complete"
    finally:
        await peer.close()


async def _noop(arguments: dict[str, Any], ctx: Any) -> dict[str, Any]:
    return {"content": []}


@pytest.mark.parametrize("schema", [
    {"type": "object", "properties": {"n": {"type": "number", "x-mcp-header": "N"}}},
    {"type": "object", "properties": {"a": {"type": "string", "x-mcp-header": "A"},
                                      "b": {"type": "string", "x-mcp-header": "a"}}},
    {"type": "object", "properties": {"a": {"type": "string", "x-mcp-header": "Bad Name"}}},
    {"type": "object", "properties": {"a": {"type": "string", "x-mcp-header": ""}}},
    {"type": "object", "properties": {"a": {"type": "array", "items": {
        "type": "string", "x-mcp-header": "A"}}}},
    {"type": "object", "anyOf": [{"properties": {"a": {"type": "string",
                                                      "x-mcp-header": "A"}}}]},
])
def test_a_server_refuses_an_invalid_annotation(schema: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="tool bad: x-mcp-header"):
        ToolRegistry(extra=(Tool("bad", "bad", schema, _noop),))
