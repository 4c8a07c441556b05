"""Streamable HTTP client transport (protocol 2025-03-26 and later, 2026-07-28 included).

Every message we send is one ``POST`` to the MCP endpoint. The server answers a request with
``application/json`` (the response) or ``text/event-stream`` (notifications about the request,
then its response); a notification gets ``202 Accepted``. Whatever the server sends, on any
stream, goes into one inbox that :meth:`receive` reads, so the session layer sees the same
flow of frames as over a WebSocket.

Handshake era (2025-03-26 … 2025-11-25), per the 2025-11-25 transport page:

- the ``Mcp-Session-Id`` of the ``initialize`` response goes on every later request, with
  ``MCP-Protocol-Version`` once :meth:`negotiated` says which;
- after ``notifications/initialized`` we open the ``GET`` stream of server-initiated messages
  (``405`` means the server offers none) and keep it open: when it ends we wait the ``retry``
  the server asked for and reconnect with ``Last-Event-ID``;
- a request's event stream that ends before its response is resumed the same way, by a
  ``GET`` with ``Last-Event-ID`` after ``retry``; a stream that gave no event id cannot be
  resumed and its request fails alone (:class:`RequestFailed`);
- ``404`` to a request that named our session means the server forgot it:
  :class:`SessionExpired`, and the session layer initializes again;
- :meth:`close` ends the session with ``DELETE``.

2026-07-28 (after :meth:`negotiated` names it, and for the ``server/discover`` probe): no
session, ``GET`` or ``DELETE``; each request carries ``MCP-Protocol-Version``, ``Mcp-Method``
and ``Mcp-Name`` mirrored from its own body; streams are not resumed; cancelling a request
closes its response stream (the spec's signal on this transport) instead of POSTing
``notifications/cancelled``.

HTTP errors: an error status whose body is a JSON-RPC error is the request's answer (modern
servers answer ``-32022``, ``-32020`` and ``-32601`` so); any other error status raises
:class:`HTTPStatusError`. Redirects are not followed (the message names the new location).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import aiohttp

from ..protocol import methods
from ..protocol.envelope import mirror_headers
from ..protocol.errors import (
    ConnectionClosed,
    HTTPStatusError,
    JSONRPCError,
    MCPError,
    ProtocolError,
    RequestFailed,
    SessionExpired,
    TransportError,
)
from ..protocol.jsonrpc import RequestId, dumps, encode, loads
from ..protocol.sse import SSEParser
from ..protocol.versions import is_modern
from .base import (
    DEFAULT_CONNECT_TIMEOUT,
    ClientTransport,
    describe_error,
    map_transport_errors,
    one_line,
)

__all__ = ["StreamableHTTPTransport"]

logger = logging.getLogger(__name__)

MAX_MESSAGE_SIZE = 16 * 1024 * 1024
DEFAULT_RETRY_MS = 1000  # when the server names no ``retry``
MAX_RESUME_ATTEMPTS = 3  # reconnections in a row that bring nothing
DELETE_TIMEOUT = 5.0
GET_STREAM_WAIT = 2.0  # at most, for the server's yes or no to the GET stream
SESSION_HEADER = "Mcp-Session-Id"
VERSION_HEADER = "MCP-Protocol-Version"
_ACCEPT = "application/json, text/event-stream"

Inbox = asyncio.Queue["bytes | str | MCPError | None"]


class _RequestStream:
    """The event stream answering one request: the task reading it and the HTTP response it
    reads now (a resumed stream is a new response). Abandoning it closes that response even
    when the task never got to run."""

    __slots__ = ("response", "task")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.task: asyncio.Task[None] | None = None

    def abandon(self) -> None:
        if self.task is not None:
            self.task.cancel()
        self.response.close()


class StreamableHTTPTransport(ClientTransport):
    """POSTs to one MCP endpoint, ``http://host:port/mcp`` by default.

    Args:
        url: the MCP endpoint.
        connect_timeout: seconds to open a TCP connection (and, up to
            :data:`GET_STREAM_WAIT`, to wait for the ``GET`` stream's answer after the
            handshake, so the server's stream is open before the first call).
        headers: extra headers on every HTTP request (``Authorization``, ...).
        max_message_size: the largest JSON body or SSE event accepted, in bytes.
    """

    kind = "http"
    era_probe = True

    @classmethod
    def url_for(cls, host: str, port: int) -> str:
        return f"http://{host}:{port}/mcp"

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        headers: dict[str, str] | None = None,
        max_message_size: int = MAX_MESSAGE_SIZE,
    ) -> None:
        super().__init__(url, connect_timeout=connect_timeout)
        self._headers = dict(headers or {})
        self._max_message_size = max_message_size
        self._http: aiohttp.ClientSession | None = None
        self._inbox: Inbox = asyncio.Queue()
        self._closed: str | None = None
        self._streams: dict[RequestId, _RequestStream] = {}
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self.session_id: str | None = None
        self.protocol_version: str | None = None
        self._expired = False  # the server forgot our session; only initialize may go out

    @property
    def modern(self) -> bool:
        """Whether the negotiated protocol is the stateless 2026-07-28 one."""
        return self.protocol_version is not None and is_modern(self.protocol_version)

    # -- lifecycle -------------------------------------------------------------------

    async def connect(self) -> None:
        # HTTP has nothing to open: the first POST (the handshake) meets the server.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout)
        self._http = aiohttp.ClientSession(timeout=timeout)

    def negotiated(self, protocol_version: str) -> None:
        self.protocol_version = protocol_version

    async def close(self) -> None:
        if self._closed is not None and self._http is None:
            return
        self._closed = self._closed or "closed by the client"
        streams = list(self._streams.values())
        self._streams.clear()
        for stream in streams:
            stream.abandon()
        tasks = [s.task for s in streams if s.task is not None]
        if self._listener is not None:
            self._listener.cancel()
            tasks.append(self._listener)
        self._listener = None
        await asyncio.gather(*tasks, return_exceptions=True)
        http, self._http = self._http, None
        if http is not None:
            if self.session_id is not None and not self.modern:
                await self._delete_session(http)
            await http.close()
        self._inbox.put_nowait(None)

    async def _delete_session(self, http: aiohttp.ClientSession) -> None:
        try:
            async with asyncio.timeout(DELETE_TIMEOUT), http.delete(
                    self.url, headers=self._base_headers(), allow_redirects=False) as response:
                if response.status not in (200, 202, 204, 404, 405):
                    logger.info("DELETE %s: HTTP %s", self.url, response.status)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            logger.info("DELETE %s failed: %s", self.url, describe_error(exc))
        self.session_id = None

    # -- receiving -------------------------------------------------------------------

    async def receive(self) -> bytes | str:
        item = await self._inbox.get()
        if item is None:
            self._inbox.put_nowait(None)  # every later receive() is told too
            raise ConnectionClosed(f"Streamable HTTP to {self.url}: {self._closed}")
        if isinstance(item, MCPError):
            raise item
        return item

    def _shut(self, reason: str) -> None:
        """The server is gone: end :meth:`receive` (the session layer then closes us)."""
        if self._closed is None:
            self._closed = reason
            self._inbox.put_nowait(None)

    # -- sending ---------------------------------------------------------------------

    def _base_headers(self) -> dict[str, str]:
        headers = {"Accept": _ACCEPT, **self._headers}
        if self.protocol_version is not None:
            headers[VERSION_HEADER] = self.protocol_version
        if self.session_id is not None and not self.modern:
            headers[SESSION_HEADER] = self.session_id
        return headers

    def _headers_for(self, message: dict[str, Any]) -> dict[str, str]:
        headers = self._base_headers()
        headers["Content-Type"] = "application/json"
        if message.get("method") == methods.INITIALIZE:
            # The handshake negotiates the version: no earlier answer may leak onto it.
            headers.pop(VERSION_HEADER, None)
        headers.update(mirror_headers(message))
        return headers

    def _check_open(self) -> aiohttp.ClientSession:
        if self._http is None or self._closed is not None:
            raise ConnectionClosed(f"Streamable HTTP to {self.url} is closed"
                                   + (f" ({self._closed})" if self._closed else ""))
        return self._http

    @contextlib.contextmanager
    def _mapped(self, what: str) -> Iterator[None]:
        with map_transport_errors(what):
            try:
                yield
            except aiohttp.ClientConnectorError as exc:
                raise TransportError(
                    f"Cannot connect to {self.url}: {describe_error(exc)}") from exc

    async def send(self, message: dict[str, Any]) -> None:
        http = self._check_open()
        method = message.get("method")
        request_id: RequestId | None = message.get("id") if method is not None else None
        if method == methods.CANCELLED and self._abandon(message):
            return
        if self._expired and method != methods.INITIALIZE:
            raise SessionExpired(f"{self.url} no longer knows our session; initialize again")
        with self._mapped(f"send to {self.url}"):
            response = await http.post(self.url, data=encode(message),
                                       headers=self._headers_for(message),
                                       allow_redirects=False)
        keep = False  # whether a stream reader took the response over
        try:
            keep = await self._answer(message, method, request_id, response)
        finally:
            if not keep:
                response.release()
        if method == methods.INITIALIZED and self.session_id is not None:
            await self._start_listening()

    async def _answer(self, message: dict[str, Any], method: Any, request_id: RequestId | None,
                      response: aiohttp.ClientResponse) -> bool:
        """Handle the HTTP answer to one POST; ``True`` when a stream reader took it over."""
        status = response.status
        if method == methods.INITIALIZE and 200 <= status < 300:
            self.session_id = response.headers.get(SESSION_HEADER) or None
            self._expired = False
        if status >= 300:
            await self._refused(message, request_id, response)
            return False
        if request_id is None:  # a notification or a response: 202, nothing to read
            return False
        if status in (202, 204):
            raise ProtocolError(f"{self.url} answered request {method} with HTTP {status} "
                                "and no response")
        content_type = response.content_type
        if content_type == "application/json":
            with self._mapped(f"read from {self.url}"):
                body = await self._read_body(response)
            if not body.strip():
                raise ProtocolError(f"{self.url} answered {method} with an empty body")
            try:
                # This body answers exactly this request: one that is not JSON fails it now
                # (a frame the session cannot read is otherwise dropped, and it would wait
                # for its timeout).
                loads(body)
            except JSONRPCError as exc:
                raise ProtocolError(f"{self.url} answered {method} with a body that is not "
                                    f"JSON ({exc.message})") from None
            self._inbox.put_nowait(body)
            return False
        if content_type == "text/event-stream":
            old = self._streams.pop(request_id, None)
            if old is not None:
                old.abandon()
            stream = self._streams[request_id] = _RequestStream(response)
            stream.task = asyncio.create_task(self._follow(request_id, stream),
                                              name=f"mcp-http-stream-{request_id}")
            return True
        raise ProtocolError(f"{self.url} answered {method} with {content_type!r}, "
                            "neither JSON nor an event stream")

    async def _refused(self, message: dict[str, Any], request_id: RequestId | None,
                       response: aiohttp.ClientResponse) -> None:
        """An HTTP error status: the JSON-RPC error in its body is the answer, else raise."""
        status = response.status
        with self._mapped(f"read from {self.url}"):
            body = await self._read_body(response)
        if status == 404 and SESSION_HEADER in response.request_info.headers:
            self.session_id = None
            self._expired = True
            self._stop_listening()
            raise SessionExpired(f"{self.url} no longer knows our session (HTTP 404)")
        if request_id is not None and response.content_type == "application/json":
            try:
                answer = loads(body)
            except MCPError:
                answer = None
            if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
                # A modern server rejects before it reads the id: the answer is to this request.
                self._inbox.put_nowait(dumps({**answer, "id": request_id}))
                return
        if 300 <= status < 400:
            location = response.headers.get("Location", "")
            raise HTTPStatusError(f"{self.url} redirects (HTTP {status}) to {location!r}; "
                                  "use that URL if it is the server", status)
        text = one_line(body.decode("utf-8", "replace"))[:200]
        reason = f"HTTP {status} {response.reason or ''}".rstrip()
        raise HTTPStatusError(f"POST {self.url} refused: {reason}"
                              + (f": {text}" if text else ""), status)

    async def _read_body(self, response: aiohttp.ClientResponse) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_any():
            size += len(chunk)
            if size > self._max_message_size:
                raise ProtocolError(f"{self.url} sent a body over {self._max_message_size} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _abandon(self, note: dict[str, Any]) -> bool:
        """A ``notifications/cancelled`` we are about to send: close the request's stream,
        and say whether the notification must stay unsent (2026-07-28 cancels by closing)."""
        params = note.get("params")
        request_id = params.get("requestId") if isinstance(params, dict) else None
        stream = self._streams.pop(request_id, None) if request_id is not None else None
        if stream is not None:
            stream.abandon()
        return self.modern

    # -- event streams ---------------------------------------------------------------

    async def _pump(self, response: aiohttp.ClientResponse, parser: SSEParser,
                    until: RequestId | None) -> bool:
        """Move the events of one response into the inbox until it ends, or until the
        response to ``until`` went by (then ``True``)."""
        try:
            while chunk := await response.content.readany():
                for event in parser.feed(chunk):
                    if event.event != "message" or not event.data.strip():
                        continue  # a priming event (an id, no data) or another type
                    self._inbox.put_nowait(event.data)
                    if until is not None and _answers(event.data, until):
                        return True
                if parser.buffered > self._max_message_size:
                    raise ProtocolError(f"{self.url} sent an event over "
                                        f"{self._max_message_size} bytes")
        except (aiohttp.ClientError, OSError) as exc:
            logger.debug("stream from %s broke: %s", self.url, describe_error(exc))
        return False

    async def _reconnect(self, last_event_id: str,
                         retry_ms: int | None) -> aiohttp.ClientResponse | None:
        """Wait ``retry`` then ``GET`` the stream after ``last_event_id``; ``None`` if the
        server cannot resume it. Raises :class:`TransportError` when it cannot be reached."""
        await asyncio.sleep((retry_ms if retry_ms is not None else DEFAULT_RETRY_MS) / 1000)
        http = self._check_open()
        headers = {**self._base_headers(), "Last-Event-ID": last_event_id}
        with self._mapped(f"reconnect to {self.url}"):
            response = await http.get(self.url, headers=headers, allow_redirects=False)
        if response.status == 200 and response.content_type == "text/event-stream":
            return response
        logger.info("%s cannot resume stream at %r: HTTP %s", self.url, last_event_id,
                    response.status)
        response.release()
        return None

    async def _follow(self, request_id: RequestId, stream: _RequestStream) -> None:
        """Read one request's event stream to its response, resuming it if it breaks."""
        response = stream.response
        last_event_id, retry_ms, fruitless = "", None, 0
        why = "its event stream ended before the response"
        try:
            while True:
                parser = SSEParser()
                parser.last_event_id = last_event_id
                try:
                    if await self._pump(response, parser, request_id):
                        return
                finally:
                    response.release()
                if parser.last_event_id != last_event_id:
                    fruitless = 0
                last_event_id = parser.last_event_id
                retry_ms = parser.retry if parser.retry is not None else retry_ms
                fruitless += 1
                if self.modern or not last_event_id or fruitless > MAX_RESUME_ATTEMPTS:
                    break
                logger.info("%s: stream of request %r broke; resuming after %r", self.url,
                            request_id, last_event_id)
                resumed = await self._reconnect(last_event_id, retry_ms)
                if resumed is None:
                    why = "its event stream ended and the server cannot resume it"
                    break
                response = stream.response = resumed
        except MCPError as exc:
            why = str(exc)
        except asyncio.CancelledError:
            return
        finally:
            if self._streams.get(request_id) is stream:
                del self._streams[request_id]
        self._inbox.put_nowait(RequestFailed(f"{self.url}: request {request_id!r} failed: {why}",
                                             request_id))

    async def _start_listening(self) -> None:
        """Open the ``GET`` stream and wait (a little) until the server said yes or no."""
        self._stop_listening()
        self._listening.clear()
        self._listener = asyncio.create_task(self._listen(), name="mcp-http-get-stream")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(self.connect_timeout, GET_STREAM_WAIT)):
                await self._listening.wait()

    def _stop_listening(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None and listener is not asyncio.current_task():
            listener.cancel()

    async def _listen(self) -> None:
        """The session's ``GET`` stream, reconnected after ``retry`` whenever it ends."""
        last_event_id, retry_ms = "", None
        try:
            http = self._check_open()
            with self._mapped(f"open the GET stream of {self.url}"):
                response = await http.get(self.url, headers=self._base_headers(),
                                          allow_redirects=False)
            self._listening.set()
            while True:
                if response.status != 200 or response.content_type != "text/event-stream":
                    logger.debug("%s offers no GET stream (HTTP %s)", self.url, response.status)
                    response.release()
                    return
                parser = SSEParser()
                parser.last_event_id = last_event_id
                try:
                    await self._pump(response, parser, None)
                finally:
                    response.release()
                last_event_id = parser.last_event_id
                retry_ms = parser.retry if parser.retry is not None else retry_ms
                logger.debug("%s: GET stream ended; reconnecting", self.url)
                if last_event_id:
                    reopened = await self._reconnect(last_event_id, retry_ms)
                    if reopened is None:
                        return
                    response = reopened
                else:
                    await asyncio.sleep((retry_ms or DEFAULT_RETRY_MS) / 1000)
                    with self._mapped(f"reopen the GET stream of {self.url}"):
                        response = await self._check_open().get(
                            self.url, headers=self._base_headers(), allow_redirects=False)
        except ConnectionClosed:
            return
        except TransportError as exc:
            if not self._listening.is_set():
                logger.debug("%s: no GET stream: %s", self.url, exc)
            elif isinstance(exc.__cause__, aiohttp.ClientConnectorError):
                # The stream was up and now nothing listens at the address: the server is gone.
                self._shut(f"server gone ({exc})")
            else:
                logger.warning("%s: lost the GET stream: %s", self.url, exc)
        except MCPError as exc:
            logger.warning("%s: GET stream failed: %s", self.url, exc)
        finally:
            self._listening.set()


def _answers(data: str, request_id: RequestId) -> bool:
    """Whether the message ``data`` is the response (or error) to ``request_id``."""
    try:
        message = loads(data)
    except MCPError:
        return False
    return (isinstance(message, dict) and message.get("id") == request_id
            and ("result" in message or "error" in message))
