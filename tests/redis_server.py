"""A real ``redis-server`` for tests: started on a free loopback port in a temporary
directory, with no persistence, and stopped at the end.

``start_redis(tmp_path)`` gives a :class:`RedisProcess` (its ``url`` and ``port``; ``stop()``
and ``restart()`` on the same port for outage tests); the fixtures ``redis_server`` and
``redis_url`` do the same for one test. Any test package uses them by importing them into
its ``conftest.py``::

    from tests.redis_server import redis_server, redis_url  # noqa: F401

A missing ``redis-server`` skips the test, except under CI (``$CI`` set), where it fails:
``.ci/run`` installs it (Debian package ``redis-server``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["RedisProcess", "redis_server", "redis_url", "start_redis"]

REDIS_SERVER = "redis-server"
# How long a starting server may take to answer PING, and a stopping one to exit.
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisProcess:
    """One ``redis-server`` on 127.0.0.1:``port``, its files under ``directory``."""

    def __init__(self, executable: str, directory: Path, port: int) -> None:
        self.executable = executable
        self.directory = directory
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait (bounded) until it answers PING."""
        assert self.process is None, "already running"
        log = (self.directory / "redis.log").open("ab")
        with log:
            self.process = subprocess.Popen(
                [self.executable, "--port", str(self.port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--dir", str(self.directory)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while not _pong(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server did not start on port {self.port}:\n{tail}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop the server (all its data is lost: nothing is saved)."""
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)

    def restart(self) -> None:
        """Start the server again on the same port, empty."""
        self.stop()
        self.start()


def start_redis(tmp_path: Path) -> RedisProcess:
    """A running ``redis-server`` on a free loopback port, its files in ``tmp_path``;
    the caller stops it."""
    executable = shutil.which(REDIS_SERVER)
    if executable is None:
        message = "redis-server is needed: apt-get install redis-server"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    directory = tmp_path / "redis"
    directory.mkdir(exist_ok=True)
    for attempt in range(3):  # another process may take the free port before redis binds it
        server = RedisProcess(executable, directory, free_port())
        try:
            server.start()
        except RuntimeError:
            if attempt == 2:
                raise
            continue
        return server
    raise AssertionError("unreachable")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    """A ``redis-server`` of this test only."""
    server = start_redis(tmp_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisProcess) -> str:
    """The URL of :func:`redis_server`."""
    return redis_server.url
