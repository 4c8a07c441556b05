"""Shim so the seed's ``uv run python mcp_server.py --port 8080`` works."""
from mcp_multi.server.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
