"""``mcp-server --workers N``: N server processes on one port, kept alive by a supervisor.

Theory of operation. One server process uses one core. With ``--workers N`` the process the
user started becomes a supervisor that serves nothing itself: it starts N worker processes,
each ``python -m mcp_multi.server`` with the user's own arguments plus ``--as-worker I`` (its
number, 1 to N) and the port to use, and each listens on that port with ``SO_REUSEPORT``, so
that the kernel spreads new connections among them. A connection stays with the worker that
accepted it; a session spread over several connections (legacy SSE's stream and its
``POST``s, Streamable HTTP's requests) may reach any worker, which is why more than one
worker needs a shared session store (``--session-store``): the CLI refuses them without one.

The port is reserved before any worker starts. The supervisor binds (never listens on) a
socket of each address the host resolves to, with ``SO_REUSEPORT`` as the workers will: that
proves the port free to other programs (an error here is the usual one-line "cannot listen"),
picks the port when ``--port 0`` asked for any (every worker is then given the one picked),
and keeps it held while a worker is restarted. A socket that does not listen is given no
connections, so the reservation changes nothing of how they are spread.

Each worker's stdin is one end of a socket pair, its *lifeline*; the supervisor holds the
other end. The worker moves it off stdin at once (stdin becomes ``/dev/null``), writes one
line on it once it listens (``ready``, a tab, the names of its tools), and stops when it reads
end of file: the supervisor is gone, even killed with ``SIGKILL``, and no worker outlives it.

The supervisor forwards ``SIGINT`` and ``SIGTERM`` to the workers (they stop as a server
does, ending their streams) and, given a ``--policy``, ``SIGHUP`` too (each reloads it;
without one a hang-up ends the supervisor, as it ends a server, and so the workers). Workers
run in process groups of their own so that a terminal's Ctrl-C reaches them once, through
the supervisor. It exits when they all have: 0 after a stop it was asked for. A worker that
has not stopped ``STOP_GRACE`` seconds after the signal is killed.

A worker that exits when no stop was asked for (it crashed, or someone killed it) is started
again at once, under the same number, at most ``MAX_RESTARTS`` times in ``RESTART_WINDOW``
seconds over all workers; one death more and the supervisor gives up: it stops the others
and exits 1 with a line that says so. A worker that fails to start in the first place (it
exits, or is not listening within ``READY_TIMEOUT`` seconds) is no crash to retry: its own
error line has said why, and the supervisor stops the others and exits 1. (One started again
that fails so is one death more, and tried again within the bound.)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import logging
import os
import signal
import socket
import stat
import sys
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field

from .settings import ServerSettings

__all__ = ["Lifeline", "Supervisor", "reserve_port"]

logger = logging.getLogger(__name__)

# What the worker's option is called on its command line.
WORKER_OPTION = "--as-worker"
# Deaths of workers (over all of them) tolerated within RESTART_WINDOW seconds.
MAX_RESTARTS = 5
RESTART_WINDOW = 60.0
# Seconds a worker has to be listening after it was started, and to exit after a stop signal.
READY_TIMEOUT = 30.0
STOP_GRACE = 10.0
_READY = b"ready"


def reserve_port(host: str, port: int, *, attempts: int = 5) -> tuple[list[socket.socket], int]:
    """Bind (without listening) a ``SO_REUSEPORT`` socket on ``port`` of every address
    ``host`` resolves to, as the workers' listening sockets will be; ``port`` 0 picks one
    that is free on all of them. Returns the sockets, to keep open while the workers run,
    and the port.

    Raises:
        OSError: the port is held by a program that does not share it, or the host is no
            local address.
    """
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE)
    addresses = list(dict.fromkeys((family, address) for family, _, _, _, address in infos))
    for attempt in range(attempts):
        held: list[socket.socket] = []
        chosen = port
        try:
            for family, address in addresses:
                sock = socket.socket(family, socket.SOCK_STREAM)
                held.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind((address[0], chosen, *address[2:]))
                chosen = sock.getsockname()[1]
        except OSError as exc:
            for sock in held:
                sock.close()
            # Port 0 found a port free on the first address but not on another: try again.
            if port != 0 or exc.errno != errno.EADDRINUSE or attempt == attempts - 1:
                raise
            continue
        return held, chosen
    raise AssertionError("unreachable")  # the last attempt returns or raises


def describe_exit(code: int) -> str:
    """How a process ended, from its return code: ``exited with status 1``, ``killed by
    SIGKILL``."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


@dataclass(slots=True)
class _Worker:
    """One started worker process and the supervisor's end of its lifeline."""

    number: int
    process: asyncio.subprocess.Process
    lifeline: asyncio.StreamReader
    _writer: asyncio.StreamWriter
    ready: asyncio.Future[str | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())

    def signal(self, signum: int) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signum)

    def release(self) -> None:
        self._writer.close()


class Supervisor:
    """Runs ``settings.workers`` workers of the server the command line ``argv`` describes,
    on ``settings.host`` and a port reserved with :func:`reserve_port`, until it is told to
    stop (see the module's docstring).

    ``argv`` is the command line as the user gave it (without the program); ``settings``
    what it means. :meth:`run` returns the exit status.
    """

    def __init__(self, argv: Sequence[str], settings: ServerSettings, *,
                 max_restarts: int = MAX_RESTARTS, restart_window: float = RESTART_WINDOW,
                 ready_timeout: float = READY_TIMEOUT, stop_grace: float = STOP_GRACE) -> None:
        self.argv = list(argv)
        self.settings = settings
        self.max_restarts, self.restart_window = max_restarts, restart_window
        self.ready_timeout, self.stop_grace = ready_timeout, stop_grace
        self.port = settings.port
        self._held: list[socket.socket] = []
        self._workers: dict[int, _Worker] = {}
        self._exits: asyncio.Queue[_Worker] = asyncio.Queue()
        self._deaths: collections.deque[float] = collections.deque()
        self._stopping = False
        self._kill_timer: asyncio.TimerHandle | None = None
        self._status = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def reserve(self) -> None:
        """Reserve the port for the workers (:func:`reserve_port`); :attr:`port` is then
        the one they will listen on, and :meth:`run` releases it when it returns.

        Raises:
            OSError: the port cannot be reserved.
        """
        self._held, self.port = reserve_port(self.settings.host, self.settings.port)

    async def run(self) -> int:
        """Start the workers on the port reserved (:meth:`reserve`, called now if it was
        not), keep them running until a stop signal (or too many deaths), and return the
        exit status once every worker has exited."""
        if not self._held:
            self.reserve()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.stop, signum)
        if self.settings.policy is not None:  # else a hang-up ends it, as it ends a server
            loop.add_signal_handler(signal.SIGHUP, self._forward, signal.SIGHUP)
        try:
            for number in range(1, self.settings.workers + 1):
                await self._start(number)
            await self._first_start()
            while self._workers:
                await self._reap(await self._exits.get())
            return self._status
        finally:
            if self._kill_timer is not None:
                self._kill_timer.cancel()
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(signum)  # False for one it has none of
            for task in self._tasks:
                task.cancel()
            for sock in self._held:
                sock.close()
            self._held = []

    def listening(self) -> dict[int, int]:
        """The workers listening now: their pids by number."""
        return {number: worker.process.pid for number, worker in self._workers.items()
                if worker.ready.done() and worker.ready.result() is not None
                and worker.process.returncode is None}

    def stop(self, signum: int = signal.SIGTERM) -> None:
        """Stop every worker with ``signum`` (forwarded again if asked again); those still
        running ``stop_grace`` seconds after the first request are killed."""
        if not self._stopping:
            self._stopping = True
            logger.info("stopping %d worker(s)", len(self._workers))
            self._kill_timer = asyncio.get_running_loop().call_later(
                self.stop_grace, self._kill_stragglers)
        self._forward(signum)

    def _forward(self, signum: int) -> None:
        for worker in self._workers.values():
            worker.signal(signum)

    def _kill_stragglers(self) -> None:
        for worker in self._workers.values():
            if worker.process.returncode is None:
                logger.warning("worker %d (pid %d) did not stop within %g s: killing it",
                               worker.number, worker.process.pid, self.stop_grace)
                worker.signal(signal.SIGKILL)

    async def _start(self, number: int) -> _Worker:
        """Start worker ``number`` and the tasks that watch for its readiness and its end."""
        mine, theirs = socket.socketpair()
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "mcp_multi.server", *self.argv,
                "--port", str(self.port), WORKER_OPTION, str(number),
                stdin=theirs.fileno(), process_group=0)
        except BaseException:
            mine.close()
            raise
        finally:
            theirs.close()
        reader, writer = await asyncio.open_connection(sock=mine)
        worker = _Worker(number, process, reader, writer)
        self._workers[number] = worker
        self._spawn(self._await_ready(worker))
        self._spawn(self._await_exit(worker))
        if self._stopping:  # a stop signal came while it was being started
            worker.signal(signal.SIGTERM)
        return worker

    def _spawn(self, coroutine: Coroutine[None, None, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _await_ready(self, worker: _Worker) -> None:
        """Settle ``worker.ready`` with the tools it reported once listening, or None when
        it exited or took too long (then it is killed: its exit counts as a death)."""
        try:
            line = await asyncio.wait_for(worker.lifeline.readline(), self.ready_timeout)
        except (TimeoutError, OSError):
            line = b""
        head, _, tools = line.rstrip(b"\n").partition(b"\t")
        if head != _READY:
            if worker.process.returncode is None and not self._stopping:
                logger.error("worker %d (pid %d) was not listening within %g s: killing it",
                             worker.number, worker.process.pid, self.ready_timeout)
                worker.signal(signal.SIGKILL)
            worker.ready.set_result(None)
            return
        worker.ready.set_result(tools.decode(errors="replace"))

    async def _await_exit(self, worker: _Worker) -> None:
        await worker.process.wait()
        await self._exits.put(worker)

    async def _first_start(self) -> None:
        """Wait until every first worker listens, then say so; one that does not stops all."""
        tools = await asyncio.gather(*(w.ready for w in self._workers.values()))
        if self._stopping:
            return
        failed = [w for w, t in zip(self._workers.values(), tools, strict=True) if t is None]
        if failed:
            worker = failed[0]
            logger.error("worker %d (pid %d) failed to start: stopping the others",
                         worker.number, worker.process.pid)
            self._status = 1
            self.stop()
            return
        self._banner(tools[0] or "")

    def _banner(self, tools: str) -> None:
        settings = self.settings
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        store = settings.session_store or "memory"
        print(f"MCP server '{settings.name}' on {host}:{self.port} (tools: {tools}; "
              f"{settings.workers} workers, sessions in {redact_url(store)})", flush=True)
        print(f"  WebSocket:    ws://{host}:{self.port}/ws", flush=True)
        print(f"  HTTP (MCP):   http://{host}:{self.port}/mcp", flush=True)
        print(f"  SSE stream:   http://{host}:{self.port}/sse", flush=True)
        print(f"  SSE messages: http://{host}:{self.port}/message", flush=True)
        for worker in self._workers.values():
            print(f"  worker {worker.number}: pid {worker.process.pid}", flush=True)

    async def _reap(self, worker: _Worker) -> None:
        """A worker has exited: forget it, and start it again unless stopping or given up."""
        worker.release()
        if self._workers.get(worker.number) is worker:
            del self._workers[worker.number]
        code = worker.process.returncode
        assert code is not None
        if self._stopping:
            if code not in (0, -signal.SIGTERM, -signal.SIGINT, -signal.SIGKILL):
                logger.warning("worker %d (pid %d) %s while stopping", worker.number,
                               worker.process.pid, describe_exit(code))
            return
        now = time.monotonic()
        while self._deaths and now - self._deaths[0] > self.restart_window:
            self._deaths.popleft()
        if len(self._deaths) >= self.max_restarts:
            logger.error("worker %d (pid %d) %s; %d workers died within %g s before it: "
                         "giving up, stopping the others", worker.number, worker.process.pid,
                         describe_exit(code), len(self._deaths), self.restart_window)
            self._status = 1
            self.stop()
            return
        self._deaths.append(now)
        logger.warning("worker %d (pid %d) %s: starting it again (%d of at most %d restarts "
                       "in %g s)", worker.number, worker.process.pid, describe_exit(code),
                       len(self._deaths), self.max_restarts, self.restart_window)
        try:
            restarted = await self._start(worker.number)
        except OSError as exc:  # no process can be made now (out of memory, of pids)
            logger.error("worker %d cannot be started again: %s; stopping the others",
                         worker.number, exc)
            self._status = 1
            self.stop()
            return
        self._spawn(self._announce(restarted))

    async def _announce(self, worker: _Worker) -> None:
        """Say that a restarted worker listens, once it does."""
        if await worker.ready is not None:
            print(f"  worker {worker.number}: pid {worker.process.pid} (restarted)", flush=True)


def redact_url(url: str) -> str:
    """``url`` with the password of its userinfo, if any, replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, hostpart = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{hostpart}"


class Lifeline:
    """The worker's end of the pipe to its supervisor (see the module's docstring).

    :meth:`take` moves it off stdin; :meth:`ready` tells the supervisor the worker listens;
    :meth:`wait_closed` returns once the supervisor is gone.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        sock.setblocking(False)

    @classmethod
    def take(cls) -> Lifeline:
        """The lifeline a supervisor gave this process as its stdin; stdin becomes
        ``/dev/null``, so that nothing else reads it or hands it to a child.

        Raises:
            OSError: stdin is no socket (no supervisor started this process).
        """
        if not stat.S_ISSOCK(os.fstat(0).st_mode):
            raise OSError(errno.ENOTSOCK, "stdin is no socket")
        sock = socket.socket(fileno=os.dup(0))
        devnull = os.open(os.devnull, os.O_RDONLY)
        try:
            os.dup2(devnull, 0)
        finally:
            os.close(devnull)
        return cls(sock)

    async def ready(self, tools: Sequence[str]) -> None:
        """Tell the supervisor this worker listens, serving ``tools``."""
        line = _READY + b"\t" + ", ".join(tools).encode() + b"\n"
        with contextlib.suppress(OSError):  # the supervisor is gone: wait_closed will say so
            await asyncio.get_running_loop().sock_sendall(self._sock, line)

    async def wait_closed(self) -> None:
        """Return once the supervisor's end is closed (it exited, or was killed)."""
        loop = asyncio.get_running_loop()
        with contextlib.suppress(OSError):
            while await loop.sock_recv(self._sock, 256):
                pass

    def close(self) -> None:
        self._sock.close()
