"""WebSocket client transport: one JSON-RPC message per text frame.

We ask for the ``mcp`` subprotocol, as the official SDKs do, and also talk to servers that
do not select it. Binary frames are read as UTF-8 JSON too, to be lenient in what we accept;
we only ever send text frames.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import hdrs

from ..protocol.errors import AuthorizationRequired, ConnectionClosed
from ..protocol.jsonrpc import encode
from ..protocol.wire import PATH_WEBSOCKET, WEBSOCKET_SUBPROTOCOL
from .base import (
    AUTH_STATUSES,
    DEFAULT_CONNECT_TIMEOUT,
    MAX_AUTH_ROUNDS,
    ClientTransport,
    map_transport_errors,
    peer_text,
    transport_error,
)

if TYPE_CHECKING:
    from ..client.auth.hook import RequestAuth

__all__ = ["WebSocketTransport"]

logger = logging.getLogger(__name__)

MAX_MESSAGE_SIZE = 16 * 1024 * 1024
_TEXT = aiohttp.WSMsgType.TEXT
_CLOSE_CODES = {
    1000: "normal closure",
    1001: "going away",
    1006: "abnormal closure",
    1008: "policy violation",
    1009: "message too big",
    1011: "server error",
}


class WebSocketTransport(ClientTransport):
    """A WebSocket connection to ``ws://host:port/ws`` (or any ``ws``/``wss`` URL).

    ``auth`` (optional) authorizes the upgrade request: its headers on it, and after a 401
    or 403 the upgrade tried again while it says so (bounded like every HTTP transport's).
    """

    kind = "websocket"
    scheme = "ws"
    default_path = PATH_WEBSOCKET

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        headers: dict[str, str] | None = None,
        max_message_size: int = MAX_MESSAGE_SIZE,
        auth: RequestAuth | None = None,
    ) -> None:
        super().__init__(url, connect_timeout=connect_timeout)
        self._headers = headers or {}
        self._auth = auth
        self._max_message_size = max_message_size
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None

    async def connect(self) -> None:
        self._session = aiohttp.ClientSession()
        try:
            # The handshake as a whole (TCP connect, HTTP upgrade) is bounded; the socket
            # after it is not: a quiet server is not a dead one.
            with map_transport_errors(f"connect to {self.url}"):
                async with asyncio.timeout(self.connect_timeout):
                    self._ws = await (self._upgrade(self._session, {}) if self._auth is None
                                      else self._authorized_upgrade(self._session))
        except BaseException:
            await self.close()
            raise
        logger.debug("connected to %s (subprotocol %s)", self.url, self._ws.protocol)

    async def _upgrade(self, session: aiohttp.ClientSession,
                       extra: dict[str, str]) -> aiohttp.ClientWebSocketResponse:
        return await session.ws_connect(
            self.url,
            protocols=(WEBSOCKET_SUBPROTOCOL,),
            headers={**self._headers, **extra} if extra else self._headers,
            timeout=aiohttp.ClientWSTimeout(ws_close=5.0),
            max_msg_size=self._max_message_size,
        )

    async def _authorized_upgrade(
            self, session: aiohttp.ClientSession) -> aiohttp.ClientWebSocketResponse:
        """The upgrade through :attr:`_auth` (see the class docstring)."""
        auth = self._auth
        assert auth is not None
        for round_ in range(MAX_AUTH_ROUNDS + 1):
            try:
                ws = await self._upgrade(session, await auth.headers("GET", self.url))
            except aiohttp.WSServerHandshakeError as exc:
                headers: Mapping[str, str] = exc.headers or {}
                auth.observe("GET", self.url, exc.status, headers)
                if exc.status not in AUTH_STATUSES:
                    raise
                if round_ < MAX_AUTH_ROUNDS and await auth.refused(
                        "GET", self.url, exc.status, headers):
                    continue
                challenge = headers.get(hdrs.WWW_AUTHENTICATE)
                detail = f" (WWW-Authenticate: {peer_text(challenge)})" if challenge else ""
                raise AuthorizationRequired(
                    f"Cannot connect to {self.url}: HTTP {exc.status}{detail}",
                    exc.status, challenge) from None
            auth.observe("GET", self.url, 101, {})
            return ws
        raise AssertionError("unreachable")

    async def send(self, message: dict[str, Any]) -> None:
        ws = self._ws
        if ws is None or ws.closed:
            raise ConnectionClosed(f"WebSocket to {self.url} is closed")
        try:
            await ws.send_frame(encode(message), aiohttp.WSMsgType.TEXT)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise transport_error(f"send to {self.url}", exc, closed=True) from exc

    async def receive(self) -> bytes | str:
        ws = self._ws
        if ws is None:
            raise ConnectionClosed(f"WebSocket to {self.url} is not open")
        try:
            msg = await ws.receive()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise transport_error(f"read from {self.url}", exc, closed=True) from exc
        if msg.type is _TEXT:
            data: str = msg.data
            return data
        if msg.type is aiohttp.WSMsgType.BINARY:
            return bytes(msg.data)
        if msg.type is aiohttp.WSMsgType.ERROR:
            raise ConnectionClosed(f"WebSocket to {self.url} failed: "
                                   f"{peer_text(str(ws.exception()))}")
        code = ws.close_code
        meaning = _CLOSE_CODES.get(code, "") if code is not None else ""
        detail = f" (code {code}{', ' + meaning if meaning else ''})" if code is not None else ""
        raise ConnectionClosed(f"WebSocket to {self.url} closed{detail}")

    async def close(self) -> None:
        ws, session = self._ws, self._session
        self._ws = self._session = None
        if ws is not None and not ws.closed:
            try:
                await ws.close()
            except (aiohttp.ClientError, OSError):
                pass
        if session is not None:
            await session.close()

