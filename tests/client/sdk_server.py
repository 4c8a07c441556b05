"""A server of the official ``mcp`` SDK for interop tests: two tools and a resource.

Imported by the tests (served over SSE or Streamable HTTP in the test's event loop), and run
as a script with ``sys.executable`` to serve stdio.
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer


def build_sdk_server() -> MCPServer:
    server = MCPServer("sdk-server")

    @server.tool()
    def echo(message: str) -> str:
        """Echo back the provided message"""
        return f"Echo: {message}"

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two integers"""
        return a + b

    @server.resource("info://about", mime_type="text/plain")
    def about() -> str:
        """What this server is"""
        return "an SDK server"

    return server


if __name__ == "__main__":
    build_sdk_server().run("stdio")
