"""``python -m mcp_multi.server``: the ``mcp-server`` command (``--stdio`` for stdio)."""

import sys

from .cli import main

sys.exit(main())
