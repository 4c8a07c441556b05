"""``mcp-client --demo``: three of our servers in this process, on free loopback ports.

The seed's specialised servers, mixing transports: ``calc`` (calculator: math_calc, echo)
over WebSocket, ``files`` (filesystem: list_files, echo) over SSE, ``admin`` (run_command,
get_time, echo) over WebSocket. The names match the seed's example session, so its commands
work as written.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from ..server.app import RunningServer, start_server
from ..server.settings import ServerSettings
from ..transport import TRANSPORTS
from .targets import ServerSpec

__all__ = ["DEMO_SERVERS", "DemoServer", "demo_servers"]


@dataclass(frozen=True, slots=True)
class DemoServer:
    """One demo server: its name in the client, its own name, its tools, its transport."""

    client_name: str
    server_name: str
    tools: tuple[str, ...]
    transport: str


DEMO_SERVERS: tuple[DemoServer, ...] = (
    DemoServer("calc", "calculator", ("math_calc", "echo"), "websocket"),
    DemoServer("files", "filesystem", ("list_files", "echo"), "sse"),
    DemoServer("admin", "admin", ("run_command", "get_time", "echo"), "websocket"),
)


@asynccontextmanager
async def demo_servers(root: Path | None = None) -> AsyncIterator[list[ServerSpec]]:
    """Start the demo servers; yield where to reach them; stop them on exit.

    Args:
        root: the directory ``list_files`` shows (the working directory by default).
    """
    running: list[RunningServer] = []
    specs: list[ServerSpec] = []
    try:
        for demo in DEMO_SERVERS:
            settings = ServerSettings(
                host="127.0.0.1",
                port=0,
                name=demo.server_name,
                tools=demo.tools,
                root=root or Path.cwd(),
            )
            server = await start_server(settings)
            running.append(server)
            url = TRANSPORTS[demo.transport].url_for("127.0.0.1", server.port)
            specs.append(ServerSpec(demo.client_name, demo.transport, url))
        yield specs
    finally:
        for server in running:
            await server.close()
