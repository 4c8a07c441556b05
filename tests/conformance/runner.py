"""The official conformance suite's runner, shared by the server and the client tests.

The runner (``../shared/tools/conformance``, or ``$MCP_CONFORMANCE_TOOL``, or ``conformance``
on ``PATH``) installs Node and the npm suite into a cache on first use; :func:`installed`
skips the calling test only when that install fails, and never in CI (``$CI`` set).

The test workers (pytest-xdist) are separate processes that may all need the suite at once,
and the runner's install step is not safe to run twice side by side in one cache. So
:func:`installed` asks for it under an exclusive lock on a file of the cache folder
(``$MCP_CONFORMANCE_HOME``, default ``~/.cache/mcp-conformance``, the runner's own): the first
worker installs, the others wait and then find it installed. Each process asks once per
runner; later tests reuse the answer (a listing costs a Node start-up).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INSTALL_TIMEOUT = 600.0


def conformance_tool() -> Path:
    """Where the runner is; fails the test when there is none."""
    configured = os.environ.get("MCP_CONFORMANCE_TOOL")
    tool = Path(configured) if configured else REPO.parent / "shared" / "tools" / "conformance"
    if not tool.is_file():
        found = shutil.which("conformance")
        if found is None:
            pytest.fail(f"conformance runner not found at {tool}; set MCP_CONFORMANCE_TOOL")
        tool = Path(found)
    return tool


async def run_tool(*args: str, cwd: Path, timeout: float) -> tuple[int, str]:
    """Run a command; its exit code and its stdout and stderr together."""
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


def conformance_home() -> Path:
    """The runner's cache folder (``$MCP_CONFORMANCE_HOME`` or ``~/.cache/mcp-conformance``)."""
    configured = os.environ.get("MCP_CONFORMANCE_HOME")
    return Path(configured) if configured else Path.home() / ".cache" / "mcp-conformance"


@contextlib.asynccontextmanager
async def _install_lock() -> AsyncIterator[None]:
    """Hold the cache folder's install lock (waiting for it off the event loop)."""
    home = conformance_home()
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".install-lock").open("w") as lock:
        await asyncio.to_thread(fcntl.flock, lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# The outcome of the first install check of each runner in this process: (exit code, output).
_checked: dict[Path, tuple[int, str]] = {}


async def installed(tool: Path, cwd: Path) -> None:
    """Make sure the suite is installed (``conformance list``); skip the test if it cannot be."""
    if tool not in _checked:
        async with _install_lock():
            _checked[tool] = await run_tool(str(tool), "list", cwd=cwd,
                                            timeout=INSTALL_TIMEOUT)
    code, out = _checked[tool]
    if code != 0 and os.environ.get("CI"):  # CI has the registries: a failure is a failure
        pytest.fail(f"the conformance suite could not be installed in CI:\n{out[-2000:]}")
    if code != 0:
        pytest.skip(f"the conformance suite (Node, npm) could not be installed:\n{out[-2000:]}")


def passed_scenarios(output: str) -> set[str]:
    """Scenario names the summary of a ``server`` run marks as passed."""
    return set(re.findall(r"^\S*✓\S* ([\w-]+):", output, re.MULTILINE))


def listed_scenarios(listing: str, part: str) -> dict[str, tuple[str, ...]]:
    """The scenarios of one part of ``conformance list`` ("Server", "Client") with the
    versions (or ``extension``) each is listed for."""
    section = listing.split(f"{part} scenarios", 1)[1].split("\n\n", 1)[0]
    return {name: tuple(versions.split(","))
            for name, versions in re.findall(r"^\s*- (\S+) \[([^\]]+)\]", section,
                                             re.MULTILINE)}


def summary(output: str) -> dict[str, bool]:
    """Each scenario of a ``server`` run's summary: whether it passed."""
    return {name: mark == "✓"
            for mark, name in re.findall(r"^\S*([✓✗])\S* ([\w-]+):", output, re.MULTILINE)}
