"""The official MCP conformance suite (``conformance server``) against our ``/mcp``, with the
fixtures of ``--profile conformance``: every server scenario, at every version it is listed for.

The suite runs once at its default (each scenario at its own default wire, and the extension
scenarios, which only that run holds), then once per specification version. Each run must
exit 0 and name every scenario listed for it as passed. The baseline
(``server-expected-failures.yml``) holds only checks where the suite itself is wrong, each
quoting the suite's source; a listed check that starts passing fails the run.

The runner (``../shared/tools/conformance``, or ``$MCP_CONFORMANCE_TOOL``) installs Node and
the npm suite into a cache on first use; the test is skipped only when that install fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_multi.server.app import RunningServer

from ..conftest import StartServer
from .runner import (
    INSTALL_TIMEOUT,
    conformance_tool,
    installed,
    listed_scenarios,
    run_tool,
    summary,
)

BASELINE = Path(__file__).with_name("server-expected-failures.yml")
RUN_TIMEOUT = 180.0
# None: the suite's default run (every scenario at its default wire, extensions included).
RUNS = [None, "2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"]


@pytest.mark.timeout(INSTALL_TIMEOUT + RUN_TIMEOUT + 60)
@pytest.mark.parametrize("version", RUNS, ids=[v or "default" for v in RUNS])
async def test_server_conformance(version: str | None, start_mcp_server: StartServer,
                                  tmp_path: Path) -> None:
    tool = conformance_tool()
    await installed(tool, tmp_path)
    code, listing = await run_tool(str(tool), "list", cwd=tmp_path, timeout=60)
    assert code == 0, listing
    listed = listed_scenarios(listing, "Server")
    expected = {name for name, versions in listed.items()
                if (version in versions if version else True)}
    assert expected, f"the suite lists no server scenario for {version}"

    server: RunningServer = await start_mcp_server(name="conformance-target",
                                                   profile="conformance")
    args = [str(tool), "server", "--url", server.base_url + "/mcp", "--suite", "all",
            "--expected-failures", str(BASELINE)]
    if version:
        args += ["--spec-version", version]
    code, out = await run_tool(*args, cwd=tmp_path, timeout=RUN_TIMEOUT)
    assert code == 0, out[-6000:]
    ran = summary(out)
    assert expected <= set(ran), f"not run: {sorted(expected - set(ran))}\n{out[-6000:]}"
    # A scenario shown failed is one whose only failures are the baseline's excused checks.
    excused = {line.strip()[2:].split(":", 1)[0] for line in BASELINE.read_text().splitlines()
               if line.strip().startswith("- ")}
    failed = {name for name, passed in ran.items() if not passed}
    assert failed <= excused, f"failed: {sorted(failed - excused)}\n{out[-6000:]}"
