"""One server-wide byte budget for what one transport holds for its clients.

Theory of operation. Per-session bounds alone do not bound the server: a thousand sessions
each just under its own bound still pin gigabytes. So every transport that keeps events for
its clients (legacy SSE outboxes, Streamable HTTP response streams) charges the bytes it
holds to a :class:`ByteBudget` as well; each session that holds bytes is a :class:`Holder`
registered with it. When a charge takes the budget over its limit, :meth:`ByteBudget.shed`
asks the holders, largest first, to give bytes back until it is within the limit again: the
client that lets the most pile up pays, never a newcomer with one reply on its way. What
*giving back* means is the holder's business (a Streamable HTTP session drops its oldest
events, a legacy SSE stream is ended).

There is one budget per transport, not one for the whole server, because the transports
answer pressure differently (WebSocket stops reading, see
:mod:`~mcp_multi.server.endpoints.websocket`, which keeps its own total): one transport's
flood must not throttle another transport's clients.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["ByteBudget", "Holder"]


class Holder(Protocol):
    """Something holding bytes for a client, able to give some back."""

    @property
    def held(self) -> int:
        """Bytes charged to the budget now."""
        ...

    def shed(self, amount: int) -> int:
        """Give back at least ``amount`` bytes if it can; the bytes given back."""
        ...


class ByteBudget:
    """Bytes held server-wide by one transport's sessions, kept under ``limit``."""

    __slots__ = ("_holders", "limit", "peak", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.peak = 0  # the most ever held at once, after shedding
        self._holders: set[Holder] = set()

    def join(self, holder: Holder) -> None:
        self._holders.add(holder)

    def leave(self, holder: Holder) -> None:
        self._holders.discard(holder)

    def charge(self, size: int) -> None:
        """Count ``size`` more bytes held, shedding past the limit."""
        self.used += size
        if self.used > self.limit:
            self.shed()
        self.peak = max(self.peak, self.used)

    def release(self, size: int) -> None:
        """Count ``size`` bytes no longer held."""
        self.used -= size

    def shed(self) -> None:
        """Ask the holders, largest first, to give back what is over the limit."""
        for holder in sorted(self._holders, key=lambda h: h.held, reverse=True):
            if self.used <= self.limit or holder.held == 0:
                return
            holder.shed(self.used - self.limit)
