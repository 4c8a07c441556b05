"""WebSocket client transport: one JSON-RPC message per text frame.

We ask for the ``mcp`` subprotocol, as the official SDKs do, and also talk to servers that
do not select it. Binary frames are read as UTF-8 JSON too, to be lenient in what we accept;
we only ever send text frames.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp

from ..protocol.errors import ConnectionClosed
from ..protocol.jsonrpc import encode
from ..protocol.wire import PATH_WEBSOCKET, WEBSOCKET_SUBPROTOCOL
from .base import DEFAULT_CONNECT_TIMEOUT, ClientTransport, map_transport_errors, peer_text

__all__ = ["WebSocketTransport"]

logger = logging.getLogger(__name__)

MAX_MESSAGE_SIZE = 16 * 1024 * 1024
_CLOSE_CODES = {
    1000: "normal closure",
    1001: "going away",
    1006: "abnormal closure",
    1008: "policy violation",
    1009: "message too big",
    1011: "server error",
}


class WebSocketTransport(ClientTransport):
    """A WebSocket connection to ``ws://host:port/ws`` (or any ``ws``/``wss`` URL)."""

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
    ) -> None:
        super().__init__(url, connect_timeout=connect_timeout)
        self._headers = headers or {}
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
                    self._ws = await self._session.ws_connect(
                        self.url,
                        protocols=(WEBSOCKET_SUBPROTOCOL,),
                        headers=self._headers,
                        timeout=aiohttp.ClientWSTimeout(ws_close=5.0),
                        max_msg_size=self._max_message_size,
                    )
        except BaseException:
            await self.close()
            raise
        logger.debug("connected to %s (subprotocol %s)", self.url, self._ws.protocol)

    async def send(self, message: dict[str, Any]) -> None:
        ws = self._ws
        if ws is None or ws.closed:
            raise ConnectionClosed(f"WebSocket to {self.url} is closed")
        with map_transport_errors(f"send to {self.url}", closed=True):
            await ws.send_frame(encode(message), aiohttp.WSMsgType.TEXT)

    async def receive(self) -> bytes | str:
        ws = self._ws
        if ws is None:
            raise ConnectionClosed(f"WebSocket to {self.url} is not open")
        with map_transport_errors(f"read from {self.url}", closed=True):
            msg = await ws.receive()
        if msg.type is aiohttp.WSMsgType.TEXT:
            return str(msg.data)
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

