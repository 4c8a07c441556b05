"""The client's layering: ``mcp-client`` does not load the server package unless ``--demo``."""

from __future__ import annotations

import subprocess
import sys

from .test_shell import ROOT, TIMEOUT

PROBE = """\
import sys
from mcp_multi.client import cli
try:
    cli.main(sys.argv[1:])
except SystemExit:
    pass
loaded = sorted(m for m in sys.modules if m.startswith("mcp_multi.server"))
print("server modules:", loaded, file=sys.stderr)
"""


def _server_modules(*args: str) -> str:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=TIMEOUT, check=False)
    lines = [line for line in done.stderr.splitlines() if line.startswith("server modules:")]
    assert lines, done.stderr
    return lines[-1]


def test_the_client_does_not_import_the_server() -> None:
    assert _server_modules("--help") == "server modules: []"
    # A run that tries a server (and fails to reach it) loads no server code either.
    assert _server_modules("--mode", "test", "127.0.0.1:1", "--timeout", "2") == (
        "server modules: []")
