"""Notifications in the shell: one tagged line each, and progress as a live bar.

:class:`Notices` is the client's :data:`~mcp_multi.client.connection.NotificationHook`: the
reader task of each connection calls it with every notification its server sends. Each
becomes one line tagged with the server's name (``[calc] log info: ...``, see
:func:`~.rendering.notification_line`), printed through the shell's writer: on a terminal
the shell has prompt_toolkit's ``patch_stdout`` in place while a prompt is shown, so the
line appears above the prompt instead of through it.

Progress (``notifications/progress``) is status, not output: it goes to stderr. On a
terminal, while a command runs (no prompt on screen then), it is a live bar redrawn in
place with a carriage return and wiped when the command ends; otherwise (piped, or while a
prompt is shown, where a redrawn line would fight the prompt) it is plain lines, so the
command output on stdout stays exactly what the command printed.

A waiter may ask to be woken by a notification (:meth:`Notices.wait_for`): the shell waits
that way for a ``subscriptions/listen`` acknowledgement.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any, TextIO

from prompt_toolkit.patch_stdout import StdoutProxy

from ..protocol import methods
from ..protocol.jsonrpc import Notification
from ..protocol.text import for_display
from .rendering import notification_line, progress_line

__all__ = ["Notices"]

BAR_WIDTH = 24
_CLEAR_LINE = "\r\x1b[K"
# Shown by their waiters, not as lines of their own.
_QUIET = frozenset({methods.SUBSCRIPTIONS_ACKNOWLEDGED})

Predicate = Callable[[str, Notification], bool]


class Notices:
    """Shows the notifications of every server (use :meth:`hook` as the client's hook).

    Args:
        write: prints one line of output (the shell's writer).
        live: draw progress as a live bar (stderr is a terminal).
        status: where progress goes (``sys.stderr`` at each write by default).
    """

    def __init__(self, write: Callable[[str], None], *, live: bool = False,
                 status: TextIO | None = None) -> None:
        self._write = write
        self.live = live
        self._status = status
        self._bar_shown = False
        self._waiters: list[tuple[Predicate, asyncio.Future[Notification]]] = []

    def hook(self, server: str, note: Notification) -> None:
        """Show ``note`` from ``server`` (a :data:`NotificationHook`)."""
        self._wake(server, note)
        if note.method in _QUIET:
            return
        params = note.params if isinstance(note.params, dict) else {}
        if note.method == methods.PROGRESS:
            self._progress(server, params)
            return
        self.line(notification_line(server, note.method, params))

    def line(self, text: str) -> None:
        """Print one line, ending a live bar first."""
        self.settle()
        self._write(text)

    def settle(self) -> None:
        """Wipe a live progress bar (its command has ended, or a line is to be printed)."""
        if self._bar_shown:
            self._bar_shown = False
            stream = self._stream()
            stream.write(_CLEAR_LINE)
            stream.flush()

    async def wait_for(self, predicate: Predicate, timeout: float) -> Notification:
        """The next notification ``predicate`` accepts.

        Raises:
            TimeoutError: none came within ``timeout`` seconds.
        """
        future: asyncio.Future[Notification] = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._waiters.append(entry)
        try:
            async with asyncio.timeout(timeout):
                return await future
        finally:
            self._waiters.remove(entry)

    def _wake(self, server: str, note: Notification) -> None:
        for predicate, future in self._waiters:
            if not future.done() and predicate(server, note):
                future.set_result(note)

    def _stream(self) -> TextIO:
        return self._status if self._status is not None else sys.stderr

    def _progress(self, server: str, params: dict[str, Any]) -> None:
        """Redraw the live bar, or print a plain line when a bar cannot be drawn now."""
        stream = self._stream()
        if self.live and not isinstance(stream, StdoutProxy):
            stream.write(_CLEAR_LINE + _bar_text(server, params))
            self._bar_shown = True
        else:
            stream.write(progress_line(server, params) + "\n")
        stream.flush()


def _bar_text(server: str, params: dict[str, Any]) -> str:
    progress, total = params.get("progress"), params.get("total")
    if not (isinstance(progress, int | float) and isinstance(total, int | float) and total > 0):
        return progress_line(server, params)
    fraction = min(max(progress / total, 0.0), 1.0)
    filled = round(fraction * BAR_WIDTH)
    message = params.get("message")
    tail = f" {for_display(str(message), 60)}" if message else ""
    return (f"[{server}] [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] "
            f"{fraction * 100:3.0f}%{tail}")
