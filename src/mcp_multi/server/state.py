"""The objects one running server shares between its endpoints, kept on the aiohttp app."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web

from .dispatcher import Dispatcher
from .resources import ServerStats
from .session import ServerSession
from .settings import ServerSettings
from .streams import HTTPSession

__all__ = ["STATE", "ServerState"]


@dataclass(slots=True)
class ServerState:
    settings: ServerSettings
    dispatcher: Dispatcher
    stats: ServerStats
    # Live sessions by id, for transports whose later requests name their session.
    sse_sessions: dict[str, ServerSession] = field(default_factory=dict)
    http_sessions: dict[str, HTTPSession] = field(default_factory=dict)
    # 2026-07-28 requests over HTTP being served now (they have no session to count them).
    stateless_running: int = 0
    # Handlers of open streams (WebSocket, SSE), cancelled at shutdown so each ends cleanly.
    stream_handlers: set[asyncio.Task[object]] = field(default_factory=set)


STATE: web.AppKey[ServerState] = web.AppKey("mcp_state", ServerState)
