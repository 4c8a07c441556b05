"""``mcp-server --workers N``: real supervisors and workers on loopback.

What is proven here is the process management (see :mod:`mcp_multi.server.workers`): the
workers share one port and each answers some of the fresh connections, a stop signal to the
supervisor stops them all, a worker that dies is started again (a bounded number of times),
a worker that fails to start fails the supervisor, and no worker outlives a killed
supervisor. Sharing sessions between them is the session store's part, proven elsewhere;
the workers are given a real Redis all the same, as they would be.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psutil
import pytest

from mcp_multi.server.settings import ServerSettings
from mcp_multi.server.workers import Supervisor

from .wire import connect

ROOT = Path(__file__).resolve().parents[2]
SHIM = str(ROOT / "mcp_server.py")
START_TIMEOUT = 40.0  # two server processes starting at once on a busy machine


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``redis-server`` on a free loopback port, for as long as the module runs."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is needed (Debian package redis-server; .ci/run installs it)"
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "no", "--dir", str(tmp_path_factory.mktemp("redis"))],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "redis did not start"
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


def _gone(pid: int) -> bool:
    """Whether process ``pid`` has ended (a zombie not yet reaped by init counts)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def _until(condition: object, timeout: float, what: str) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


@dataclass(slots=True)
class Cluster:
    """A running ``mcp-server --workers N``: its process, the URL it serves and what it has
    printed so far (read in the background)."""

    proc: asyncio.subprocess.Process
    url: str = ""
    lines: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def pids(self) -> dict[int, int]:
        """Each worker's latest pid, from the lines printed."""
        out: dict[int, int] = {}
        for line in self.lines:
            if match := re.match(r"\s+worker (\d+): pid (\d+)", line):
                out[int(match[1])] = int(match[2])
        return out

    async def wait_line(self, pattern: str, timeout: float = START_TIMEOUT, *,
                        log: bool = False) -> re.Match[str]:
        """The first line printed (or logged) that matches ``pattern``, once there is one."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.log if log else self.lines:
                if match := re.search(pattern, line):
                    return match
            self.changed.clear()
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no line matching {pattern!r} in {self.lines}"
            await asyncio.wait_for(self.changed.wait(), remaining)


@asynccontextmanager
async def workers(*args: str) -> AsyncIterator[Cluster]:
    """Run ``mcp_server.py --port 0 ARGS`` until its banner has named every worker."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, SHIM, "--port", "0", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL, cwd=ROOT)
    cluster = Cluster(proc)

    async def read() -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            cluster.lines.append(line.decode())
            cluster.changed.set()
        cluster.changed.set()

    async def drain() -> None:
        assert proc.stderr is not None
        while line := await proc.stderr.readline():
            cluster.log.append(line.decode())
            cluster.changed.set()

    tasks = [asyncio.create_task(read()), asyncio.create_task(drain())]
    try:
        match = await cluster.wait_line(r" on (\S+):(\d+) ")
        cluster.url = f"http://{match[1]}:{match[2]}"
        count = int(args[args.index("--workers") + 1])
        await cluster.wait_line(rf"^\s+worker {count}: pid")
        yield cluster
    except BaseException:
        print("".join(cluster.log), file=sys.stderr)
        raise
    finally:
        pids = list(cluster.pids().values())
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 20)
        await asyncio.wait(tasks, timeout=5)
        await _until(lambda: all(_gone(pid) for pid in pids), 10, "workers to end")


async def _worker_answering(url: str) -> int:
    """The ``worker`` field of ``/healthz`` over a fresh connection."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http, \
            http.get(f"{url}/healthz") as response:
        assert response.status == 200
        return int((await response.json())["worker"])


async def _answering(url: str, tries: int = 200) -> set[int]:
    """Which workers answer, over up to ``tries`` fresh connections (stops once two have)."""
    seen: set[int] = set()
    for _ in range(tries):
        seen.add(await _worker_answering(url))
        if len(seen) == 2:
            break
    return seen


async def test_two_workers_share_the_port_reload_and_stop_together(
        redis_url: str, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('default_role = "guest"\n\n[roles.guest]\ntools = ["echo"]\n')
    async with workers("--workers", "2", "--session-store", redis_url,
                       "--policy", str(policy)) as cluster:
        pids = cluster.pids()
        assert set(pids) == {1, 2}
        banner = cluster.lines[0]
        assert "2 workers, sessions in redis://127.0.0.1:" in banner, banner
        assert await _answering(cluster.url) == {1, 2}
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as http, \
                http.get(f"{cluster.url}/metrics") as response:
            assert re.search(r'mcp_worker_info\{server="mcp-server",worker="[12]"\} 1',
                             await response.text())
        peer = await connect("websocket", cluster.url)  # one connection stays on one worker
        init = await peer.initialize()
        assert init["result"]["serverInfo"]["name"] == "mcp-server"
        call = await peer.request("tools/call", {"name": "echo", "arguments": {"message": "hi"}})
        assert "hi" in str(call["result"]["content"])
        await peer.close()
        # SIGHUP reaches every worker, and each reloads its policy.
        cluster.proc.send_signal(signal.SIGHUP)
        for number in (1, 2):
            await cluster.wait_line(f"worker {number} .*policy reloaded", log=True)
        assert cluster.pids() == pids and cluster.proc.returncode is None
        cluster.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(cluster.proc.wait(), 20) == 0
        await _until(lambda: all(_gone(pid) for pid in pids.values()), 10, "workers to end")


async def test_a_killed_worker_is_started_again_and_none_outlives_the_supervisor(
        redis_url: str) -> None:
    async with workers("--workers", "2", "--session-store", redis_url) as cluster:
        first = cluster.pids()
        psutil.Process(first[1]).kill()
        match = await cluster.wait_line(r"^\s+worker 1: pid (\d+) \(restarted\)")
        assert int(match[1]) != first[1] and cluster.pids()[2] == first[2]
        assert _gone(first[1])
        assert await _answering(cluster.url) == {1, 2}
        assert cluster.proc.returncode is None
        # Killed, the supervisor forwards nothing: the workers see their lifelines end.
        cluster.proc.kill()
        await cluster.proc.wait()
        await _until(lambda: all(_gone(pid) for pid in cluster.pids().values()), 15,
                     "workers to see their supervisor gone")


async def test_port_held_by_another_program_is_one_line(redis_url: str) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        out = await asyncio.to_thread(
            subprocess.run, [sys.executable, SHIM, "--workers", "2", "--session-store",
                             redis_url, "--port", str(port)],
            capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        f"mcp-server: cannot listen on 127.0.0.1:{port}: Address already in use"]


def _settings(redis_url: str) -> ServerSettings:
    """One worker under a supervisor: what its tests need, at half the cost of two."""
    return ServerSettings(port=0, workers=1, session_store=redis_url)


async def test_too_many_deaths_and_the_supervisor_gives_up(
        redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    supervisor = Supervisor(["--session-store", redis_url], _settings(redis_url),
                            max_restarts=1, restart_window=60)
    supervisor.reserve()
    run = asyncio.create_task(supervisor.run())
    killed: list[int] = []

    async def kill_one() -> None:
        """Kill a worker that is listening, once one that was not killed yet is."""
        async def listening() -> int:
            while True:
                for pid in supervisor.listening().values():
                    if pid not in killed:
                        return pid
                await asyncio.sleep(0.05)
        pid = await asyncio.wait_for(listening(), START_TIMEOUT)
        killed.append(pid)
        psutil.Process(pid).kill()

    await kill_one()  # started again: the one restart allowed
    await kill_one()  # one death more: it gives up
    assert await asyncio.wait_for(run, 30) == 1
    assert "giving up" in caplog.text
    assert not supervisor.listening()


async def test_a_worker_that_cannot_start_stops_the_supervisor(
        redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    # The workers are refused an unknown tool, which these settings did not check.
    supervisor = Supervisor(["--session-store", redis_url, "--tools", "bogus"],
                            _settings(redis_url))
    assert await asyncio.wait_for(supervisor.run(), START_TIMEOUT) == 1
    assert "failed to start" in caplog.text
