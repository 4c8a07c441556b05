"""The official ``mcp`` SDK's client against our ``/mcp`` and our stdio server, in both eras.

``mode="legacy"`` is the handshake era (initialize, ``Mcp-Session-Id``); the default
``mode="auto"`` probes ``server/discover`` and, since we answer it, speaks 2026-07-28.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from mcp import Client, MCPError, StdioServerParameters

from mcp_multi.server.app import RunningServer

from ..conftest import StartServer

MODES = ["legacy", "auto"]
TOOLS = ["echo", "get_time", "list_files", "run_command", "math_calc"]


def _texts(result: object) -> list[str]:
    return [c.text for c in result.content]  # type: ignore[attr-defined]


def _expected_version(mode: str) -> str:
    return "2025-11-25" if mode == "legacy" else "2026-07-28"


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _exercise(client: Client, name: str) -> None:
    assert client.server_info is not None and client.server_info.name == name
    tools = await client.list_tools()
    assert [t.name for t in tools.tools] == TOOLS
    echo = await client.call_tool("echo", {"message": "from the SDK"})
    assert _texts(echo) == ["Echo: from the SDK"] and not echo.is_error
    calc = await client.call_tool("math_calc", {"expression": "2 + 2 * 3"})
    assert _texts(calc) == ["2 + 2 * 3 = 8"]
    assert (await client.call_tool("math_calc", {"expression": "invalid"})).is_error
    info = await client.read_resource("server://info")
    assert f'"{name}"' in info.contents[0].text  # type: ignore[union-attr]
    resources = await client.list_resources()
    assert [str(r.uri) for r in resources.resources] == ["server://info", "server://stats"]
    with pytest.raises(MCPError) as unknown:
        await client.call_tool("nonexistent_tool", {})
    assert unknown.value.code == -32602


async def test_streamable_http(start_mcp_server: StartServer, mode: str) -> None:
    server: RunningServer = await start_mcp_server(name="sdk-http-target")
    async with Client(server.base_url + "/mcp", mode=mode) as client:  # type: ignore[arg-type]
        assert client.protocol_version == _expected_version(mode)
        # The handshake era opens a session; 2026-07-28 is stateless.
        assert len(server.state.http_sessions) == (1 if mode == "legacy" else 0)
        await _exercise(client, "sdk-http-target")
    # The SDK ends its session with DELETE when it closes.
    assert not server.state.http_sessions


async def test_streamable_http_progress_streams(start_mcp_server: StartServer,
                                                mode: str) -> None:
    """A call that reports progress is answered as an SSE stream the SDK reads."""
    server: RunningServer = await start_mcp_server()
    seen: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, message))

    async with Client(server.base_url + "/mcp", mode=mode) as client:  # type: ignore[arg-type]
        result = await client.call_tool("run_command", {"command": "echo streamed"},
                                        progress_callback=on_progress)
        assert "streamed" in _texts(result)[0]
    assert seen and seen[0] == (0, "Calling run_command")


async def test_modern_pin_without_probe(mcp_server: RunningServer) -> None:
    async with Client(mcp_server.base_url + "/mcp", mode="2026-07-28") as client:
        assert client.protocol_version == "2026-07-28"
        echo = await client.call_tool("echo", {"message": "pinned"})
        assert _texts(echo) == ["Echo: pinned"]


async def test_stdio(mode: str, tmp_path: Path) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcp_multi.server", "--stdio", "--name", "sdk-stdio-target",
              "--root", str(tmp_path), "--log-level", "WARNING"],
    )
    async with Client(params, mode=mode) as client:  # type: ignore[arg-type]
        assert client.protocol_version == _expected_version(mode)
        await _exercise(client, "sdk-stdio-target")
