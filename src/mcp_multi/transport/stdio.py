"""stdio client transport: the server is our child process, one JSON-RPC message per line.

We spawn ``command args`` with our environment and the configured variables over it, write
each message as one line of JSON to the child's stdin and read one message per line from
its stdout. The child's stderr is its log: every line is logged (``INFO``, under the
server's name) and the last few are kept to explain an early exit.

The child's stdout is cut into lines by the protocol's
:class:`~mcp_multi.protocol.framing.LineFramer`, the one ``mcp-server --stdio`` uses too: a
line over ``max_message_size`` is logged and dropped without being held, and the next one is
read as usual.

When the child goes (its stdout closes, or it exits while a grandchild still holds the pipe)
:meth:`StdioTransport.receive` raises :class:`ConnectionClosed` naming the exit status and
the child's last words, so the session fails every pending request at once.

:meth:`StdioTransport.close` shuts the child down as the specification asks: close its stdin,
wait for it to exit, then ``SIGTERM``, then ``SIGKILL``. On POSIX the child leads its own
process group and the signals go to the whole group, so a wrapper (``uv run``, ``npx``)
takes its own children with it.

A target names the command as ``stdio:COMMAND ARGS`` (split with shell quoting rules, no
shell involved): :func:`stdio_url` and :func:`parse_stdio_url` convert.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import signal
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from ..protocol.errors import ConnectionClosed, TransportError
from ..protocol.framing import Line, LineEvent, LineFramer, LineSkipped
from ..protocol.jsonrpc import encode
from .base import DEFAULT_CONNECT_TIMEOUT, ClientTransport

__all__ = ["StdioTransport", "parse_stdio_url", "stdio_url"]

logger = logging.getLogger(__name__)

SCHEME = "stdio:"
MAX_MESSAGE_SIZE = 16 * 1024 * 1024
CHUNK = 64 * 1024  # bytes read from the child's stdout or stderr at a time
STDERR_LINE_MAX = 64 * 1024  # a longer log line is counted, not logged
CLOSE_TIMEOUT = 2.0  # seconds for each step of the shutdown
DRAIN_SECONDS = 1.0  # after the child exits, for the last lines a grandchild still writes
STDERR_TAIL = 5


def stdio_url(argv: Sequence[str]) -> str:
    """``stdio:`` and the command line, quoted so :func:`parse_stdio_url` gives it back."""
    return SCHEME + shlex.join(argv)


def parse_stdio_url(url: str) -> list[str]:
    """The command line of a ``stdio:COMMAND ARGS`` target.

    Raises:
        ValueError: not a ``stdio:`` target, bad quoting, or no command.
    """
    if not url.startswith(SCHEME):
        raise ValueError(f"not a stdio target: {url!r} (expected stdio:COMMAND ARGS)")
    try:
        argv = shlex.split(url[len(SCHEME):])
    except ValueError as exc:
        raise ValueError(f"bad stdio command {url[len(SCHEME):]!r}: {exc}") from None
    if not argv:
        raise ValueError("stdio target without a command (expected stdio:COMMAND ARGS)")
    return argv


def _status(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"


class StdioTransport(ClientTransport):
    """A server run as a child process, spoken to over its stdin and stdout.

    Args:
        url: ``stdio:COMMAND ARGS``.
        connect_timeout: unused by the spawn itself (kept for a uniform interface).
        env: variables set for the child over our own environment.
        cwd: the child's working directory (ours by default).
        server_name: the name its stderr lines are logged under (the command by default).
        max_message_size: the longest line accepted from the child, in bytes.
        close_timeout: seconds to wait at each step of the shutdown.
    """

    kind = "stdio"
    era_probe = True

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        server_name: str | None = None,
        max_message_size: int = MAX_MESSAGE_SIZE,
        close_timeout: float = CLOSE_TIMEOUT,
    ) -> None:
        super().__init__(url, connect_timeout=connect_timeout)
        self.argv = parse_stdio_url(url)
        self._env = dict(env or {})
        self._cwd = cwd
        self.label = server_name or os.path.basename(self.argv[0])
        self._max_message_size = max_message_size
        self._close_timeout = close_timeout
        self._proc: asyncio.subprocess.Process | None = None
        self._lines: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._stdout_done = asyncio.Event()
        self._closed: str | None = None
        self._stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL)

    @property
    def pid(self) -> int | None:
        """The child's process id (``None`` before :meth:`connect`)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def returncode(self) -> int | None:
        """The child's exit status once it has exited."""
        return self._proc.returncode if self._proc is not None else None

    async def connect(self) -> None:
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={**os.environ, **self._env},
                cwd=self._cwd,
                # Only flow control: a pipe holding more than twice this is not read from
                # until we have taken what it gave (the framers bound what a line holds).
                limit=CHUNK,
                start_new_session=os.name == "posix",
            )
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise TransportError(f"Cannot start {self.argv[0]!r}: {reason}") from exc
        self._tasks = [
            asyncio.create_task(self._read_stdout(), name=f"mcp-stdio-out-{self.label}"),
            asyncio.create_task(self._log_stderr(), name=f"mcp-stdio-err-{self.label}"),
            asyncio.create_task(self._watch(), name=f"mcp-stdio-watch-{self.label}"),
        ]
        logger.debug("%s: started %s (pid %d)", self.label, shlex.join(self.argv),
                     self._proc.pid)

    # -- the child's output ----------------------------------------------------------

    async def _read_stdout(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        stdout = self._proc.stdout
        framer = LineFramer(self._max_message_size)
        try:
            while chunk := await stdout.read(CHUNK):
                self._take(framer.feed(chunk))
            self._take(framer.end())
        except (OSError, ValueError) as exc:
            logger.debug("%s: reading stdout failed: %s", self.label, exc)
        finally:
            self._stdout_done.set()

    def _take(self, events: list[LineEvent]) -> None:
        for event in events:
            if isinstance(event, Line):
                self._lines.put_nowait(event.data)
            elif isinstance(event, LineSkipped):
                logger.warning("%s: dropped a line of %d bytes (over %d)", self.label,
                               event.size, self._max_message_size)

    async def _log_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        stderr = self._proc.stderr
        framer = LineFramer(STDERR_LINE_MAX)
        while chunk := await stderr.read(CHUNK):
            self._log_lines(framer.feed(chunk))
        self._log_lines(framer.end())

    def _log_lines(self, events: list[LineEvent]) -> None:
        for event in events:
            if isinstance(event, Line):
                text = event.data.decode("utf-8", "replace").rstrip()
            elif isinstance(event, LineSkipped):
                text = f"[a line of {event.size} bytes, not shown]"
            else:
                continue
            if text:
                self._stderr_tail.append(text)
                logger.info("%s: %s", self.label, text)

    async def _watch(self) -> None:
        """End :meth:`receive` when the child is gone, saying how it went."""
        proc = self._proc
        assert proc is not None
        exited = asyncio.create_task(proc.wait())
        drained = asyncio.create_task(self._stdout_done.wait())
        try:
            await asyncio.wait({exited, drained}, return_when=asyncio.FIRST_COMPLETED)
            # The lines already written still count; the exit status explains the end.
            await asyncio.wait({exited, drained},
                               timeout=DRAIN_SECONDS if exited.done() else self._close_timeout)
        finally:
            exited.cancel()
            drained.cancel()
        if proc.returncode is None:
            reason = "the server closed its stdout"
        else:
            reason = f"the server process {_status(proc.returncode)}"
        # Let the stderr reader log the child's last words first.
        await self._stderr_drained()
        if self._stderr_tail and self._closed is None:
            reason += f"; its last output: {' | '.join(self._stderr_tail)}"
        self._end(reason)

    async def _stderr_drained(self) -> None:
        """Wait (a moment at most) for the stderr reader to reach the end of the pipe."""
        reader = self._tasks[1:2]
        if reader:
            await asyncio.wait(reader, timeout=DRAIN_SECONDS)

    def _end(self, reason: str) -> None:
        if self._closed is None:
            self._closed = reason
            logger.info("%s: %s", self.label, reason)
        self._lines.put_nowait(None)

    # -- the interface ---------------------------------------------------------------

    async def receive(self) -> bytes | str:
        line = await self._lines.get()
        if line is None:
            self._lines.put_nowait(None)  # every later receive() is told too
            raise ConnectionClosed(f"stdio {self.label}: {self._closed}")
        return line

    async def send(self, message: dict[str, Any]) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None or self._closed is not None:
            raise ConnectionClosed(f"stdio {self.label}: "
                                   f"{self._closed or 'the server process is not running'}")
        try:
            proc.stdin.write(encode(message) + b"\n")
            await proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            # Most often the child has just exited (a bad flag, a missing file): give the
            # watcher a moment to say how, with its last stderr lines, rather than "EPIPE".
            await asyncio.wait(self._tasks[2:3], timeout=self._close_timeout)
            reason = self._closed or f"the server process stopped reading ({exc.strerror or exc})"
            raise ConnectionClosed(f"stdio {self.label}: {reason}") from exc

    async def close(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if self._closed is None:
            self._closed = "closed by the client"
        if proc.returncode is None:
            await self._shut_down(proc)
        # The child is gone: its stderr ends too; log its last lines before we stop reading.
        await self._stderr_drained()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._lines.put_nowait(None)

    async def _shut_down(self, proc: asyncio.subprocess.Process) -> None:
        """Close stdin, wait; ``SIGTERM``, wait; ``SIGKILL``, wait."""
        if proc.stdin is not None:
            proc.stdin.close()
            with contextlib.suppress(OSError):
                await proc.stdin.wait_closed()
        kill = getattr(signal, "SIGKILL", signal.SIGTERM)  # Windows has no SIGKILL
        for sig in (None, signal.SIGTERM, kill):
            if sig is not None:
                logger.info("%s: did not exit within %gs; sending %s", self.label,
                            self._close_timeout, sig.name)
                self._signal(proc, sig)
            try:
                async with asyncio.timeout(self._close_timeout):
                    await proc.wait()
                return
            except TimeoutError:
                continue
        logger.warning("%s: pid %d survived SIGKILL", self.label, proc.pid)

    @staticmethod
    def _signal(proc: asyncio.subprocess.Process, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.name == "posix":
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)
