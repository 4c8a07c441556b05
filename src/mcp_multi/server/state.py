"""The objects one running server shares between its endpoints, kept on the aiohttp app."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .auth.authenticator import Authenticator
from .budget import ByteBudget
from .dispatcher import Dispatcher
from .resources import ServerStats
from .session import ServerSession
from .session_table import SessionTable
from .settings import ServerSettings
from .store import MemoryStore, SessionRecord, SessionStore, StoreUnavailable
from .streams import HTTPSession

__all__ = ["STATE", "ServerState"]


@dataclass(slots=True)
class ServerState:
    settings: ServerSettings
    dispatcher: Dispatcher
    stats: ServerStats
    # Who calls: the guard asks it about each MCP request (see server/auth).
    authenticator: Authenticator = field(default_factory=Authenticator)
    # Where sessions are shared with other instances (see server/store and server/cluster);
    # a MemoryStore shares nothing.
    store: SessionStore = field(default_factory=MemoryStore)
    # Live sessions by id, one bounded table per transport (see session_table).
    sse_sessions: SessionTable[ServerSession] = field(init=False)
    http_sessions: SessionTable[HTTPSession] = field(init=False)
    websocket_sessions: SessionTable[ServerSession] = field(init=False)
    # 2026-07-28 requests over HTTP being served now (they have no session to hold them).
    stateless_tasks: set[asyncio.Task[None]] = field(default_factory=set)
    # Bytes of replies waiting to be sent on all WebSocket connections together, and the
    # most one connection ever had waiting (its own and its transport's buffer) when a
    # reply had to wait its turn (a small one written straight away is not counted).
    websocket_backlog: int = 0
    websocket_backlog_peak: int = 0
    # Bytes held for clients by all legacy SSE streams, and all Streamable HTTP sessions.
    sse_buffer: ByteBudget = field(init=False)
    http_buffer: ByteBudget = field(init=False)
    # Handlers of open streams (WebSocket, SSE), cancelled at shutdown so each ends cleanly.
    stream_handlers: set[asyncio.Task[object]] = field(default_factory=set)
    # Set once the server begins to shut down: requests cut off now say so.
    shutting_down: bool = False
    # Work nobody awaits (telling the shared store a session ended), kept until it is done.
    chores: set[asyncio.Task[object]] = field(default_factory=set)
    # Shared legacy sessions' records lately read, oldest first, with when (see endpoints/sse).
    sse_records: OrderedDict[str, tuple[float, SessionRecord]] = field(
        default_factory=OrderedDict)

    def __post_init__(self) -> None:
        s = self.settings
        grace, idle = s.http_handshake_grace, s.http_session_idle_timeout

        def table(kind: str, limit: int) -> SessionTable[ServerSession]:
            return SessionTable(kind, limit, s.max_sessions_per_client,
                                idle_timeout=idle, handshake_grace=grace)

        self.sse_sessions = table("SSE", s.max_sse_sessions)
        self.websocket_sessions = table("WebSocket", s.max_websocket_sessions)
        self.http_sessions = SessionTable("Streamable HTTP", s.max_http_sessions,
                                          s.max_sessions_per_client, idle_timeout=idle,
                                          handshake_grace=grace)
        self.sse_buffer = ByteBudget(s.sse_total_buffer)
        self.http_buffer = ByteBudget(s.http_total_buffer)

    def chore(self, work: Coroutine[Any, Any, object]) -> None:
        """Run ``work`` in the background, bounded by the store's own timeouts; a store that
        cannot be reached is the store's to report, once."""
        task: asyncio.Task[object] = asyncio.create_task(_quietly(work))
        self.chores.add(task)
        task.add_done_callback(self.chores.discard)

    @property
    def store_ttl(self) -> float:
        """Seconds a shared session's record outlives its last use: an idle session ends
        (everywhere) as it may end on one instance."""
        return self.settings.http_session_idle_timeout


async def _quietly(work: Coroutine[Any, Any, object]) -> object:
    try:
        return await work
    except StoreUnavailable:
        return None


STATE: web.AppKey[ServerState] = web.AppKey("mcp_state", ServerState)
