"""``benchmarks/bench_instructions.py``: its clients against real servers (ours and the
floors, started here without valgrind, which is too slow for a test), and its command line.

Nothing here counts instructions or asserts on a figure.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from mcp_multi.server.app import start_server
from mcp_multi.server.settings import ServerSettings

from . import BENCHMARKS, load_script

SCRIPT = BENCHMARKS / "bench_instructions.py"
PEERS = BENCHMARKS / "_peers.py"


bench = load_script("bench_instructions")
CASES = {what: (setup, calls) for what, _floor, setup, calls in bench.CASES}


@pytest.fixture
async def ours() -> AsyncIterator[int]:
    server = await start_server(ServerSettings(port=0, log_level="WARNING"))
    try:
        yield server.port
    finally:
        await server.close()


@pytest.fixture(params=["floor-http", "floor-ws"])
def floor(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    port = bench.free_port()
    proc = subprocess.Popen([sys.executable, str(PEERS), request.param, str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield request.param, port
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("what", list(CASES))
@pytest.mark.parametrize("connections", [1, 4])
async def test_the_calls_reach_our_server_and_are_checked(ours: int, what: str,
                                                          connections: int) -> None:
    setup, calls = CASES[what]
    await bench.drive(ours, setup, calls, connections, 3)


async def test_the_floors_answer_the_same_calls(floor: tuple[str, int]) -> None:
    name, port = floor
    for _what, floor_name, setup, calls in bench.CASES:
        if floor_name == name:
            await bench.drive(port, setup, calls, 4, 3)


async def test_an_answer_without_the_echo_fails_the_count(ours: int) -> None:
    setup, _ = CASES["WebSocket"]

    async def wrong_tool(conn: object, _: object, ids: range) -> None:
        assert isinstance(conn, bench.Conn)
        for i in ids:
            conn.ws_send({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                          "params": {"name": "get_time", "arguments": {}}})
            bench._check(await conn.ws_recv())

    with pytest.raises(bench.Failed, match="answered"):
        await bench.drive(ours, setup, wrong_tool, 1, 1)


async def test_a_server_that_is_not_there_fails_in_bounded_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "TIMEOUT", 0.5)
    setup, calls = CASES["WebSocket"]
    with pytest.raises(bench.Failed, match="did not listen"):
        await asyncio.wait_for(bench.drive(bench.free_port(), setup, calls, 1, 1), 10)


def _run(*args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if path is not None:
        env["PATH"] = path
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True,
                          text=True, timeout=60, env=env, check=False)


def test_without_valgrind_it_says_not_measured(tmp_path: Path) -> None:
    done = _run(path=str(tmp_path))  # an empty PATH: no valgrind on it
    assert done.returncode == 0
    assert done.stdout.startswith("not measured: valgrind is not installed")


@pytest.mark.parametrize("args", [["--calls", "600", "200"], ["--connections", "0"],
                                  ["--calls", "8", "16", "--connections", "32"]])
def test_bad_counts_are_one_line_errors(args: list[str]) -> None:
    done = _run(*args)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("bench_instructions.py: error:")
