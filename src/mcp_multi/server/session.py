"""Server-side session state, shared by every transport.

A session is one client's conversation: a WebSocket connection, a legacy SSE stream with its
POST endpoint, a Streamable HTTP ``Mcp-Session-Id``, or a stdio pipe. Its lifecycle (era,
handshake, negotiated version, closed) is one
:class:`~mcp_multi.protocol.server_state.ServerLifecycle` that the dispatcher feeds; ``era``,
``initialized``, ``protocol_version`` and ``closed`` are read-only views of it. The session
also holds the requests in flight (so ``notifications/cancelled`` can stop them), the
capabilities its client declared in ``initialize``, the requests the server sent its client
and awaits answers to (:class:`~mcp_multi.server.asking.PendingAsks`, made at the first), and
its ``send`` pushes a server-to-client message onto the session's stream.

A modern (2026-07-28) request over Streamable HTTP has no session: the endpoint gives it a
throw-away one whose era is already ``modern``.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..protocol.jsonrpc import RequestId
from ..protocol.server_state import ServerLifecycle, SessionEvent, SessionState
from ..protocol.versions import HANDSHAKE, MODERN, Era, is_handshake
from .auth.principal import ANONYMOUS, Principal, principal_from_json, principal_to_json

if TYPE_CHECKING:
    from .asking import PendingAsks

__all__ = ["Outgoing", "SendFn", "ServerSession", "new_session_id"]

# What a session writes to its client: one message, or the array answering a batch.
Outgoing = dict[str, Any] | list[dict[str, Any]]
SendFn = Callable[[Outgoing], Awaitable[None]]


def new_session_id() -> str:
    """An unguessable session id (128 bits, hex: visible ASCII as the spec asks)."""
    return secrets.token_hex(16)


async def _discard(message: Outgoing) -> None:
    return None


_OPENING_STATE: dict[Era | None, SessionState] = {
    None: SessionState.NEW,
    HANDSHAKE: SessionState.AWAITING_INITIALIZE,
    MODERN: SessionState.MODERN,
}


# Ids of the throw-away sessions of stateless requests: never sent anywhere, so a number
# serves (a random one cost more than the call).
_STATELESS_IDS = itertools.count(1)

# The states a session shared between instances can be in: its initialize was answered.
_SHARED_STATES = frozenset({SessionState.INITIALIZING.value, SessionState.READY.value})


class ServerSession:
    """State of one client session on the server."""

    __slots__ = (
        "__weakref__",  # the notifier holds sessions weakly
        "ask_prefix",
        "asks",
        "client_capabilities",
        "client_info",
        "id",
        "inflight",
        "lifecycle",
        "log_level",
        "peer",
        "principal",
        "send",
        "stateless",
        "transport",
    )

    def __init__(self, transport: str, send: SendFn = _discard, session_id: str | None = None,
                 era: Era | None = None, stateless: bool = False):
        self.id = session_id or new_session_id()
        self.transport = transport
        self.send: SendFn = send
        # The era is undecided until the first request decides it (stream transports),
        # unless the transport already knows it (a stateless HTTP request is modern).
        self.lifecycle = ServerLifecycle(_OPENING_STATE[era])
        # True for the throw-away session of one stateless (modern) HTTP request.
        self.stateless = stateless
        self.client_info: dict[str, Any] | None = None
        self.client_capabilities: dict[str, Any] = {}
        self.asks: PendingAsks | None = None
        # Set when other instances may receive this session's answers: the ids of the
        # requests it sends its client then name this instance (see PendingAsks).
        self.ask_prefix: str | None = None
        # The client's address where the transport knows it (what tasks are counted by
        # across a client's sessions, and a stateless client's, having no session).
        self.peer = ""
        # Who the session's client is, once the transport's guard has checked its credentials.
        self.principal: Principal = ANONYMOUS
        self.log_level: str | None = None
        self.inflight: dict[RequestId, asyncio.Task[Any]] = {}

    @classmethod
    def stateless_one(cls, peer: str, principal: Principal) -> ServerSession:
        """The throw-away session of one stateless (modern) HTTP request: its client's
        address and who the guard found it to be."""
        session = cls("http", _discard, f"stateless-{next(_STATELESS_IDS)}", MODERN, True)
        session.peer = peer
        session.principal = principal
        return session

    @property
    def era(self) -> Era | None:
        """The era served: ``None`` until the first request decides it, and once closed."""
        return self.lifecycle.era

    @property
    def protocol_version(self) -> str | None:
        """The version ``initialize`` negotiated; ``None`` before it and in the modern era."""
        return self.lifecycle.protocol_version

    @property
    def initialized(self) -> bool:
        """Whether the handshake is done (``notifications/initialized`` received)."""
        return self.lifecycle.state is SessionState.READY

    @property
    def closed(self) -> bool:
        return self.lifecycle.state is SessionState.CLOSED

    def snapshot(self) -> dict[str, Any]:
        """What the handshake settled, as JSON-able data: enough for another instance to serve
        the session's next request (see :meth:`restore`)."""
        return {
            "state": self.lifecycle.state.value,
            "version": self.protocol_version,
            "client_info": self.client_info,
            "capabilities": self.client_capabilities,
            "log_level": self.log_level,
            "principal": principal_to_json(self.principal),
            "peer": self.peer,
        }

    def restore(self, data: Mapping[str, Any]) -> bool:
        """Take on the state :meth:`snapshot` wrote (on this instance or another); False,
        changing nothing, when ``data`` is not such a state (a shared store's content is read
        as untrusted)."""
        state, version = data.get("state"), data.get("version")
        info, capabilities = data.get("client_info"), data.get("capabilities")
        level, peer = data.get("log_level"), data.get("peer", "")
        principal = principal_from_json(data.get("principal"))
        if (state not in _SHARED_STATES or not isinstance(version, str)
                or not is_handshake(version) or not isinstance(info, dict | None)
                or not isinstance(capabilities, dict) or not isinstance(level, str | None)
                or not isinstance(peer, str) or principal is None):
            return False
        self.lifecycle.restore(SessionState(state), version)
        self.client_info, self.client_capabilities = info, capabilities
        self.log_level, self.peer, self.principal = level, peer, principal
        return True

    def track(self, request_id: RequestId, task: asyncio.Task[Any]) -> None:
        """Count ``task`` in flight under ``request_id`` until it ends."""
        self.inflight[request_id] = task
        task.add_done_callback(lambda _t: self._untrack(request_id))

    def _untrack(self, request_id: RequestId) -> None:
        inflight = self.inflight
        inflight.pop(request_id, None)
        if not inflight:
            # An emptied dict keeps the table it grew; a quiet session (most of them, most
            # of the time) holds a fresh one, a third the size.
            self.inflight = {}

    def cancel(self, request_id: RequestId) -> bool:
        """Cancel the in-flight request ``request_id``; False when it is not running."""
        task = self.inflight.get(request_id)
        if task is None or task.done():
            return False
        task.cancel()
        return True

    def close(self) -> None:
        """End the session: every request still running is cancelled, every question to
        the client still waiting fails."""
        self.lifecycle.process(SessionEvent.CLOSE)
        if self.asks is not None:
            self.asks.fail_all("The session closed before its client answered")
        for task in list(self.inflight.values()):
            task.cancel()
        self.inflight.clear()
