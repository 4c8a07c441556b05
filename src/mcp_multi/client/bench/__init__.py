"""The load mode, ``mcp-client bench``: many calls to one or more MCP servers, measured.

:mod:`.http1` is the lean keep-alive HTTP/1.1 client the load mode sends its Streamable HTTP
calls through.
"""
