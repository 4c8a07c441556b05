"""A small cluster on loopback: N instances of our server as real processes behind real nginx.

The scale-out tests need what a deployment has — separate processes that share nothing but
the session store, and a load balancer that spreads requests among them without stickiness —
so this module starts exactly that, on free loopback ports, from ``deploy/nginx.conf``:

- :class:`Instance` is one ``python -m mcp_multi.server`` process (no ``uv run``: the test's own
  interpreter and environment). Its port is picked free (bound to port 0 and closed) and, if
  another process takes it before the server binds, picked again. It counts as started once
  its ``/healthz`` answers. Everything it prints goes to its own log file under the cluster's
  directory, which a failing test can read (:meth:`Cluster.logs`).
- :class:`Nginx` fills the template's placeholders (listen address, one ``server`` line per
  instance, a run directory for pid, logs and temporary files) and runs nginx in the
  foreground (``daemon off``) as our child, so stopping it is stopping one process.
- :class:`Cluster` holds both: :meth:`Cluster.kill` (SIGKILL, as a crashed machine) and
  :meth:`Cluster.start` (the same port again, so nginx's upstream list stays right) drive
  failover tests; :meth:`Cluster.requests` reads each instance's ``mcp_requests_total``
  from ``/metrics`` and :meth:`Cluster.served` counts the requests nginx's access log says
  each instance got, so a test can prove where its requests landed; :meth:`Cluster.steer_past`
  keeps the next request away from a given instance.

Every wait is bounded; stopping is SIGTERM, then SIGKILL after a few seconds. The binaries are
found by :func:`require_binary`, which skips a test on a developer's machine without them and
fails it under CI (``CI`` set), where ``.ci/run`` installs them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

__all__ = [
    "NGINX_TEMPLATE",
    "Cluster",
    "Instance",
    "Nginx",
    "free_port",
    "landed_on",
    "render_nginx_conf",
    "require_binary",
]

ROOT = Path(__file__).resolve().parents[2]
NGINX_TEMPLATE = ROOT / "deploy" / "nginx.conf"
# Where Debian puts daemons, often not on a non-root PATH.
_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")
# The Debian package of each binary, for the skip message.
_PACKAGES = {"nginx": "nginx", "redis-server": "redis-server", "haproxy": "haproxy"}

START_TIMEOUT = 20.0  # a server process's import and bind, on a loaded 2-core machine
STOP_TIMEOUT = 5.0  # SIGTERM to exit, before SIGKILL
PORT_ATTEMPTS = 5  # fresh ports tried when another process took the one we picked


def find_binary(name: str) -> str | None:
    """The path of the executable ``name`` on PATH or in the sbin directories, if any."""
    path = os.pathsep.join([os.environ.get("PATH", ""), *_SBIN])
    return shutil.which(name, path=path)


def require_binary(name: str) -> str:
    """The path of ``name``; without it the test is skipped, or failed when ``CI`` is set
    (``.ci/run`` installs it there, so its absence is a broken run, not a developer's choice)."""
    found = find_binary(name)
    if found is not None:
        return found
    package = _PACKAGES.get(name, name)
    if os.environ.get("CI"):
        pytest.fail(f"{name} is not installed but CI is set: .ci/run should have installed the "
                    f"Debian package {package!r}", pytrace=False)
    pytest.skip(f"{name} is not installed (apt-get install {package}); the scale-out tests "
                "need it")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 a moment ago (bound to port 0, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _stop_process(process: asyncio.subprocess.Process, sig: int = signal.SIGTERM) -> None:
    """Send ``sig``, then SIGKILL if the process has not exited within :data:`STOP_TIMEOUT`."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
            return
        except TimeoutError:
            pass
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    await asyncio.wait_for(process.wait(), STOP_TIMEOUT)


async def _wait_until(process: asyncio.subprocess.Process, url: str, timeout: float) -> bool:
    """Poll ``url`` until it answers 200 (True) or ``process`` exits (False); raise
    ``TimeoutError`` past ``timeout``."""
    async with asyncio.timeout(timeout), aiohttp.ClientSession() as http:
        while process.returncode is None:
            try:
                async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                    if resp.status == 200:
                        return True
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.05)  # the process is still importing; nothing to wait on
    return False


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class Instance:
    """One server process of the cluster (see the module docstring)."""

    index: int
    name: str
    args: list[str]
    log: Path
    port: int = 0
    process: asyncio.subprocess.Process | None = None
    starts: int = 0  # how many times it was started (its log keeps every run)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self, *, keep_port: bool = False) -> None:
        """Start the process and wait for its ``/healthz``. A new instance takes a fresh free
        port (another one if that was taken meanwhile); with ``keep_port`` it binds the one it
        had, as a restarted machine would."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        for _ in range(PORT_ATTEMPTS):
            if not (keep_port and self.port):
                self.port = free_port()
            if await self._run_once():
                return
            if keep_port or "cannot listen" not in _tail(self.log, 3):
                break
        raise RuntimeError(f"{self.name} did not start on port {self.port}; its log:\n"
                           f"{_tail(self.log)}")

    async def _run_once(self) -> bool:
        self.starts += 1
        with self.log.open("ab") as log:
            log.write(f"=== start {self.starts} on port {self.port}\n".encode())
            log.flush()
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "mcp_multi.server", "--port", str(self.port),
                "--name", self.name, *self.args,
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            if await _wait_until(self.process, f"{self.base_url}/healthz", START_TIMEOUT):
                return True
        except TimeoutError:
            await self.stop()
            raise RuntimeError(f"{self.name} did not answer /healthz within {START_TIMEOUT:g} "
                               f"s; its log:\n{_tail(self.log)}") from None
        await self.stop()
        return False

    async def stop(self) -> None:
        """SIGTERM (a clean shutdown), SIGKILL if it takes too long."""
        if self.process is not None:
            await _stop_process(self.process)

    async def kill(self) -> None:
        """SIGKILL at once: the instance disappears as a crashed machine does."""
        if self.process is not None:
            await _stop_process(self.process, signal.SIGKILL)


def render_nginx_conf(template: str, *, run_dir: Path, listen: str,
                      upstreams: list[str]) -> str:
    """``deploy/nginx.conf`` with its placeholders filled (comment lines, which name them,
    are left alone); ``upstreams`` are ``HOST:PORT``."""
    servers = "\n        ".join(f"server {u} max_fails=1 fail_timeout=2s;" for u in upstreams)
    values = {"@RUN_DIR@": str(run_dir), "@LISTEN@": listen, "@UPSTREAMS@": servers}
    lines = []
    for line in template.splitlines(keepends=True):
        if not line.lstrip().startswith("#"):
            line = re.sub(r"@[A-Z_]+@", lambda found: values.get(found[0], found[0]), line)
            left = re.findall(r"@[A-Z_]+@", line)
            if left:
                raise ValueError(f"nginx.conf has placeholders the harness does not fill: {left}")
        lines.append(line)
    return "".join(lines)


@dataclass
class Nginx:
    """nginx in the foreground on a free loopback port, configured from ``deploy/nginx.conf``."""

    binary: str
    run_dir: Path
    port: int = 0
    process: asyncio.subprocess.Process | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def error_log(self) -> Path:
        return self.run_dir / "error.log"

    @property
    def access_log(self) -> Path:
        return self.run_dir / "access.log"

    async def start(self, upstreams: list[str]) -> None:
        """Start nginx in front of ``upstreams``; ready once its port accepts connections."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        template = NGINX_TEMPLATE.read_text()
        for _ in range(PORT_ATTEMPTS):
            self.port = free_port()
            conf = self.run_dir / "nginx.conf"
            conf.write_text(render_nginx_conf(template, run_dir=self.run_dir,
                                              listen=f"127.0.0.1:{self.port}",
                                              upstreams=upstreams))
            # As root, nginx would hand its workers to "nobody", who cannot enter a test's
            # temporary directory (mode 0700): keep them as the user running the tests.
            globals_ = "daemon off;" + (" user root;" if os.geteuid() == 0 else "")
            with (self.run_dir / "nginx.out").open("ab") as out:
                self.process = await asyncio.create_subprocess_exec(
                    self.binary, "-p", str(self.run_dir), "-c", str(conf), "-g", globals_,
                    stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out)
            if await self._listening():
                return
            if "Address already in use" not in _tail(self.error_log, 5):
                break
        raise RuntimeError(f"nginx did not start; its error log:\n{_tail(self.error_log)}\n"
                           f"{_tail(self.run_dir / 'nginx.out')}")

    async def _listening(self) -> bool:
        assert self.process is not None
        async with asyncio.timeout(START_TIMEOUT):
            while self.process.returncode is None:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                except OSError:
                    await asyncio.sleep(0.02)  # nginx is still reading its configuration
                    continue
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
                return True
        return False

    async def stop(self) -> None:
        """SIGTERM (nginx's fast shutdown: open streams are cut), SIGKILL if it lingers."""
        if self.process is not None:
            await _stop_process(self.process)



@dataclass
class Cluster:
    """N instances of our server behind nginx (see the module docstring)."""

    directory: Path
    instances: list[Instance]
    nginx: Nginx
    store_url: str | None = None
    _http: aiohttp.ClientSession | None = field(default=None, repr=False)

    @classmethod
    def build(cls, directory: Path, count: int, *, store_url: str | None = None,
              profile: str | None = None, extra_args: tuple[str, ...] = ()) -> Cluster:
        """The cluster's parts, nothing started (see :meth:`start_all`)."""
        directory.mkdir(parents=True, exist_ok=True)
        args = [*(["--session-store", store_url] if store_url else []),
                *(["--profile", profile] if profile else []),
                "--root", str(directory), *extra_args]
        instances = [Instance(k, f"inst-{k}", args, directory / f"inst-{k}.log")
                     for k in range(count)]
        return cls(directory, instances, Nginx(require_binary("nginx"), directory / "nginx"),
                   store_url)

    @property
    def url(self) -> str:
        """nginx's base URL: where clients go."""
        return self.nginx.base_url

    async def start_all(self) -> None:
        """Start every instance (at once), then nginx in front of them."""
        await asyncio.gather(*(i.start() for i in self.instances))
        await self.nginx.start([f"127.0.0.1:{i.port}" for i in self.instances])

    async def close(self) -> None:
        """Stop nginx and every instance (bounded)."""
        try:
            if self._http is not None:
                await self._http.close()
            await self.nginx.stop()
        finally:  # whatever happened to nginx, no instance outlives the test
            await asyncio.gather(*(i.stop() for i in self.instances), return_exceptions=True)

    async def kill(self, k: int) -> None:
        """SIGKILL instance ``k``."""
        await self.instances[k].kill()

    async def start(self, k: int) -> None:
        """Start instance ``k`` again on its port (nginx already lists it)."""
        await self.instances[k].start(keep_port=True)

    async def metric(self, name: str, label: str = "") -> dict[str, int]:
        """The metric ``name`` of each running instance from its ``/metrics``, read directly,
        not through nginx: the sum of its samples whose labels hold ``label`` (e.g.
        ``'transport="sse"'``)."""
        if self._http is None:
            self._http = aiohttp.ClientSession()
        sample = re.compile(rf"^{re.escape(name)}(?:\{{[^}}]*{re.escape(label)}[^}}]*\}})? (\S+)$",
                            re.MULTILINE)
        counts: dict[str, int] = {}
        for instance in self.instances:
            if not instance.running:
                continue
            async with self._http.get(f"{instance.base_url}/metrics",
                                      timeout=aiohttp.ClientTimeout(total=5)) as resp:
                text = await resp.text()
            values = sample.findall(text)
            if resp.status != 200 or not (values or label):
                raise AssertionError(f"{instance.name}: no {name} in /metrics ({resp.status}): "
                                     f"{text[:200]!r}")
            counts[instance.name] = int(sum(float(v) for v in values))
        return counts

    async def requests(self) -> dict[str, int]:
        """``mcp_requests_total`` of each running instance (see :meth:`metric`)."""
        return await self.metric("mcp_requests_total")

    def served(self, pattern: str) -> Counter[str]:
        """How many requests each instance served whose line in nginx's access log matches
        the regular expression ``pattern`` (e.g. ``'"POST /message'``; the format is
        ``log_format mcp`` of deploy/nginx.conf); when nginx had to try several instances,
        the last one counts."""
        by_port = {str(i.port): i.name for i in self.instances}
        upstream = re.compile(r" upstream=(\S+(?:, \S+)*) ")
        counts: Counter[str] = Counter()
        with contextlib.suppress(FileNotFoundError):
            for line in self.nginx.access_log.read_text(errors="replace").splitlines():
                found = upstream.search(line)
                if found is not None and re.search(pattern, line):
                    port = found[1].split(", ")[-1].rpartition(":")[2]
                    counts[by_port.get(port, port)] += 1
        return counts

    async def wait_served(self, pattern: str, count: int,
                          timeout: float = 10.0) -> Counter[str]:
        """:meth:`served`, once nginx has logged ``count`` such requests (it logs a request
        when it ends, a stream when both sides have closed it)."""
        async with asyncio.timeout(timeout):
            while sum((served := self.served(pattern)).values()) < count:  # noqa: ASYNC110
                await asyncio.sleep(0.1)  # a file nginx writes: nothing to wait on
        return served

    async def steer_past(self, name: str) -> None:
        """Make sure the next request through nginx does not go to instance ``name``: round
        robin takes the instances in their order, so ask ``/healthz`` until the instance that
        answered is not the one just before ``name``."""
        if self._http is None:
            self._http = aiohttp.ClientSession()
        names = [i.name for i in self.instances]
        before = names[names.index(name) - 1]
        for _ in range(len(names) + 1):
            async with self._http.get(f"{self.url}/healthz") as resp:
                if (await resp.json())["name"] != before:
                    return
        raise AssertionError(f"round robin did not move past {name}")

    def logs(self) -> str:
        """The tail of every log of the cluster, for a failing test's report."""
        parts = [f"--- {i.name} (port {i.port})\n{_tail(i.log)}" for i in self.instances]
        parts.append(f"--- nginx error.log\n{_tail(self.nginx.error_log)}")
        parts.append(f"--- nginx access.log\n{_tail(self.nginx.access_log)}")
        return "\n".join(parts)


def landed_on(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Requests each instance served between two :meth:`Cluster.requests` readings (an
    instance restarted meanwhile counts from zero)."""
    return {name: n - before.get(name, 0) if n >= before.get(name, 0) else n
            for name, n in after.items()
            if n != before.get(name, 0)}
