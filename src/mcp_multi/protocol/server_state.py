"""The server side of an MCP session's lifecycle, as data.

Theory of operation (after h11's ``_state.py``): a session is always in one
:class:`SessionState`. What the client sends is reduced to a :class:`SessionEvent`, and
:meth:`ServerLifecycle.process` looks the pair up in :data:`TRANSITIONS`: a pair that is there
moves the session to its new state, a pair that is not raises the protocol error of
:data:`REFUSALS` (``InvalidRequest`` unless that table says otherwise) and changes nothing.
The caller answers a refused request with that error; a refused notification has no answer,
so the caller drops it. Nothing else decides what a session may do next, and nothing here
knows about sockets or handlers.

A request is one or two events: the era it belongs to first (``HANDSHAKE_REQUEST`` for a
request without the 2026-07-28 envelope, ``MODERN_REQUEST`` for one with a valid envelope),
then, in the handshake era, what it does (``INITIALIZE``, ``PING`` or any other ``REQUEST``).

The handshake era (2024-11-05 … 2025-11-25)::

    NEW ──handshake request──> AWAITING_INITIALIZE ──initialize──> INITIALIZING
                                                                        │ initialized
                                                                        v
                                                                      READY

- On a stream transport the first request decides the era, whether or not it is then served:
  any request without the envelope (``ping``, ``initialize``, even a refused one) moves
  ``NEW`` to ``AWAITING_INITIALIZE``, and the session is of the handshake era from then on.
- Before ``initialize`` is answered only ``initialize`` and ``ping`` are served; any other
  request is refused, whatever notifications came first (``notifications/initialized``
  before ``initialize`` is refused too, so it cannot open the gate).
- In ``INITIALIZING`` (``initialize`` answered, ``notifications/initialized`` not yet seen)
  requests are served. The specification says a client SHOULD NOT send them before
  ``initialized``, not MUST NOT, and clients (the official SDK's among them) send it right
  after the answer, so a request overtaking it on another connection of the same session
  (Streamable HTTP) must not fail.

The modern era (2026-07-28) has no handshake: the first request with a valid ``_meta``
envelope moves ``NEW`` to ``MODERN``, and every later one is checked on its own. A request
whose envelope is refused (a version we do not serve) is no event at all, so it decides
nothing: a client whose probe was refused may still initialize.

Every state may close; ``CLOSED`` refuses everything but another close.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from . import methods
from .errors import InvalidRequest, JSONRPCError
from .versions import HANDSHAKE, MODERN, Era, unsupported_version

__all__ = [
    "REFUSALS",
    "STEADY_HANDSHAKE",
    "STEADY_MODERN",
    "TRANSITIONS",
    "ServerLifecycle",
    "SessionEvent",
    "SessionState",
]


class SessionState(Enum):
    """Where a server session is in its lifecycle."""

    # Members are singletons compared by identity: hashing by identity (in C) keeps the
    # transition tables' lookups, made for every request, off Enum's Python-level hash.
    __hash__ = object.__hash__

    NEW = "new"  # nothing served yet; the era is not chosen
    AWAITING_INITIALIZE = "awaiting initialize"  # handshake era, initialize not answered yet
    INITIALIZING = "initializing"  # initialize answered; notifications/initialized not seen
    READY = "ready"  # handshake done
    MODERN = "modern"  # 2026-07-28: no handshake, every request stands alone
    CLOSED = "closed"  # ended; nothing more is served


class SessionEvent(Enum):
    """What the client did, as far as the lifecycle cares."""

    __hash__ = object.__hash__  # as SessionState's

    HANDSHAKE_REQUEST = "handshake request"  # a request without the 2026-07-28 envelope
    INITIALIZE = methods.INITIALIZE  # an initialize request, about to be answered
    INITIALIZED = methods.INITIALIZED
    PING = methods.PING
    REQUEST = "request"  # any other handshake-era request
    MODERN_REQUEST = "modern request"  # a request whose 2026-07-28 envelope is valid
    CLOSE = "close"  # the transport ended the session


S, E = SessionState, SessionEvent

# (state, event) -> the state it leads to. A pair that is absent is a protocol error.
TRANSITIONS: dict[tuple[SessionState, SessionEvent], SessionState] = {
    (S.NEW, E.HANDSHAKE_REQUEST): S.AWAITING_INITIALIZE,
    (S.NEW, E.MODERN_REQUEST): S.MODERN,
    (S.AWAITING_INITIALIZE, E.HANDSHAKE_REQUEST): S.AWAITING_INITIALIZE,
    (S.AWAITING_INITIALIZE, E.INITIALIZE): S.INITIALIZING,
    (S.AWAITING_INITIALIZE, E.PING): S.AWAITING_INITIALIZE,
    (S.INITIALIZING, E.HANDSHAKE_REQUEST): S.INITIALIZING,
    (S.INITIALIZING, E.INITIALIZED): S.READY,
    (S.INITIALIZING, E.PING): S.INITIALIZING,
    (S.INITIALIZING, E.REQUEST): S.INITIALIZING,  # served: see the module docstring
    (S.READY, E.HANDSHAKE_REQUEST): S.READY,
    (S.READY, E.PING): S.READY,
    (S.READY, E.REQUEST): S.READY,
    (S.MODERN, E.MODERN_REQUEST): S.MODERN,
    **{(state, E.CLOSE): S.CLOSED for state in S},
}


def _steady(*events: SessionEvent) -> frozenset[SessionState]:
    """The states that each of ``events`` leaves as they are (derived from TRANSITIONS)."""
    return frozenset(state for state in S
                     if all(TRANSITIONS.get((state, event)) is state for event in events))


# The states in which a request's events change nothing, so that a caller may skip them (a
# request is served in such a state for every request after the first): a handshake-era
# request without the envelope (its era's event, then PING or any other REQUEST; initialize
# applies its own event), and a modern request.
STEADY_HANDSHAKE = _steady(E.HANDSHAKE_REQUEST, E.PING, E.REQUEST)
STEADY_MODERN = _steady(E.MODERN_REQUEST)

_HANDSHAKE_STATES = (S.AWAITING_INITIALIZE, S.INITIALIZING, S.READY)
_ERA: dict[SessionState, Era | None] = {
    S.NEW: None,
    S.AWAITING_INITIALIZE: HANDSHAKE,
    S.INITIALIZING: HANDSHAKE,
    S.READY: HANDSHAKE,
    S.MODERN: MODERN,
    S.CLOSED: None,
}

# Builds the error of a refused event from the method's name and the version it named.
Refusal = Callable[[str, str | None], JSONRPCError]


def _invalid(text: str) -> Refusal:
    return lambda method, _version: InvalidRequest(text.format(method=method))


_BEFORE_INITIALIZE = _invalid("Invalid Request: {method} before initialize; send initialize first")
_ALREADY_INITIALIZED = _invalid("Invalid Request: the session is already initialized")
_SERVES_HANDSHAKE = _invalid(
    "Invalid Request: this connection serves the handshake era (initialize); "
    "requests carrying the 2026-07-28 _meta envelope are not accepted on it"
)

# (state, event) -> the error an absent pair raises, given the method's name. Pairs in
# neither table raise a generic InvalidRequest naming the state.
REFUSALS: dict[tuple[SessionState, SessionEvent], Refusal] = {
    (S.NEW, E.REQUEST): _BEFORE_INITIALIZE,
    (S.NEW, E.INITIALIZED): _BEFORE_INITIALIZE,
    (S.AWAITING_INITIALIZE, E.REQUEST): _BEFORE_INITIALIZE,
    (S.AWAITING_INITIALIZE, E.INITIALIZED): _BEFORE_INITIALIZE,
    (S.INITIALIZING, E.INITIALIZE): _ALREADY_INITIALIZED,
    (S.READY, E.INITIALIZE): _ALREADY_INITIALIZED,
    (S.READY, E.INITIALIZED): _invalid("Invalid Request: {method} again; the handshake is done"),
    **{(state, E.MODERN_REQUEST): _SERVES_HANDSHAKE for state in _HANDSHAKE_STATES},
    # A modern connection names what it serves, so the client can tell why.
    (S.MODERN, E.INITIALIZE): lambda _method, version: unsupported_version(
        version, "Unsupported protocol version: this connection serves 2026-07-28, "
        "where initialize does not exist"),
    (S.MODERN, E.INITIALIZED): _invalid(
        "Invalid Request: {method} does not exist in 2026-07-28"),
    (S.MODERN, E.HANDSHAKE_REQUEST): _invalid(
        "Invalid Request: this connection serves 2026-07-28; {method} needs its _meta envelope"),
    **{(S.CLOSED, event): _invalid("Invalid Request: {method} on a closed session")
       for event in E if event is not E.CLOSE},
}


class ServerLifecycle:
    """The lifecycle of one server session: its state, and what the handshake settled.

    Attributes:
        state: the current :class:`SessionState`.
        era: the era that state belongs to (read it, never set it: it moves with ``state``).
        protocol_version: the version ``initialize`` negotiated (``None`` before it, and in
            the modern era, where each request names its own).
    """

    __slots__ = ("era", "protocol_version", "state")

    def __init__(self, state: SessionState = SessionState.NEW) -> None:
        self.state = state
        # ``None`` while undecided and once closed. An attribute, not a property of the
        # state: it is asked for every request.
        self.era: Era | None = _ERA[state]
        self.protocol_version: str | None = None

    def restore(self, state: SessionState, protocol_version: str | None) -> None:
        """Take on a state and version saved elsewhere (a session shared between
        instances), as they were: no event leads there, nothing is checked."""
        self.state, self.era = state, _ERA[state]
        self.protocol_version = protocol_version

    def process(self, event: SessionEvent, method: str | None = None, *,
                protocol_version: str | None = None) -> SessionState:
        """Apply ``event`` and return the new state, or raise without changing anything.

        Args:
            event: what the client did.
            method: the JSON-RPC method that carried it, named in the error.
            protocol_version: for :attr:`SessionEvent.INITIALIZE`, the negotiated version
                (when refused: the version the client asked for, named in the error).

        Raises:
            JSONRPCError: ``event`` is not allowed now (an ``InvalidRequest``, or the
                ``UnsupportedProtocolVersion`` of ``initialize`` on a modern connection).
            ValueError: ``INITIALIZE`` without ``protocol_version`` (our bug, not the peer's).
        """
        new = TRANSITIONS.get((self.state, event))
        if new is None:
            refuse = REFUSALS.get((self.state, event))
            name = method or event.value
            if refuse is None:
                raise InvalidRequest(
                    f"Invalid Request: {name} is not allowed while the session is "
                    f"{self.state.value}")
            raise refuse(name, protocol_version)
        if event is SessionEvent.INITIALIZE:
            if protocol_version is None:
                raise ValueError("INITIALIZE needs the negotiated protocol_version")
            self.protocol_version = protocol_version
        self.state, self.era = new, _ERA[new]
        return new

    def __repr__(self) -> str:
        return f"<ServerLifecycle {self.state.value} {self.protocol_version or ''}>".strip()
