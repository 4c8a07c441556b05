"""The lifecycle of a client connection as data: states, events, and the table between them.

Theory of operation (the way h11's ``_state.py`` does it): a connection is always in one
:class:`ClientState`; something that happens to it is a :class:`ClientEvent`; the allowed
moves are the rows of :data:`TRANSITIONS`, and :meth:`ClientLifecycle.process` applies an
event or raises :class:`~mcp_multi.protocol.errors.ProtocolError` naming the state and the
event it does not allow. Nothing here knows about sockets or tasks, or which layer uses it:
the session layer (``client/connection.py``) keeps one, and so does the Streamable HTTP
transport for its HTTP session.

::

    NEW --CONNECT--> OPENING --OPENED--> OPEN --EXPIRED--> RENEWING --OPENED--> OPEN
     \\                  \\                  \\                  \\
      +------------------+------------------+------------------+--CLOSE--> CLOSED

- ``OPENING``: the transport is open and the session is being opened (the era probe, the
  handshake); requests of the handshake go out, nothing else is expected yet.
- ``OPEN``: the session is up; any request may go out.
- ``RENEWING``: the server forgot our Streamable HTTP session (HTTP 404); only a new
  ``initialize`` may go out until it is answered. A renewal that fails stays here (the next
  request finds the session expired again).
- ``CLOSED``: for good, from any state; the first reason given is kept.
"""

from __future__ import annotations

import enum

from .errors import ProtocolError

__all__ = ["TRANSITIONS", "ClientEvent", "ClientLifecycle", "ClientState"]


class ClientState(enum.Enum):
    """Where a client connection is in its life."""

    NEW = "new"
    OPENING = "opening"
    OPEN = "open"
    RENEWING = "renewing"
    CLOSED = "closed"


class ClientEvent(enum.Enum):
    """What can happen to a client connection."""

    CONNECT = "connect"  # the transport is being opened, the session next
    OPENED = "opened"  # the handshake (or the discovery) succeeded
    EXPIRED = "expired"  # the server forgot our session
    CLOSE = "close"  # either side ended the connection, or it failed


S, E = ClientState, ClientEvent

TRANSITIONS: dict[ClientState, dict[ClientEvent, ClientState]] = {
    S.NEW: {E.CONNECT: S.OPENING, E.CLOSE: S.CLOSED},
    S.OPENING: {E.OPENED: S.OPEN, E.CLOSE: S.CLOSED},
    S.OPEN: {E.EXPIRED: S.RENEWING, E.CLOSE: S.CLOSED},
    S.RENEWING: {E.OPENED: S.OPEN, E.EXPIRED: S.RENEWING, E.CLOSE: S.CLOSED},
    S.CLOSED: {E.CLOSE: S.CLOSED},
}
"""For each state, the events it allows and the state each leads to."""


class ClientLifecycle:
    """The state of one client connection, moved only by :meth:`process`.

    Attributes:
        state: the current state.
        reason: why the connection closed (the first reason given), ``None`` until then.
    """

    __slots__ = ("reason", "state")

    def __init__(self) -> None:
        self.state = ClientState.NEW
        self.reason: str | None = None

    def process(self, event: ClientEvent, reason: str | None = None) -> ClientState:
        """Apply ``event`` and return the new state.

        Args:
            event: what happened.
            reason: for :attr:`ClientEvent.CLOSE`, why (kept only if it is the first).

        Raises:
            ProtocolError: the current state does not allow ``event``; nothing changes.
        """
        new = TRANSITIONS[self.state].get(event)
        if new is None:
            raise ProtocolError(f"{event.value!r} is not allowed on a connection that is "
                                f"{self.state.value}")
        self.state = new
        if new is ClientState.CLOSED and self.reason is None:
            self.reason = reason or "closed"
        return new

    def close(self, reason: str) -> bool:
        """Close (allowed from any state); ``True`` if this call closed it."""
        first = self.state is not ClientState.CLOSED
        self.process(ClientEvent.CLOSE, reason)
        return first

    @property
    def closed(self) -> bool:
        return self.state is ClientState.CLOSED

    def __repr__(self) -> str:
        detail = f" ({self.reason})" if self.reason else ""
        return f"<ClientLifecycle {self.state.value}{detail}>"
