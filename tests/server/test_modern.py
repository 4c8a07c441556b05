"""The 2026-07-28 (stateless) era over every transport, and how a connection picks its era.

Every request carries the ``_meta`` envelope; there is no initialize. Over Streamable HTTP
each request also mirrors its version, method and name into headers (the peer does that).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from mcp_multi.server.app import RunningServer

from .wire import MODERN, TRANSPORTS, RawPeer, StreamableHTTPPeer, connect, enveloped

STREAMS = [t for t in TRANSPORTS if t != "http"]
SERVER_INFO = "io.modelcontextprotocol/serverInfo"


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def peer(transport: str, mcp_server: RunningServer) -> AsyncIterator[RawPeer]:
    p = await connect(transport, mcp_server, modern=True)
    yield p
    await p.close()


def assert_complete(result: dict) -> None:
    assert result["resultType"] == "complete"
    assert result["_meta"][SERVER_INFO]["name"] == "test-server"


async def test_discover(peer: RawPeer) -> None:
    result = (await peer.modern_request("server/discover"))["result"]
    assert_complete(result)
    assert result["supportedVersions"] == [MODERN]
    assert set(result["capabilities"]) >= {"tools", "resources"}
    assert "subscribe" not in result["capabilities"]["resources"]
    assert result["ttlMs"] >= 0 and result["cacheScope"] in ("public", "private")
    assert "test-server" in result["instructions"]


async def test_tools_and_resources(peer: RawPeer) -> None:
    listed = (await peer.modern_request("tools/list"))["result"]
    assert_complete(listed)
    assert listed["tools"][0]["name"] == "echo" and listed["ttlMs"] >= 0
    echo = (await peer.modern_request("tools/call", {"name": "echo",
                                                     "arguments": {"message": "hi"}}))["result"]
    assert_complete(echo)
    assert echo["content"] == [{"type": "text", "text": "Echo: hi"}]
    info = (await peer.modern_request("resources/read", {"uri": "server://info"}))["result"]
    assert_complete(info)
    assert info["cacheScope"] == "private" and info["ttlMs"] == 0
    # 2026-07-28 reports an unknown resource as invalid params, not -32002.
    missing = await peer.modern_request("resources/read", {"uri": "server://nope"})
    assert missing["error"]["code"] == -32602


@pytest.mark.parametrize("method", ["ping", "logging/setLevel", "resources/subscribe",
                                    "tools/dance"])
async def test_removed_and_unknown_methods(peer: RawPeer, method: str) -> None:
    reply = await peer.modern_request(method, {"level": "info", "uri": "server://info"})
    assert reply["error"]["code"] == -32601


async def test_envelope_is_checked(peer: RawPeer) -> None:
    no_caps = enveloped()
    del no_caps["_meta"]["io.modelcontextprotocol/clientCapabilities"]
    reply = await peer.request("tools/list", no_caps)
    assert reply["error"]["code"] == -32602 and "clientCapabilities" in reply["error"]["message"]
    future = await peer.request("tools/list", enveloped(version="2099-01-01"), id=2)
    assert future["error"]["code"] == -32022
    assert future["error"]["data"] == {"supported": [MODERN], "requested": "2099-01-01"}
    loud = await peer.modern_request("tools/list", id=3,
                                     **{"io.modelcontextprotocol/logLevel": "loud"})
    assert loud["error"]["code"] == -32602


async def test_progress_comes_before_the_result(peer: RawPeer) -> None:
    await peer.send({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": enveloped(
        {"name": "echo", "arguments": {"message": "p"}}, progressToken="tok")})
    first = await peer.recv()
    assert first["method"] == "notifications/progress"
    assert first["params"]["progressToken"] == "tok" and first["params"]["progress"] == 0
    reply = await peer.recv()
    assert reply["id"] == 9 and reply["result"]["resultType"] == "complete"


async def test_subscriptions_listen_acknowledges(peer: RawPeer) -> None:
    await peer.send({"jsonrpc": "2.0", "id": 21, "method": "subscriptions/listen",
                     "params": enveloped({"notifications": {"resourcesListChanged": True}})})
    ack = await peer.recv()
    assert ack["method"] == "notifications/subscriptions/acknowledged"
    assert ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == 21
    # the resource list never changes without a policy: nothing to honour
    assert ack["params"]["notifications"] == {}
    if not isinstance(peer, StreamableHTTPPeer):  # over HTTP, closing the stream ends it
        await peer.send({"jsonrpc": "2.0", "method": "notifications/cancelled",
                         "params": {"requestId": 21}})
        # The subscription ends (its id is free again) without a response: the reply under
        # id 21 is the new request's.
        assert "tools" in (await peer.reuse_id(21, "tools/list", enveloped()))["result"]


@pytest.mark.parametrize("transport", STREAMS)
async def test_first_request_decides_the_era(transport: str, mcp_server: RunningServer) -> None:
    modern = await connect(transport, mcp_server)
    assert "result" in await modern.modern_request("server/discover")
    # A modern connection no longer takes the handshake, and says which versions it serves.
    init = await modern.request("initialize", {"protocolVersion": "2025-11-25",
                                               "capabilities": {}}, id=2)
    assert init["error"]["code"] == -32022 and init["error"]["data"]["supported"] == [MODERN]
    await modern.close()

    legacy = await connect(transport, mcp_server)
    await legacy.initialize()
    refused = await legacy.modern_request("tools/list", id=3)
    assert refused["error"]["code"] == -32600
    assert "tools" in (await legacy.request("tools/list", id=4))["result"]
    await legacy.close()


@pytest.mark.parametrize("transport", STREAMS)
async def test_refused_envelope_leaves_the_era_open(transport: str,
                                                    mcp_server: RunningServer) -> None:
    """A probe at a version we do not serve decides nothing: the client may still initialize."""
    p = await connect(transport, mcp_server)
    probe = await p.request("server/discover", enveloped(version="2099-01-01"))
    assert probe["error"]["code"] == -32022
    assert (await p.initialize())["result"]["protocolVersion"] == "2025-11-25"
    await p.close()
