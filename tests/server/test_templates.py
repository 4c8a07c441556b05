"""Resource templates: listed, read through (RFC 6570 level 1), over every transport and in
both eras; the matcher itself without a network."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest

from mcp_multi.server.app import RunningServer
from mcp_multi.server.resources import UriTemplate

from ..conftest import StartServer
from .wire import TRANSPORTS, RawPeer, connect


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def server(start_mcp_server: StartServer) -> RunningServer:
    return await start_mcp_server(name="template-server", profile="conformance")


@pytest.fixture
async def peer(transport: str, server: RunningServer) -> AsyncIterator[RawPeer]:
    p = await connect(transport, server)
    await p.initialize()
    yield p
    await p.close()


async def test_templates_are_listed(peer: RawPeer) -> None:
    listed = (await peer.request("resources/templates/list"))["result"]["resourceTemplates"]
    assert [t["uriTemplate"] for t in listed] == ["server://tools/{name}",
                                                 "test://template/{id}/data"]
    assert all(t["name"] and t["description"] and t["mimeType"] == "application/json"
               for t in listed)


async def test_read_through_a_template(peer: RawPeer) -> None:
    tools = (await peer.request("tools/list"))["result"]["tools"]
    read = (await peer.request("resources/read", {"uri": "server://tools/echo"}, id=2))["result"]
    item = read["contents"][0]
    assert item["uri"] == "server://tools/echo" and item["mimeType"] == "application/json"
    assert orjson.loads(item["text"]) == next(t for t in tools if t["name"] == "echo")
    data = (await peer.request("resources/read", {"uri": "test://template/123/data"}, id=3))
    assert orjson.loads(data["result"]["contents"][0]["text"]) == {
        "id": "123", "templateTest": True, "data": "Data for ID: 123"}
    # Values are percent-decoded; a variable never spans a "/".
    spaced = (await peer.request("resources/read", {"uri": "test://template/a%20b/data"}, id=4))
    assert orjson.loads(spaced["result"]["contents"][0]["text"])["id"] == "a b"
    for uri in ("test://template/1/2/data", "test://template//data", "server://tools/nope"):
        error = (await peer.request("resources/read", {"uri": uri}, id=5))["error"]
        assert error["code"] == -32002 and error["data"] == {"uri": uri}, error


async def test_modern_read_through_a_template(transport: str, server: RunningServer) -> None:
    p = await connect(transport, server, modern=True)
    try:
        listed = (await p.modern_request("resources/templates/list"))["result"]
        assert len(listed["resourceTemplates"]) == 2 and listed["ttlMs"] == 300_000
        read = (await p.modern_request("resources/read", {"uri": "test://template/7/data"},
                                       id=2))["result"]
        assert orjson.loads(read["contents"][0]["text"])["id"] == "7"
        assert read["cacheScope"] == "private"
        missing = (await p.modern_request("resources/read", {"uri": "server://tools/zzz"},
                                          id=3))["error"]
        assert missing["code"] == -32602 and missing["data"] == {"uri": "server://tools/zzz"}
    finally:
        await p.close()


async def test_a_disabled_tool_has_no_entry(start_mcp_server: StartServer) -> None:
    server = await start_mcp_server(tools=("echo",))
    p = await connect("websocket", server)
    try:
        await p.initialize()
        error = (await p.request("resources/read", {"uri": "server://tools/math_calc"}))["error"]
        assert error["code"] == -32002 and "math_calc" in error["message"]
    finally:
        await p.close()


def test_level_one_matching() -> None:
    t = UriTemplate("test://template/{id}/data")
    assert t.variables == ("id",)
    assert t.match("test://template/123/data") == {"id": "123"}
    assert t.match("test://template/%2F/data") == {"id": "/"}
    assert t.match("test://template/1/2/data") is None
    assert t.match("test://template/1/data?x") is None
    assert t.match("test://template/1/datax") is None
    two = UriTemplate("x://{a}.{b}")
    assert two.match("x://one.two") == {"a": "one", "b": "two"}
    assert UriTemplate("a+b://{q}").match("a+b://z") == {"q": "z"}  # literals are literal
    assert UriTemplate("aab://{q}").match("a+b://z") is None


@pytest.mark.parametrize("bad", ["x://{+path}", "x://{a}{a}", "x://{a", "x://}", "x://{a,b}"])
def test_only_level_one_templates(bad: str) -> None:
    with pytest.raises(ValueError):
        UriTemplate(bad)
