"""Newline-delimited JSON-RPC (the stdio transport's framing), sans I/O and bounded.

Theory of operation: a transport feeds :meth:`LineFramer.feed` whatever bytes its pipe gave
it, in chunks of any size, and gets back the events those bytes completed. One message is one
line; the framer keeps the partial last line between calls and never more than ``max_line``
bytes of it, so a peer cannot make us buffer a line without end.

The events, in the order the bytes produce them:

- :class:`Line`: one whole line, with its ``LF`` (the last line of a stream may lack one).
  Blank lines, ``LF`` or whitespace alone, carry no message and give no event.
- :class:`LineTooLong`: a line has just passed ``max_line`` bytes (its ``LF`` not counted).
  What was buffered of it is dropped, and the rest of it is counted but not kept. This comes
  as soon as the limit is passed, so a peer that never ends its line can still be told.
- :class:`LineSkipped`: that too-long line ended (its ``LF`` came, or the stream ended), and
  it measured ``size`` bytes. Every :class:`LineTooLong` is followed by one of these.

After calling :meth:`LineFramer.feed` the caller handles the events in order; at the end of
the stream it calls :meth:`LineFramer.end` for the unterminated last line, if any.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Line", "LineEvent", "LineFramer", "LineSkipped", "LineTooLong"]


@dataclass(frozen=True, slots=True)
class Line:
    """One line that is not blank: a message, with its ``LF`` when it had one."""

    data: bytes


@dataclass(frozen=True, slots=True)
class LineTooLong:
    """A line passed ``limit`` bytes (``seen`` so far); it is being skipped to its end."""

    seen: int
    limit: int


@dataclass(frozen=True, slots=True)
class LineSkipped:
    """The too-long line ended; it measured ``size`` bytes, its ``LF`` not counted."""

    size: int
    limit: int


LineEvent = Line | LineTooLong | LineSkipped


class LineFramer:
    """Splits a byte stream into lines of at most ``max_line`` bytes each (``LF`` not counted).

    Args:
        max_line: the longest line kept; a longer one is reported and skipped.

    Raises:
        ValueError: ``max_line`` is not positive.
    """

    def __init__(self, max_line: int) -> None:
        if max_line < 1:
            raise ValueError(f"max_line must be positive, not {max_line}")
        self.max_line = max_line
        self._partial = bytearray()  # the line begun, while it fits
        self._skipping: int | None = None  # bytes of a too-long line seen so far

    @property
    def buffered(self) -> int:
        """Bytes held of the line begun (at most ``max_line``)."""
        return len(self._partial)

    def feed(self, data: bytes) -> list[LineEvent]:
        """The events that ``data``, the next bytes of the stream, completes."""
        events: list[LineEvent] = []
        start = 0
        while (newline := data.find(b"\n", start)) >= 0:
            self._take(data[start:newline + 1], True, events)
            start = newline + 1
        if start < len(data):
            self._take(data[start:], False, events)
        return events

    def end(self) -> list[LineEvent]:
        """The events of the end of the stream: its unterminated last line, if any."""
        events: list[LineEvent] = []
        if self._skipping is not None:
            events.append(LineSkipped(self._skipping, self.max_line))
            self._skipping = None
        elif self._partial:
            line, self._partial = bytes(self._partial), bytearray()
            if line.strip():
                events.append(Line(line))
        return events

    def _take(self, piece: bytes, ended: bool, events: list[LineEvent]) -> None:
        """Take the next ``piece`` of the current line; ``ended``: it ends with the ``LF``."""
        size = len(piece) - ended
        if self._skipping is None and len(self._partial) + size > self.max_line:
            self._skipping = len(self._partial)
            self._partial = bytearray()  # let the memory go
            events.append(LineTooLong(self._skipping + size, self.max_line))
        if self._skipping is not None:
            self._skipping += size
            if ended:
                events.append(LineSkipped(self._skipping, self.max_line))
                self._skipping = None
            return
        if not ended:
            self._partial += piece
            return
        if self._partial:
            self._partial += piece
            line, self._partial = bytes(self._partial), bytearray()
        else:
            line = piece  # a whole line in one chunk: no copy beyond the slice
        if line.strip():
            events.append(Line(line))
