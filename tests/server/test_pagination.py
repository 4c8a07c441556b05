"""Every list pages with an opaque cursor (``--page-size``); a cursor we did not issue is
invalid params. The helper without a network, then the lists over real transports."""

from __future__ import annotations

import base64
import subprocess
import sys
from typing import Any

import pytest

from mcp_multi.protocol.errors import InvalidParams
from mcp_multi.server.app import RunningServer
from mcp_multi.server.cli import build_parser, settings_from_args
from mcp_multi.server.handlers.router import page

from ..conftest import StartServer
from .wire import TRANSPORTS, RawPeer, connect

LISTS = [("tools/list", "tools"), ("resources/list", "resources"),
         ("resources/templates/list", "resourceTemplates"), ("prompts/list", "prompts")]


def test_page_walks_a_list() -> None:
    items = list(range(7))
    first, more = page(items, {}, "things", 3)
    assert first == [0, 1, 2] and set(more) == {"nextCursor"}
    second, more = page(items, {"cursor": more["nextCursor"]}, "things", 3)
    third, last = page(items, {"cursor": more["nextCursor"]}, "things", 3)
    assert second == [3, 4, 5] and third == [6] and last == {}
    whole, more = page(items, {}, "things", 7)
    assert whole is items and more == {}  # a list that fits is not copied


@pytest.mark.parametrize("cursor", [
    "", "x", 5, None, "!!!", base64.urlsafe_b64encode(b"other:3").decode(),
    base64.urlsafe_b64encode(b"things:0").decode(),
    base64.urlsafe_b64encode(b"things:8").decode(),
    base64.urlsafe_b64encode(b"things:-1").decode(),
    base64.urlsafe_b64encode(b"things:\xff").decode(), "A" * 65,
])
def test_a_cursor_we_did_not_issue_is_invalid(cursor: Any) -> None:
    if cursor is None:
        assert page([1, 2], {"cursor": None}, "things", 1)[0] == [1]  # null is no cursor
        return
    with pytest.raises(InvalidParams, match="not a things cursor"):
        page(list(range(7)), {"cursor": cursor}, "things", 3)


async def walk(peer: RawPeer, method: str, key: str, modern: bool,
               cursor: str | None = None) -> tuple[list[Any], int]:
    """Every entry of a list, page by page; and the number of pages."""
    entries: list[Any] = []
    pages = 0
    while True:
        params = {} if cursor is None else {"cursor": cursor}
        reply = await (peer.modern_request(method, params, id=pages) if modern
                       else peer.request(method, params, id=pages))
        result = reply["result"]
        entries += result[key]
        pages += 1
        cursor = result.get("nextCursor")
        if cursor is None:
            return entries, pages


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("modern", [False, True])
async def test_every_list_pages(start_mcp_server: StartServer, transport: str,
                                modern: bool) -> None:
    whole = await start_mcp_server(profile="conformance")
    paged = await start_mcp_server(profile="conformance", page_size=2)
    peers = [await connect(transport, s, modern=modern) for s in (whole, paged)]
    try:
        if not modern:
            for p in peers:
                await p.initialize()
        for method, key in LISTS:
            everything, pages = await walk(peers[0], method, key, modern)
            assert pages == 1
            walked, pages = await walk(peers[1], method, key, modern)
            assert walked == everything and pages == (len(everything) + 1) // 2, method
        # A cursor of one list is no cursor of another.
        tools = (await peers[1].request("tools/list", _params({}, modern), id=90))["result"]
        other = await peers[1].request("prompts/list",
                                       _params({"cursor": tools["nextCursor"]}, modern), id=91)
        assert other["error"]["code"] == -32602
        garbage = await peers[1].request("tools/list", _params({"cursor": "nope"}, modern),
                                         id=92)
        assert garbage["error"]["code"] == -32602 and "cursor" in garbage["error"]["message"]
    finally:
        for p in peers:
            await p.close()


def _params(params: dict[str, Any], modern: bool) -> dict[str, Any]:
    from .wire import enveloped

    return enveloped(params) if modern else params


async def test_the_seed_list_is_one_page(mcp_server: RunningServer) -> None:
    peer = await connect("websocket", mcp_server)
    try:
        await peer.initialize()
        listed = (await peer.request("tools/list"))["result"]
        assert list(listed) == ["tools"] and len(listed["tools"]) == 5
    finally:
        await peer.close()


def test_page_size_option() -> None:
    assert settings_from_args(build_parser().parse_args([])).page_size == 100
    assert settings_from_args(build_parser().parse_args(["--page-size", "3"])).page_size == 3
    out = subprocess.run([sys.executable, "-m", "mcp_multi.server", "--page-size", "0"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "--page-size 0 is out of range" in out.stderr
    assert "Traceback" not in out.stderr
