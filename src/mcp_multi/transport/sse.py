"""Legacy HTTP+SSE client transport (MCP protocol 2024-11-05).

``GET /sse`` opens an event stream whose first event, ``endpoint``, says where to POST our
messages (``/message?sessionId=...``, resolved against the stream's URL and refused on any
other origin). Every message we send is one POST, which the server answers ``202 Accepted``;
its replies and requests travel back on the stream as ``message`` events. The stream is
parsed by the pure :class:`mcp_multi.protocol.sse.SSEParser`.

A legacy session cannot be resumed (the session id dies with the stream), so a stream that
ends is reported as :class:`ConnectionClosed`, not reconnected.

Over plain ``http://`` with no authorization hook the POSTs go through the lean pool of
:mod:`.plain_http` (the stream stays with aiohttp; both share one cookie jar).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import hdrs

from ..protocol.errors import (
    AuthorizationRequired,
    ConnectionClosed,
    MCPError,
    ProtocolError,
    TransportError,
)
from ..protocol.jsonrpc import encode
from ..protocol.sse import SSEEvent, SSEParser, resolve_endpoint
from ..protocol.wire import JSON_TYPE, PATH_SSE, SSE_TYPE
from .base import (
    AUTH_STATUSES,
    DEFAULT_CONNECT_TIMEOUT,
    ClientTransport,
    authorized,
    map_transport_errors,
    peer_text,
    read_error_body,
    transport_error,
)
from .http1 import HTTP1Error
from .plain_http import Answer, PlainPoster, cookie_jar

if TYPE_CHECKING:
    from ..client.auth.hook import RequestAuth

__all__ = ["SSETransport"]

logger = logging.getLogger(__name__)

MAX_EVENT_SIZE = 16 * 1024 * 1024
DEFAULT_POST_TIMEOUT = 30.0


class SSETransport(ClientTransport):
    """An SSE stream from ``http://host:port/sse`` plus POSTs to the endpoint it names.

    ``auth`` (optional) authorizes the stream's ``GET`` and every ``POST`` (see
    :func:`~.base.authorized`).
    """

    kind = "sse"
    scheme = "http"
    default_path = PATH_SSE

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        post_timeout: float = DEFAULT_POST_TIMEOUT,
        headers: dict[str, str] | None = None,
        max_event_size: int = MAX_EVENT_SIZE,
        auth: RequestAuth | None = None,
    ) -> None:
        super().__init__(url, connect_timeout=connect_timeout)
        self._headers = headers or {}
        self._post_headers = {hdrs.CONTENT_TYPE: JSON_TYPE, **self._headers}  # every POST's
        self._auth = auth
        self._post_seconds = post_timeout
        self._post_timeout = aiohttp.ClientTimeout(total=post_timeout)
        self._max_event_size = max_event_size
        self._session: aiohttp.ClientSession | None = None
        self._plain: PlainPoster | None = None  # the POSTs' lean way, where it applies
        self._stream: aiohttp.ClientResponse | None = None
        self._parser = SSEParser()
        self._events: deque[SSEEvent] = deque()
        self.endpoint: str | None = None

    async def connect(self) -> None:
        # No overall timeout on the session: the stream lives as long as the connection.
        self._session = session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None), cookie_jar=cookie_jar())
        try:
            with map_transport_errors(f"connect to {self.url}"):
                async with asyncio.timeout(self.connect_timeout):
                    await self._open_stream(session)
        except BaseException:
            await self.close()
            raise
        if self.endpoint is not None:
            self._plain = self._poster(self.endpoint)
        logger.debug("SSE stream %s open, posting to %s", self.url, self.endpoint)

    def _poster(self, endpoint: str) -> PlainPoster | None:
        """The lean way of POSTing to ``endpoint``, where it applies."""
        if self._session is None or not PlainPoster.applies(endpoint, self._auth):
            return None
        return PlainPoster(endpoint, connect_timeout=self.connect_timeout,
                           max_body=self._max_event_size, cookies=self._session.cookie_jar,
                           timeout=self._post_seconds, stream_type=None)

    async def _open_stream(self, session: aiohttp.ClientSession) -> None:
        headers = {hdrs.ACCEPT: SSE_TYPE, hdrs.CACHE_CONTROL: "no-cache", **self._headers}
        if self._auth is None:
            self._stream = stream = await session.get(self.url, headers=headers)
        else:
            self._stream = stream = await authorized(
                self._auth, "GET", self.url,
                lambda extra: session.get(self.url, headers={**headers, **extra}))
        if stream.status != 200:
            status = peer_text(f"HTTP {stream.status} {stream.reason or ''}".rstrip())
            challenge = stream.headers.get(hdrs.WWW_AUTHENTICATE)
            if stream.status in AUTH_STATUSES:
                detail = f" (WWW-Authenticate: {peer_text(challenge)})" if challenge else ""
                raise AuthorizationRequired(f"Cannot connect to {self.url}: {status}{detail}",
                                            stream.status, challenge)
            raise TransportError(f"Cannot connect to {self.url}: {status}")
        if stream.content_type != SSE_TYPE:
            raise ProtocolError(
                f"{self.url} answered '{peer_text(stream.content_type)}', not an event stream"
            )
        early: list[SSEEvent] = []
        while self.endpoint is None:
            event = await self._next_event()
            if event.event == "endpoint":
                self.endpoint = resolve_endpoint(self.url, event.data)
            else:
                # Only the endpoint may come first; keep anything else for receive(), ahead
                # of what followed the endpoint in the same chunk.
                early.append(event)
                if len(early) > 1000:
                    raise ProtocolError(f"{self.url} sent no endpoint event")
        self._events.extendleft(reversed(early))

    async def _next_event(self) -> SSEEvent:
        stream = self._stream
        while not self._events:
            # Not stream.closed: aiohttp sets it at end of body while data may be unread.
            if stream is None:
                raise ConnectionClosed(f"SSE stream from {self.url} is closed")
            try:
                chunk = await stream.content.readany()
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                raise transport_error(f"read from {self.url}", exc, closed=True) from exc
            if not chunk:
                raise ConnectionClosed(f"SSE stream from {self.url} ended")
            self._events.extend(self._parser.feed(chunk))
            if self._parser.buffered > self._max_event_size:
                raise ConnectionClosed(
                    f"SSE stream from {self.url}: event larger than {self._max_event_size} bytes"
                )
        return self._events.popleft()

    async def receive(self) -> bytes | str:
        while True:
            event = await self._next_event()
            if event.event == "message":
                return event.data
            logger.debug("ignoring SSE event %r from %s", event.event, self.url)

    async def send(self, message: dict[str, Any]) -> None:
        session, endpoint = self._session, self.endpoint
        if session is None or endpoint is None or self._stream is None or self._stream.closed:
            raise ConnectionClosed(f"SSE connection to {self.url} is closed")
        headers = self._post_headers
        data = encode(message)
        plain = self._plain
        if plain is not None and plain.url != endpoint:  # the endpoint moved: a new pool
            await plain.close()
            plain = self._plain = self._poster(endpoint)
        response: Answer
        try:
            if plain is not None:
                response = await plain.post(headers, data)
            elif self._auth is None:
                response = await session.post(endpoint, data=data, headers=headers,
                                              timeout=self._post_timeout)
            else:
                response = await authorized(
                    self._auth, "POST", endpoint,
                    lambda extra: session.post(endpoint, data=data,
                                               headers={**headers, **extra},
                                               timeout=self._post_timeout))
            try:
                if 200 <= response.status < 300:
                    await response.read()
                    return
                body = peer_text(await read_error_body(response))
            finally:
                response.release()
        except MCPError:
            raise
        except (TimeoutError, aiohttp.ClientError, HTTP1Error, OSError) as exc:
            raise transport_error(f"send to {endpoint}", exc) from exc
        except ValueError as exc:  # a header aiohttp or the pool will not send
            raise TransportError(f"Cannot send to {endpoint}: {exc}") from None
        detail = f"HTTP {response.status}" + (f": {body}" if body else "")
        if response.status == 404:
            raise ConnectionClosed(f"SSE session at {endpoint} is gone ({detail})")
        if response.status in AUTH_STATUSES:
            challenge = response.headers.get(hdrs.WWW_AUTHENTICATE)
            raise AuthorizationRequired(f"POST {endpoint} refused: {detail}",
                                        response.status, challenge)
        raise TransportError(f"POST {endpoint} refused: {detail}")

    async def close(self) -> None:
        stream, session, plain = self._stream, self._session, self._plain
        self._stream = self._session = self._plain = None
        if stream is not None:
            stream.close()
        if plain is not None:
            await plain.close()
        if session is not None:
            await session.close()
