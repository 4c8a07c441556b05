"""A server of the official ``mcp`` SDK whose tools ask the client: sampling, elicitation, roots.

Imported by the tests (served over SSE or Streamable HTTP in the test's event loop), and run
as a script with ``sys.executable`` to serve stdio.
"""

from __future__ import annotations

from mcp.server.mcpserver import Context, MCPServer
from mcp.shared.exceptions import MCPError
from mcp.types import SamplingMessage, TextContent

FORM = {"type": "object", "required": ["name"],
        "properties": {"name": {"type": "string", "default": "Ada"},
                       "age": {"type": "integer", "default": 36}}}


def build_asking_server() -> MCPServer:
    server = MCPServer("sdk-asking")

    @server.tool()
    async def ask_llm(prompt: str, ctx: Context) -> str:
        """Ask the client's model"""
        message = SamplingMessage(role="user", content=TextContent(type="text", text=prompt))
        try:
            result = await ctx.session.create_message([message], max_tokens=50)
        except MCPError as exc:
            return f"refused: {exc.error.code} {exc.error.message}"
        content = result.content
        return f"model said: {content.text if isinstance(content, TextContent) else content}"

    @server.tool()
    async def ask_form(ctx: Context) -> str:
        """Ask the client's user to fill a form"""
        result = await ctx.session.elicit_form("Who are you?", FORM)
        return f"{result.action} {sorted((result.content or {}).items())}"

    @server.tool()
    async def ask_roots(ctx: Context) -> str:
        """Ask for the client's roots"""
        result = await ctx.session.list_roots()
        return "roots: " + " ".join(str(root.uri) for root in result.roots)

    return server


if __name__ == "__main__":
    build_asking_server().run("stdio")
