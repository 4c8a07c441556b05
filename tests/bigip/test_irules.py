"""The BIG-IP iRules (bigip/) replayed in tclsh on traffic recorded from our server just now.

One session fixture starts our server, drives it with our client, raw clients and the official
SDK through a recording proxy (``scenarios.record_all``) and writes the traffic files; then
every case of the Tcl suite (``tclsh bigip/tests/run.tcl --list``) is one test here, run with
``--traffic`` pointing at that fresh recording.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest

from .scenarios import SCENARIOS, record_all

BIGIP = Path(__file__).resolve().parents[2] / "bigip"
RUN_TCL = BIGIP / "tests" / "run.tcl"
COMMITTED_TRAFFIC = BIGIP / "tests" / "traffic"
TCLSH = shutil.which("tclsh8.6") or shutil.which("tclsh")
MISSING_TCLSH = "tclsh 8.6 is needed: run bigip/tests/requirements.sh (apt-get install tcl)"


def _tcl(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    assert TCLSH is not None, MISSING_TCLSH
    return subprocess.run([TCLSH, str(RUN_TCL), *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


def _case_names() -> list[str]:
    if TCLSH is None:
        return ["tclsh-missing"]
    listing = _tcl("--list", timeout=30)
    assert listing.returncode == 0, listing.stderr
    return listing.stdout.split()


@pytest.fixture(scope="session")
def recorded_traffic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fresh traffic files of every scenario, recorded from our server through the proxy."""
    out = tmp_path_factory.mktemp("bigip-traffic")
    root = tmp_path_factory.mktemp("bigip-root")
    (root / "notes.txt").write_text("a file for list_files\n")
    written = asyncio.run(record_all(out, root))
    missing = set(SCENARIOS) - set(written)
    assert not missing, f"scenarios not recorded (does the server serve /mcp?): {missing}"
    return out


@pytest.mark.parametrize("case", _case_names())
def test_irule_case(case: str, recorded_traffic: Path) -> None:
    if TCLSH is None:
        pytest.fail(MISSING_TCLSH)
    result = _tcl("--traffic", str(recorded_traffic), "--case", case)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith(f"ok   {case}"), result.stdout


def test_committed_recording_replays() -> None:
    """The recording committed for standalone runs (README's tclsh command) passes too."""
    if TCLSH is None:
        pytest.fail(MISSING_TCLSH)
    assert {p.stem for p in COMMITTED_TRAFFIC.glob("*.json")} == set(SCENARIOS)
    result = _tcl("--case", "every_proc_and_event_exercised")
    assert result.returncode == 0, result.stdout + result.stderr
