"""The official MCP conformance suite (``conformance server``) against our ``/mcp``.

The suite runs twice against one server: every scenario at its default wire (the handshake era
where the scenario has one), then every 2026-07-28 scenario at the stateless wire. Known
failures live in ``server-expected-failures.yml``; a failure not listed there, or a listed one
that passes, fails the test. The scenarios the issue requires must pass outright.

The runner (``../shared/tools/conformance``, or ``$MCP_CONFORMANCE_TOOL``) installs Node and
the npm suite into a cache on first use; the test is skipped only when that install fails.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path

import pytest

from mcp_multi.server.app import RunningServer

from ..conftest import StartServer

REPO = Path(__file__).resolve().parents[2]
BASELINE = Path(__file__).with_name("server-expected-failures.yml")
REQUIRED = (
    "server-initialize", "ping", "tools-list", "logging-set-level", "resources-list",
    "dns-rebinding-protection", "server-sse-multiple-streams", "server-sse-polling",
)
INSTALL_TIMEOUT = 600.0
RUN_TIMEOUT = 180.0


def _tool() -> Path:
    configured = os.environ.get("MCP_CONFORMANCE_TOOL")
    tool = Path(configured) if configured else REPO.parent / "shared" / "tools" / "conformance"
    if not tool.is_file():
        found = shutil.which("conformance")
        if found is None:
            pytest.fail(f"conformance runner not found at {tool}; set MCP_CONFORMANCE_TOOL")
        tool = Path(found)
    return tool


async def _run(*args: str, cwd: Path, timeout: float) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


def _passed(output: str) -> set[str]:
    """Scenario names the summary marks as passed."""
    return set(re.findall(r"^\S*✓\S* ([\w-]+):", output, re.MULTILINE))


@pytest.mark.timeout(INSTALL_TIMEOUT + 2 * RUN_TIMEOUT)
async def test_server_conformance(start_mcp_server: StartServer, tmp_path: Path) -> None:
    tool = _tool()
    code, out = await _run(str(tool), "list", cwd=tmp_path, timeout=INSTALL_TIMEOUT)
    if code != 0:
        pytest.skip(f"the conformance suite (Node, npm) could not be installed:\n{out[-2000:]}")

    server: RunningServer = await start_mcp_server(name="conformance-target")
    url = server.base_url + "/mcp"
    base = [str(tool), "server", "--url", url, "--suite", "all",
            "--expected-failures", str(BASELINE)]

    code, handshake = await _run(*base, cwd=tmp_path, timeout=RUN_TIMEOUT)
    assert code == 0, handshake[-6000:]
    missing = set(REQUIRED) - _passed(handshake)
    assert not missing, f"required scenarios did not pass: {sorted(missing)}\n{handshake[-6000:]}"

    code, modern = await _run(*base, "--spec-version", "2026-07-28", cwd=tmp_path,
                              timeout=RUN_TIMEOUT)
    assert code == 0, modern[-6000:]
    stateless = {"tools-list", "resources-list", "dns-rebinding-protection",
                 "server-sse-multiple-streams", "http-header-validation"}
    assert stateless <= _passed(modern), modern[-6000:]
