"""Server arguments and targets, synchronously."""

from __future__ import annotations

import pytest

from mcp_multi.client.cli import parse_servers
from mcp_multi.client.targets import (
    ServerSpec,
    auto_name,
    normalize_transport,
    parse_server_arg,
    resolve_target,
)


@pytest.mark.parametrize(("arg", "expected"), [
    ("calc=localhost:8080", ("calc", "localhost:8080")),
    ("math-server=127.0.0.1:8080", ("math-server", "127.0.0.1:8080")),
    ("localhost:8080", (None, "localhost:8080")),
    ("ws1=ws://h:1/ws?a=b", ("ws1", "ws://h:1/ws?a=b")),
    ("http://h:1/sse?x=y", (None, "http://h:1/sse?x=y")),
])
def test_parse_server_arg(arg: str, expected: tuple[str | None, str]) -> None:
    assert parse_server_arg(arg) == expected


@pytest.mark.parametrize(("target", "transport", "expected"), [
    ("localhost:8080", None, ("websocket", "ws://localhost:8080/ws")),
    ("localhost:8080", "websocket", ("websocket", "ws://localhost:8080/ws")),
    ("localhost:8081", "sse", ("sse", "http://localhost:8081/sse")),
    ("localhost:8081", "SSE", ("sse", "http://localhost:8081/sse")),
    ("8080", "ws", ("websocket", "ws://localhost:8080/ws")),
    (":8080", None, ("websocket", "ws://localhost:8080/ws")),
    ("[::1]:8080", "sse", ("sse", "http://[::1]:8080/sse")),
    ("ws://h:1/ws", None, ("websocket", "ws://h:1/ws")),
    ("wss://h/custom", None, ("websocket", "wss://h/custom")),
    ("ws://h:1", None, ("websocket", "ws://h:1/ws")),
    ("http://h:1/sse", None, ("sse", "http://h:1/sse")),
    ("http://h:1/sse", "sse", ("sse", "http://h:1/sse")),
    ("https://h/sse", None, ("sse", "https://h/sse")),
    ("http://h:1", "sse", ("sse", "http://h:1/sse")),
    ("http://h:1", None, ("websocket", "ws://h:1/ws")),
    ("http://h:1/ws", None, ("websocket", "ws://h:1/ws")),
    ("http://h:1/mcp", None, ("http", "http://h:1/mcp")),
    ("https://h/v1/mcp", None, ("http", "https://h/v1/mcp")),
    ("https://api.example.com/custom/endpoint?k=v", None,
     ("http", "https://api.example.com/custom/endpoint?k=v")),
    ("http://h:1", "http", ("http", "http://h:1/mcp")),
    ("http://h:1/", "http", ("http", "http://h:1/mcp")),
    ("http://h:1/", "sse", ("sse", "http://h:1/sse")),
    ("http://h:1/", None, ("websocket", "ws://h:1/ws")),
    ("wss://h/", None, ("websocket", "wss://h/ws")),
    ("http://h:1/other", "sse", ("sse", "http://h:1/other")),
    ("localhost:8082", "http", ("http", "http://localhost:8082/mcp")),
    ("localhost:8082", "streamableHttp", ("http", "http://localhost:8082/mcp")),
    ("localhost:8082", "streamable-http", ("http", "http://localhost:8082/mcp")),
    ("stdio:python server.py --name 'a b'", None,
     ("stdio", "stdio:python server.py --name 'a b'")),
    ("stdio:python   server.py", "stdio", ("stdio", "stdio:python server.py")),
])
def test_resolve_target(target: str, transport: str | None,
                        expected: tuple[str, str]) -> None:
    assert resolve_target(target, transport) == expected


@pytest.mark.parametrize(("target", "transport"), [
    ("localhost", None),
    ("localhost8080", None),
    ("localhost:0", None),
    ("localhost:70000", None),
    ("localhost:8080", "carrier-pigeon"),
    ("ws://h:1/ws", "sse"),
    ("http://h:1/sse", "websocket"),
    ("ftp://h:1/", None),
    ("http:///sse", None),
    ("http://h:1/mcp", "websocket"),
    ("localhost:8080", "stdio"),
    ("stdio:python server.py", "http"),
    ("stdio:", None),
    ("stdio:'unclosed", None),
    ("http://localhost:abc/mcp", None),
    ("ws://h:99999/ws", None),
])
def test_bad_targets(target: str, transport: str | None) -> None:
    with pytest.raises(ValueError):
        resolve_target(target, transport)


def test_url_default_transport() -> None:
    assert resolve_target("http://h:1", default="sse") == ("sse", "http://h:1/sse")


def test_normalize_transport() -> None:
    assert normalize_transport("WS") == "websocket"
    with pytest.raises(ValueError, match="unknown transport"):
        normalize_transport("telnet")


def test_auto_names_follow_position_and_skip_taken() -> None:
    assert auto_name(1) == "server1"
    assert auto_name(2, {"server2", "server3"}) == "server4"


def test_command_line_servers_as_the_seed_writes_them() -> None:
    assert parse_servers(["localhost:8080", "localhost:8081"], "websocket") == [
        ServerSpec("server1", "websocket", "ws://localhost:8080/ws"),
        ServerSpec("server2", "websocket", "ws://localhost:8081/ws"),
    ]
    assert parse_servers(["sse1=localhost:8080", "sse2=localhost:8081"], "sse") == [
        ServerSpec("sse1", "sse", "http://localhost:8080/sse"),
        ServerSpec("sse2", "sse", "http://localhost:8081/sse"),
    ]
    # a URL that names its transport wins over --transport
    assert parse_servers(["a=http://h:1/sse", "b=ws://h:2/ws"], "websocket") == [
        ServerSpec("a", "sse", "http://h:1/sse"),
        ServerSpec("b", "websocket", "ws://h:2/ws"),
    ]


def test_command_line_mixes_every_transport() -> None:
    assert parse_servers(["api=http://h:1/mcp", "local=stdio:mcp-server --stdio",
                          "h:2"], "websocket") == [
        ServerSpec("api", "http", "http://h:1/mcp"),
        ServerSpec("local", "stdio", "stdio:mcp-server --stdio"),
        ServerSpec("server3", "websocket", "ws://h:2/ws"),
    ]
    # an unnamed command stays unnamed even with '=' in its arguments
    assert parse_servers(["stdio:server --opt=1"], "websocket") == [
        ServerSpec("server1", "stdio", "stdio:server --opt=1")]
    assert [s.name for s in parse_servers(["h:1"], "websocket", taken={"server1"})] == [
        "server2"]


def test_command_line_names_must_be_unique() -> None:
    with pytest.raises(ValueError, match="twice"):
        parse_servers(["a=localhost:1", "a=localhost:2"], "websocket")
    # an auto name never collides with an explicit one
    assert [s.name for s in parse_servers(["localhost:1", "server1=localhost:2"],
                                          "websocket")] == ["server2", "server1"]
