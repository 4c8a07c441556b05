"""``--config``: the mcpServers JSON of Claude Desktop, Cursor and VS Code, and ``--header``.

Parsing is checked synchronously; then the real client process reads a config that mixes
stdio and Streamable HTTP servers with servers given on its command line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from mcp_multi.client.config import ConfigError, load_config, parse_config, parse_header
from mcp_multi.client.targets import ServerSpec

from ..conftest import StartServer
from ..transport.http_script import Recorded, StartHTTPScript
from .test_shell import run_client


def test_claude_desktop_cursor_and_vscode_entries() -> None:
    specs = parse_config({"mcpServers": {
        "files": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem",
                                             "/tmp/a dir"], "env": {"DEBUG": "1", "N": 3}},
        "remote": {"url": "https://example.com/mcp",
                   "headers": {"Authorization": "Bearer T"}},
        "legacy": {"type": "sse", "url": "http://localhost:8081/sse"},
        "cursor": {"url": "http://localhost:8082"},
        "streamy": {"transport": "streamableHttp", "url": "http://localhost:8083/api"},
        "ws": {"type": "ws", "url": "ws://localhost:8084/ws"},
        "off": {"command": "nothing", "disabled": True},
        "here": {"type": "stdio", "command": "python", "args": ["s.py"], "cwd": "/srv"},
    }})
    assert specs == [
        ServerSpec("files", "stdio",
                   "stdio:npx -y @modelcontextprotocol/server-filesystem '/tmp/a dir'",
                   env={"DEBUG": "1", "N": "3"}),
        ServerSpec("remote", "http", "https://example.com/mcp",
                   headers={"Authorization": "Bearer T"}),
        ServerSpec("legacy", "sse", "http://localhost:8081/sse"),
        ServerSpec("cursor", "http", "http://localhost:8082/mcp"),
        ServerSpec("streamy", "http", "http://localhost:8083/api"),
        ServerSpec("ws", "websocket", "ws://localhost:8084/ws"),
        ServerSpec("here", "stdio", "stdio:python s.py", cwd="/srv"),
    ]
    vscode = parse_config({"inputs": [], "servers": {
        "gh": {"type": "http", "url": "https://api.example.com/mcp/"}}})
    assert vscode == [ServerSpec("gh", "http", "https://api.example.com/mcp/")]


@pytest.mark.parametrize(("document", "message"), [
    ([], "expected a JSON object"),
    ({"servers_": {}}, 'no "mcpServers"'),
    ({"mcpServers": []}, "must be an object of servers"),
    ({"mcpServers": {"a b": {"command": "x"}}}, "server 'a b': bad name"),
    ({"mcpServers": {"a": "npx"}}, "server 'a': expected an object"),
    ({"mcpServers": {"a": {"type": "carrier-pigeon", "url": "http://h"}}},
     "server 'a': unknown type 'carrier-pigeon' (choose from stdio, sse, http"),
    ({"mcpServers": {"a": {"type": 3}}}, '"type" must be a string'),
    ({"mcpServers": {"a": {}}}, 'needs "command" (stdio) or "url" (remote)'),
    ({"mcpServers": {"a": {"command": "x", "url": "http://h"}}}, 'both "command" and "url"'),
    ({"mcpServers": {"a": {"command": ["x"]}}}, 'stdio needs a "command" string'),
    ({"mcpServers": {"a": {"command": "x", "args": "y"}}}, '"args" must be a list'),
    ({"mcpServers": {"a": {"command": "x", "env": {"K": None}}}}, "env['K'] must be a string"),
    ({"mcpServers": {"a": {"url": "localhost:1"}}}, '"url" must be an http(s) or ws(s) URL'),
    ({"mcpServers": {"a": {"type": "sse", "url": "ws://h/ws"}}}, "is a websocket URL, not sse"),
    ({"mcpServers": {"a": {"url": "http://h", "headers": ["x"]}}}, '"headers" must be an obj'),
    ({"mcpServers": {"a": {"command": "x"}}, "servers": {"a": {"command": "y"}}},
     "server 'a' is defined twice"),
])
def test_bad_entries_say_which_server_and_why(document: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=r"^cfg\.json: ") as exc:
        parse_config(document, "cfg.json")
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_file_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read config .*missing\.json: No such file"):
        load_config(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"mcpServers": {\n  "a": {"command": "x",}\n}}')
    with pytest.raises(ConfigError, match=r"bad\.json: invalid JSON at line 2 column 24: "):
        load_config(bad)
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'{"mcpServers": {"\xe9": {}}}')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(latin)


def test_header_option() -> None:
    assert parse_header("Authorization: Bearer a:b") == ("Authorization", "Bearer a:b")
    assert parse_header("X-Empty:") == ("X-Empty", "")
    for bad in ("no colon", ": value", "Bad Name: x", "Bad/Name: x"):
        with pytest.raises(ValueError, match="expected 'Name: value'"):
            parse_header(bad)


async def test_config_mixed_with_positional_servers(start_mcp_server: StartServer,
                                                    tmp_path: Path) -> None:
    http = await start_mcp_server(name="over-http", tools=("echo",))
    ws = await start_mcp_server(name="over-ws", tools=("echo", "get_time"))
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {
        "local": {"command": sys.executable,
                  "args": ["-m", "mcp_multi.server", "--stdio", "--name", "over-stdio",
                           "--tools", "echo", "math_calc", "--log-level", "WARNING"],
                  "env": {"PYTHONUNBUFFERED": "1"}},
        "api": {"type": "streamable-http", "url": f"http://127.0.0.1:{http.port}/mcp"},
    }}))
    code, out, err = await run_client(
        ["--config", str(config), f"localhost:{ws.port}"],
        'servers\ntools local\ncall local math_calc {"expression": "6 * 7"}\n'
        'call api resources/read {"uri": "server://info"}\n'
        'broadcast echo {"message": "all"}\n')
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "Connected servers: ['local', 'api', 'server1']"
    assert lines[1:4] == ["[local]:", "  echo: Echo back the provided message",
                          "  math_calc: Perform basic math calculations"]
    assert lines[4].startswith("Result: {'content': [{'type': 'text', 'text': '6 * 7 = 42'}]")
    assert lines[5].startswith("Result: {'contents': [") and '"over-http"' in lines[5]
    assert [line.split()[0] for line in lines[6:9]] == ["[local]", "[api]", "[server1]"]
    assert all("Echo: all" in line for line in lines[6:9])
    assert "Connected to local at stdio:" in err and "(stdio, server 'over-stdio'" in err
    assert "(http, server 'over-http', protocol 2026-07-28)" in err


async def test_headers_from_the_option_and_from_the_config(
        start_http_script: StartHTTPScript, tmp_path: Path) -> None:
    one, two = await start_http_script(), await start_http_script()

    async def handshake_only(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        if recorded.rpc_method == "initialize":
            return web.json_response({"jsonrpc": "2.0", "id": recorded.body["id"], "result": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "serverInfo": {"name": "h", "version": "0"}}})
        if recorded.rpc_method == "server/discover":
            return web.Response(status=400)
        return web.Response(status=202)

    one.post = two.post = handshake_only
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"one": {
        "url": one.url, "headers": {"Authorization": "Bearer from-config"}}}}))
    code, out, err = await run_client(
        ["--config", str(config), f"two={two.url}", "--header", "Authorization: Bearer cli",
         "--header", "X-Trace: 1"], "servers\n")
    assert code == 0, err
    assert out == "Connected servers: ['one', 'two']\n"
    assert {r.header("authorization") for r in one.requests} == {"Bearer from-config"}
    assert {r.header("authorization") for r in two.requests} == {"Bearer cli"}
    assert {r.header("x-trace") for r in one.requests + two.requests} == {"1"}


async def test_bad_config_and_header_stop_the_client_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "c.json"
    config.write_text('{"mcpServers": {"x": {"type": "telnet", "url": "http://h"}}}')
    code, _, err = await run_client(["--config", str(config)], "")
    assert code == 2
    assert err.strip().splitlines()[-1] == (
        f"mcp-client: error: {config}: server 'x': unknown type 'telnet' (choose from stdio, "
        "sse, http, streamable-http, streamableHttp, websocket)")
    code, _, err = await run_client(["--config", str(tmp_path / "none.json")], "")
    assert code == 2 and "cannot read config" in err and "No such file" in err
    code, _, err = await run_client(["localhost:1", "--header", "nocolon"], "")
    assert code == 2 and "bad header 'nocolon'" in err
    config.write_text('{"mcpServers": {"server1": {"url": "http://h:1/mcp"}}}')
    code, _, err = await run_client(["--config", str(config), "--config", str(config)], "")
    assert code == 2 and "server name 'server1' is given twice" in err
