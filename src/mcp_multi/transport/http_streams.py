"""The event streams of the Streamable HTTP client: a request's stream and the session's GET
stream, read into the transport's inbox and reconnected by one rule.

Mixed into :class:`~mcp_multi.transport.streamable_http.StreamableHTTPTransport`.

Reconnection (both streams): when a stream ends, the next attempt waits
:func:`reconnect_delay` (the server's ``retry``, else :data:`DEFAULT_RETRY_MS`; never less
than :data:`MIN_RETRY_MS`, so ``retry: 0`` means the same everywhere; doubled for each
further attempt in a row that brought nothing new, up to :data:`MAX_RETRY_MS`) and, if the stream
gave an event id, sends it as ``Last-Event-ID``. A stream that delivered a message or a new
event id was worth it; after :data:`MAX_RESUME_ATTEMPTS` attempts in a row that were not, the
stream is given up:

- a request's stream cannot be resumed without an event id at all, and its request fails
  alone (:class:`RequestFailed`);
- the GET stream is reopened afresh when it gave no id, but a server that keeps ending it
  empty is not reconnected forever: the transport logs that it gives the stream up and goes
  on with POSTs (their answers do not need it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

import aiohttp

from ..protocol.errors import (
    ConnectionClosed,
    MCPError,
    ProtocolError,
    RequestFailed,
    TransportError,
)
from ..protocol.jsonrpc import RequestId, is_request_id, loads
from ..protocol.sse import SSEParser
from ..protocol.wire import LAST_EVENT_ID_HEADER, SSE_TYPE
from .base import describe_error
from .http1 import HTTP1Error

if TYPE_CHECKING:
    from .plain_http import Answer

__all__ = [
    "DEFAULT_RETRY_MS",
    "MAX_RESUME_ATTEMPTS",
    "MAX_RETRY_MS",
    "MIN_RETRY_MS",
    "EventStreams",
    "Inbox",
    "RequestStream",
    "reconnect_delay",
]

logger = logging.getLogger("mcp_multi.transport.streamable_http")

DEFAULT_RETRY_MS = 1000  # when the server names no ``retry``
MIN_RETRY_MS = 100  # ``retry: 0`` (or 5) is not a licence to reconnect in a busy loop
MAX_RETRY_MS = 30_000
MAX_RESUME_ATTEMPTS = 3  # reconnections in a row that bring nothing
GET_STREAM_WAIT = 2.0  # at most, for the server's yes or no to the GET stream

Inbox = asyncio.Queue["bytes | str | MCPError | None"]


def reconnect_delay(retry_ms: int | None, fruitless: int = 0) -> float:
    """Seconds to wait before reconnecting a stream.

    Args:
        retry_ms: the last ``retry`` the server sent on the stream, if any.
        fruitless: streams in a row that ended bringing nothing new (0 after one that did);
            from the second on, each doubles the wait.
    """
    base = DEFAULT_RETRY_MS if retry_ms is None else max(retry_ms, MIN_RETRY_MS)
    doublings = min(max(fruitless - 1, 0), 16)
    return float(min(base << doublings, MAX_RETRY_MS)) / 1000


class RequestStream:
    """The event stream answering one request: the task reading it and the HTTP response it
    reads now (a resumed stream is a new response). Abandoning it closes that response even
    when the task never got to run."""

    __slots__ = ("response", "task")

    def __init__(self, response: Answer) -> None:
        self.response = response
        self.task: asyncio.Task[None] | None = None

    def abandon(self) -> None:
        if self.task is not None:
            self.task.cancel()
        self.response.close()


class EventStreams:
    """Reading and reconnecting event streams (a mixin of the Streamable HTTP transport)."""

    url: str
    connect_timeout: float
    _inbox: Inbox
    _max_message_size: int
    _streams: dict[RequestId, RequestStream]
    _listener: asyncio.Task[None] | None
    _listening: asyncio.Event

    if TYPE_CHECKING:
        @property
        def modern(self) -> bool: ...

        def _check_open(self) -> aiohttp.ClientSession: ...

        async def _request(self, method: str, headers: dict[str, str],
                           **options: object) -> aiohttp.ClientResponse: ...

        def _base_headers(self) -> dict[str, str]: ...

        def _mapped(self, what: str) -> contextlib.AbstractContextManager[None]: ...

        def _shut(self, reason: str) -> None: ...

    async def _pump(self, response: Answer, parser: SSEParser,
                    until: RequestId | None) -> tuple[bool, int]:
        """Move the events of one response into the inbox until it ends, or until the
        response to ``until`` went by; return whether it did, and how many messages came."""
        delivered = 0
        try:
            while chunk := await response.content.readany():
                for event in parser.feed(chunk):
                    if event.event != "message" or not event.data.strip():
                        continue  # a priming event (an id, no data) or another type
                    self._inbox.put_nowait(event.data)
                    delivered += 1
                    if until is not None and _answers(event.data, until):
                        return True, delivered
                if parser.buffered > self._max_message_size:
                    raise ProtocolError(f"{self.url} sent an event over "
                                        f"{self._max_message_size} bytes")
        except (aiohttp.ClientError, HTTP1Error, OSError) as exc:
            logger.debug("stream from %s broke: %s", self.url, describe_error(exc))
        return False, delivered

    async def _read_stream(self, response: Answer, last_event_id: str,
                           until: RequestId | None) -> tuple[bool, bool, SSEParser]:
        """One response read to its end: (answered ``until``, brought anything new, parser)."""
        parser = SSEParser()
        parser.last_event_id = last_event_id
        try:
            answered, delivered = await self._pump(response, parser, until)
        finally:
            response.release()
        return answered, bool(delivered) or parser.last_event_id != last_event_id, parser

    async def _reconnect(self, last_event_id: str) -> aiohttp.ClientResponse | None:
        """``GET`` the stream again, after ``last_event_id`` when there is one; ``None`` if
        the server will not give it. Raises :class:`TransportError` when it cannot be
        reached."""
        headers = self._base_headers()
        if last_event_id:
            headers[LAST_EVENT_ID_HEADER] = last_event_id
        with self._mapped(f"reconnect to {self.url}"):
            response = await self._request("GET", headers)
        if response.status == 200 and response.content_type == SSE_TYPE:
            return response
        if last_event_id:
            logger.info("%s cannot resume the stream after %r: HTTP %s", self.url,
                        last_event_id, response.status)
        else:
            logger.debug("%s offers no GET stream any more (HTTP %s)", self.url,
                         response.status)
        response.release()
        return None

    async def _follow(self, request_id: RequestId, stream: RequestStream) -> None:
        """Read one request's event stream to its response, resuming it if it breaks."""
        response = stream.response
        last_event_id, retry_ms, fruitless = "", None, 0
        why = "its event stream ended before the response"
        try:
            while True:
                answered, fresh, parser = await self._read_stream(response, last_event_id,
                                                                  request_id)
                if answered:
                    return
                fruitless = 0 if fresh else fruitless + 1
                last_event_id = parser.last_event_id
                retry_ms = parser.retry if parser.retry is not None else retry_ms
                if self.modern or not last_event_id or fruitless > MAX_RESUME_ATTEMPTS:
                    break
                logger.info("%s: stream of request %r broke; resuming after %r", self.url,
                            request_id, last_event_id)
                await asyncio.sleep(reconnect_delay(retry_ms, fruitless))
                resumed = await self._reconnect(last_event_id)
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
        """The session's ``GET`` stream, reconnected whenever it ends (module docstring)."""
        try:
            with self._mapped(f"open the GET stream of {self.url}"):
                response = await self._request("GET", self._base_headers())
            self._listening.set()
            if response.status != 200 or response.content_type != SSE_TYPE:
                logger.debug("%s offers no GET stream (HTTP %s)", self.url, response.status)
                response.release()
                return
            await self._keep_listening(response)
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

    async def _keep_listening(self, response: aiohttp.ClientResponse) -> None:
        last_event_id, retry_ms, fruitless = "", None, 0
        while True:
            _, fresh, parser = await self._read_stream(response, last_event_id, None)
            fruitless = 0 if fresh else fruitless + 1
            last_event_id = parser.last_event_id
            retry_ms = parser.retry if parser.retry is not None else retry_ms
            if fruitless > MAX_RESUME_ATTEMPTS:
                logger.warning("%s: the GET stream ended %d times in a row with nothing new; "
                               "giving it up (requests go on without it)", self.url, fruitless)
                return
            logger.debug("%s: GET stream ended; reconnecting", self.url)
            await asyncio.sleep(reconnect_delay(retry_ms, fruitless))
            reopened = await self._reconnect(last_event_id)
            if reopened is None:
                return
            response = reopened


def _answers(data: str, request_id: RequestId) -> bool:
    """Whether the message ``data`` is the response (or error) to ``request_id``."""
    try:
        message = loads(data)
    except MCPError:
        return False
    return (isinstance(message, dict) and is_request_id(message.get("id"))
            and message.get("id") == request_id
            and ("result" in message or "error" in message))

