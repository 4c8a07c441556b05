"""The multi-server MCP client: one :class:`MCPConnection` per named server, many at once.

::

    async with MultiServerMCPClient(timeout=10) as client:
        await client.add("calc", "localhost:8080")             # WebSocket
        await client.add("files", "localhost:8081", "sse")     # legacy HTTP+SSE
        await client.add("api", "http://localhost:8082/mcp")   # Streamable HTTP
        await client.add("local", "stdio:mcp-server --stdio")  # a child process
        result = await client.call("calc", "math_calc", {"expression": "2 + 2"})
        everyone = await client.broadcast("echo", {"message": "hi"})

The shell (:mod:`.repl`), test mode (:mod:`.testmode`) and the command line (:mod:`.cli`)
are built on this API and are the only parts that print.
"""

from .config import ConfigError, load_config, parse_config
from .connection import DEFAULT_TIMEOUT, MCPConnection
from .multi import (
    BroadcastOutcome,
    BroadcastResult,
    MultiServerMCPClient,
    ServerExists,
    ServerNotFound,
)
from .targets import ServerSpec, parse_server_arg, resolve_target

__all__ = [
    "DEFAULT_TIMEOUT",
    "BroadcastOutcome",
    "BroadcastResult",
    "ConfigError",
    "MCPConnection",
    "MultiServerMCPClient",
    "ServerExists",
    "ServerNotFound",
    "ServerSpec",
    "load_config",
    "parse_config",
    "parse_server_arg",
    "resolve_target",
]
