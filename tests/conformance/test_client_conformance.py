"""The official MCP conformance suite (``conformance client``) against our client.

The suite starts ``mcp-client --mode conformance`` with the URL of each scenario's server
appended, watches the traffic, and judges it. Every client scenario outside ``auth/`` must
pass at every version the suite lists for it (``conformance list``): the handshake and the
stateless revision, elicitation defaults, SSE retry, input_required retries with
``requestState``, the standard and ``Mcp-Param-*`` headers, and JSON Schema passed through.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

from .runner import INSTALL_TIMEOUT, REPO, conformance_tool, installed, run_tool

RUN_TIMEOUT = 120.0
# The suite splits the command on spaces (no quoting), so the paths must have none.
CLIENT = f"{sys.executable} {REPO / 'mcp_client.py'} --mode conformance"
# (scenario, the versions `conformance list` gives for it)
LISTED = [
    ("initialize", ("2025-06-18", "2025-11-25")),
    ("tools_call", ("2025-06-18", "2025-11-25", "2026-07-28")),
    ("elicitation-sep1034-client-defaults", ("2025-11-25",)),
    ("sse-retry", ("2025-11-25",)),
    ("request-metadata", ("2026-07-28",)),
    ("sep-2322-client-request-state", ("2026-07-28",)),
    ("http-standard-headers", ("2026-07-28",)),
    ("http-custom-headers", ("2026-07-28",)),
    ("http-invalid-tool-headers", ("2026-07-28",)),
    ("json-schema-ref-no-deref", ("2026-07-28",)),
    ("json-schema-2020-12-preservation", ("2025-11-25", "2026-07-28")),
]
SCENARIOS = [(scenario, version) for scenario, versions in LISTED for version in versions]


@pytest.mark.skipif(" " in sys.executable or " " in str(REPO),
                    reason="the suite cannot start a command whose path holds spaces")
@pytest.mark.timeout(INSTALL_TIMEOUT + RUN_TIMEOUT)
@pytest.mark.parametrize(("scenario", "version"), SCENARIOS,
                         ids=[f"{s}@{v}" for s, v in SCENARIOS])
async def test_client_scenario_passes(scenario: str, version: str, tmp_path: Path) -> None:
    tool = conformance_tool()
    await installed(tool, tmp_path)
    args = [str(tool), "client", "--command", CLIENT, "--scenario", scenario,
            "--spec-version", version]
    code, out = await run_tool(*args, cwd=tmp_path, timeout=RUN_TIMEOUT)
    assert code == 0, f"{shlex.join(args)}\n{out[-6000:]}"
    assert "OVERALL: PASSED" in out and " 0 failed, 0 warnings" in out, out[-6000:]


@pytest.mark.timeout(INSTALL_TIMEOUT + 60)
async def test_every_listed_client_scenario_outside_auth_is_run(tmp_path: Path) -> None:
    """The suite's own list (`conformance list`) is what LISTED covers, versions and all."""
    tool = conformance_tool()
    await installed(tool, tmp_path)
    code, out = await run_tool(str(tool), "list", cwd=tmp_path, timeout=60)
    assert code == 0, out
    client_part = out.split("Client scenarios", 1)[1].split("\n\n", 1)[0]
    listed = {
        name: tuple(versions.split(","))
        for name, versions in re.findall(r"^\s*- (\S+) \[([^\]]+)\]", client_part, re.MULTILINE)
        if not name.startswith("auth/")
    }
    assert listed == dict(LISTED)


# The authorization extensions' scenarios: machine-to-machine grants and DPoP. `conformance
# list` marks them `[extension]` (no spec version): they run at the suite's default version.
EXTENSIONS = [
    "auth/client-credentials-jwt",
    "auth/client-credentials-basic",
    "auth/enterprise-managed-authorization",
    "auth/wif-jwt-bearer",
    "auth/dpop",
    "auth/dpop-nonce",
]


@pytest.mark.skipif(" " in sys.executable or " " in str(REPO),
                    reason="the suite cannot start a command whose path holds spaces")
@pytest.mark.timeout(INSTALL_TIMEOUT + RUN_TIMEOUT)
@pytest.mark.parametrize("scenario", EXTENSIONS)
async def test_client_extension_scenario_passes(scenario: str, tmp_path: Path) -> None:
    tool = conformance_tool()
    await installed(tool, tmp_path)
    args = [str(tool), "client", "--command", CLIENT, "--scenario", scenario]
    code, out = await run_tool(*args, cwd=tmp_path, timeout=RUN_TIMEOUT)
    assert code == 0, f"{shlex.join(args)}\n{out[-6000:]}"
    assert "OVERALL: PASSED" in out and " 0 failed, 0 warnings" in out, out[-6000:]


@pytest.mark.timeout(INSTALL_TIMEOUT + 60)
async def test_every_listed_extension_client_scenario_is_run(tmp_path: Path) -> None:
    """The suite's `[extension]` client scenarios are exactly EXTENSIONS."""
    tool = conformance_tool()
    await installed(tool, tmp_path)
    code, out = await run_tool(str(tool), "list", cwd=tmp_path, timeout=60)
    assert code == 0, out
    client_part = out.split("Client scenarios", 1)[1].split("\n\n", 1)[0]
    listed = re.findall(r"^\s*- (\S+) \[extension\]", client_part, re.MULTILINE)
    assert sorted(listed) == sorted(EXTENSIONS)
