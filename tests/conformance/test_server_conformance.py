"""The official MCP conformance suite (``conformance server``) against our ``/mcp``, with the
fixtures of ``--profile conformance``.

The suite runs twice against one server: every scenario at its default wire (the handshake era
where the scenario has one), then every 2026-07-28 scenario at the stateless wire. Known
failures live in ``server-expected-failures.yml``; a failure not listed there, or a listed one
that passes, fails the test. The scenarios the issue requires must pass outright.

The runner (``../shared/tools/conformance``, or ``$MCP_CONFORMANCE_TOOL``) installs Node and
the npm suite into a cache on first use; the test is skipped only when that install fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_multi.server.app import RunningServer

from ..conftest import StartServer
from .runner import INSTALL_TIMEOUT, conformance_tool, installed, passed_scenarios, run_tool

BASELINE = Path(__file__).with_name("server-expected-failures.yml")
REQUIRED = (
    "server-initialize", "ping", "tools-list", "logging-set-level", "resources-list",
    "dns-rebinding-protection", "server-sse-multiple-streams", "server-sse-polling",
)
RUN_TIMEOUT = 180.0


@pytest.mark.timeout(INSTALL_TIMEOUT + 2 * RUN_TIMEOUT)
async def test_server_conformance(start_mcp_server: StartServer, tmp_path: Path) -> None:
    tool = conformance_tool()
    await installed(tool, tmp_path)

    server: RunningServer = await start_mcp_server(name="conformance-target",
                                                   profile="conformance")
    url = server.base_url + "/mcp"
    base = [str(tool), "server", "--url", url, "--suite", "all",
            "--expected-failures", str(BASELINE)]

    code, handshake = await run_tool(*base, cwd=tmp_path, timeout=RUN_TIMEOUT)
    assert code == 0, handshake[-6000:]
    missing = set(REQUIRED) - passed_scenarios(handshake)
    assert not missing, f"required scenarios did not pass: {sorted(missing)}\n{handshake[-6000:]}"

    code, modern = await run_tool(*base, "--spec-version", "2026-07-28", cwd=tmp_path,
                              timeout=RUN_TIMEOUT)
    assert code == 0, modern[-6000:]
    stateless = {"tools-list", "resources-list", "dns-rebinding-protection",
                 "server-sse-multiple-streams", "http-header-validation"}
    assert stateless <= passed_scenarios(modern), modern[-6000:]
