"""mcp-multi-server: a multi-server MCP client and an MCP server over every MCP transport."""

__version__ = "0.1.0"

__all__ = ["__version__"]
