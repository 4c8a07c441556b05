"""The interactive shell's loop: line input, history, completion and Ctrl-C.

On a terminal the shell uses prompt_toolkit (history kept across runs, tab completion of
commands, server names and tool names); with piped stdin it reads line by line and prints
no prompt, so scripts and tests can drive it. The commands and their output are
:mod:`.commands` (re-exported here).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.patch_stdout import patch_stdout

from ..protocol.methods import LOG_LEVELS
from ..protocol.text import for_display
from ..transport import transport_names
from .commands import (
    COMMANDS,
    RAW_METHODS,
    ArgumentError,
    Shell,
    parse_json_args,
    strip_comment,
)
from .feature_commands import FEATURE_COMMANDS
from .multi import MultiServerMCPClient

__all__ = [
    "COMMANDS",
    "ArgumentError",
    "Shell",
    "ShellCompleter",
    "default_history_path",
    "parse_json_args",
    "run_shell",
    "strip_comment",
]


_SERVER_FIRST = ("tools", "call", "remove", "ping", "send", *FEATURE_COMMANDS)


class ShellCompleter(Completer):
    """Completes commands, server names, the tool names each server last listed, and the
    prompts, resources and templates the shell's last listings showed."""

    def __init__(self, client: MultiServerMCPClient,
                 seen: dict[tuple[str, str], list[str]] | None = None) -> None:
        self.client = client
        self.seen = seen if seen is not None else {}

    def _seen(self, kind: str, server: str) -> list[str]:
        return self.seen.get((kind, server), [])

    def _tool_names(self, server: str | None) -> list[str]:
        connections = self.client.connections
        chosen = [connections[server]] if server in connections else (
            list(connections.values()) if server is None else [])
        names: set[str] = set()
        for connection in chosen:
            for tool in connection.cached_tools or ():
                name = str(tool["name"])
                # A name with control characters or spaces cannot be typed as one word, and
                # the completion menu would show it raw: it is not offered.
                if name.isprintable() and not any(ch.isspace() for ch in name):
                    names.add(name)
        return sorted(names)

    def _candidates(self, words: list[str], index: int) -> Iterable[str]:
        if index == 0:
            return COMMANDS
        command = words[0].lower()
        if index == 1 and command in _SERVER_FIRST:
            return self.client.names
        if index == 1 and command == "broadcast":
            return self._tool_names(None)
        if index == 2 and command == "call":
            return [*self._tool_names(words[1]), *RAW_METHODS]
        if index == 2 and command == "send":
            return RAW_METHODS
        if index == 2 and command == "add":
            return ("stdio",)
        if index == 3 and command == "add":
            return tuple(kind for kind in transport_names() if kind != "stdio")
        if index == 2:
            return self._second_argument(command, words[1])
        return ()

    def _second_argument(self, command: str, server: str) -> Iterable[str]:
        if command == "loglevel":
            return LOG_LEVELS
        if command == "prompt":
            return self._seen("prompt", server)
        if command in ("read", "subscribe", "unsubscribe"):
            return self._seen("resource", server)
        if command == "complete":
            return [*(f"prompt:{name}" for name in self._seen("prompt", server)),
                    *(f"resource:{uri}" for uri in self._seen("template", server)),
                    "prompt:", "resource:"]
        return ()

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterator[Completion]:
        text = document.text_before_cursor
        words = text.split()
        if text and not text[-1].isspace():
            current, index = words[-1], len(words) - 1
        else:
            current, index = "", len(words)
        for candidate in self._candidates(words, index):
            if candidate.startswith(current):
                yield Completion(candidate, start_position=-len(current))


class _LineReader:
    """Lines of a blocking text stream, read one at a time by a daemon thread.

    Not the loop's default executor: a thread blocked in ``readline`` there would keep the
    process from exiting on Ctrl-C; a daemon thread does not.
    """

    def __init__(self, source: TextIO) -> None:
        self._source = source
        self._loop = asyncio.get_running_loop()
        self._lines: asyncio.Queue[str] = asyncio.Queue()
        self._wanted = threading.Semaphore(0)
        threading.Thread(target=self._run, name="mcp-client-stdin", daemon=True).start()

    def _run(self) -> None:
        line = "-"
        while line:
            self._wanted.acquire()
            try:
                line = self._source.readline()
            except (OSError, ValueError):
                line = ""
            try:
                self._loop.call_soon_threadsafe(self._lines.put_nowait, line)
            except RuntimeError:  # the loop is gone: nobody wants the line
                return

    async def readline(self) -> str:
        """The next line, ``""`` at end of input."""
        self._wanted.release()
        return await self._lines.get()


@contextlib.contextmanager
def _signals_wake_the_loop() -> Iterator[None]:
    """Wake the event loop for every signal, whichever thread the kernel hands it to.

    Python runs signal handlers (Ctrl-C's among them) in the main thread only, between two
    steps of its code; the kernel may deliver the signal to any thread that does not block
    it, such as the stdin reader of :class:`_LineReader` or a resolver thread of the loop.
    The main thread, asleep in the loop's ``select`` while the shell waits for a line, would
    then not run the handler until some input or network event came, possibly never. A
    wakeup fd (:func:`signal.set_wakeup_fd`) gets a byte for every signal, from any thread;
    the loop watches it, wakes, and the handler runs. A wakeup fd already set is kept: it is
    the loop's own (:meth:`asyncio.loop.add_signal_handler` sets one), which wakes it as well.
    """
    loop = asyncio.get_running_loop()
    receive, send = socket.socketpair()
    receive.setblocking(False)
    send.setblocking(False)

    def drain() -> None:
        with contextlib.suppress(OSError):
            receive.recv(512)

    loop.add_reader(receive, drain)
    try:
        previous = signal.set_wakeup_fd(send.fileno(), warn_on_full_buffer=False)
    except ValueError:  # not the main thread: its signals are someone else's
        previous = None
    if previous is not None and previous != -1:
        signal.set_wakeup_fd(previous)
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            signal.set_wakeup_fd(previous)
        loop.remove_reader(receive)
        receive.close()
        send.close()


def default_history_path() -> Path:
    """``$MCP_CLIENT_HISTORY``, else ``$XDG_STATE_HOME/mcp-multi/client_history``."""
    explicit = os.environ.get("MCP_CLIENT_HISTORY")
    if explicit:
        return Path(explicit)
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "mcp-multi" / "client_history"


def _history(path: Path | None) -> History:
    if path is None:
        return InMemoryHistory()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
    except OSError:
        return InMemoryHistory()
    return FileHistory(str(path))


async def run_shell(
    shell: Shell,
    *,
    terminal: bool | None = None,
    history_path: Path | None = None,
    stdin: TextIO | None = None,
) -> None:
    """Read commands until ``quit`` or end of input and run each.

    Args:
        shell: the shell to drive.
        terminal: use prompt_toolkit (prompt, history, completion); by default when stdin
            and stdout are terminals.
        history_path: where a terminal session keeps its history.
        stdin: where piped commands come from (``sys.stdin`` by default).
    """
    try:
        await _read_commands(shell, terminal, history_path, stdin)
    finally:
        await shell.close_subscriptions()


async def _read_commands(shell: Shell, terminal: bool | None, history_path: Path | None,
                         stdin: TextIO | None) -> None:
    source = stdin if stdin is not None else sys.stdin
    if terminal is None:
        terminal = source.isatty() and sys.stdout.isatty()
    if not terminal:
        # A person typing while output goes to a pipe (`mcp-client ... | tee log`) still
        # gets a prompt, on stderr; a script feeding stdin gets none.
        prompt = source.isatty()
        with _signals_wake_the_loop():
            lines = _LineReader(source)
            while True:
                if prompt:
                    sys.stderr.write("> ")
                    sys.stderr.flush()
                line = await lines.readline()
                if not line:
                    return
                if not await (_interruptible(shell, line) if prompt else shell.execute(line)):
                    return
    session: PromptSession[str] = PromptSession(
        history=_history(history_path),
        completer=ShellCompleter(shell.client, shell.seen),
        complete_while_typing=False,
    )
    while True:
        # Notifications that come while the prompt is shown print above it (patch_stdout);
        # while a command runs there is no prompt, and progress may redraw its own line.
        with patch_stdout(raw=True):
            try:
                line = await session.prompt_async("> ")
            except KeyboardInterrupt:
                continue
            except EOFError:
                return
        if not await _interruptible(shell, line):
            return


async def _interruptible(shell: Shell, line: str) -> bool:
    """Run one command line; Ctrl-C (SIGINT) meanwhile aborts that command only.

    The command runs as a task of its own, and SIGINT cancels that task instead of the whole
    client (as it does while the shell waits for input): a slow ``add`` or ``call`` stops at
    once with one line, and the prompt comes back.
    """
    task = asyncio.ensure_future(shell.execute(line))
    loop = asyncio.get_running_loop()
    interrupted = False

    def on_sigint(signum: int, frame: object) -> None:
        nonlocal interrupted
        interrupted = True
        loop.call_soon_threadsafe(task.cancel)

    try:
        previous = signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not the main thread: Ctrl-C stays with whoever handles it
        return await task
    try:
        return await task
    except asyncio.CancelledError:
        if not interrupted:
            raise
        command = strip_comment(line).split(None, 1)[0].lower()
        shell.write(f"Error: interrupted, {for_display(command)} aborted")
        return True
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
