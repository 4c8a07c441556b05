"""What both HTTP endpoints (``/mcp``; ``/sse`` with ``/message``) share: reading a request
body bounded in size and time, JSON-RPC replies as JSON, opening an event-stream response,
writing a response within the server's ``send_timeout``, and the ``Accept`` rule (media
ranges weighed by their ``q``, as RFC 9110 §12.5.1 says)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
from collections.abc import Awaitable
from typing import Any

from aiohttp import hdrs, web
from aiohttp.helpers import parse_mimetype

from ...protocol.errors import InternalError, InvalidRequest, JSONRPCError
from ...protocol.jsonrpc import dumps, error_response
from ...protocol.sse import RESPONSE_HEADERS
from ...protocol.wire import JSON_TYPE
from ..httplog import LogThrottle
from ..state import STATE

__all__ = [
    "TimedWriter",
    "accepts",
    "body_at_hand",
    "error_reply",
    "goes_out_at_once",
    "json_reply",
    "open_event_stream",
    "read_body",
    "send_within",
    "store_unavailable",
]

logger = logging.getLogger(__name__)
# A flood of clients that do not read would otherwise flood the log as well.
_stalled = LogThrottle(logger, "connections aborted for not reading their responses", limit=1)

# Seconds a connection whose body timed out is read (and what comes dropped) after its 408.
_LINGER = 0.5

# The largest answer written without a deadline when nothing waits in the connection's
# buffer: well under the 64 KiB high-water mark of asyncio's (and uvloop's) transports.
_UNBLOCKED = 16 * 1024

_QVALUE = re.compile(r"0(\.\d{0,3})?|1(\.0{0,3})?")


_JSON_HEADER: dict[str, str] = {hdrs.CONTENT_TYPE: JSON_TYPE}


def json_reply(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response; ``body`` is encoded unless it is bytes already.

    With ``headers`` the content type goes in as a prebuilt header (aiohttp's own
    ``content_type`` path costs more then); without, ``content_type`` is the cheaper one.
    """
    data = body if isinstance(body, bytes) else dumps(body)
    if headers:
        return web.Response(status=status, body=data, headers={**_JSON_HEADER, **headers})
    return web.Response(status=status, body=data, content_type=JSON_TYPE)


def error_reply(status: int, exc: JSONRPCError, request_id: Any = None,
                headers: dict[str, str] | None = None) -> web.Response:
    """``status`` carrying the JSON-RPC error ``exc`` (for ``request_id``, when known)."""
    return json_reply(status, error_response(request_id, exc), headers)


def store_unavailable(request_id: Any = None) -> web.Response:
    """503 for a request that needs the shared session store while it cannot be reached (the
    store logs the outage once; the client retries after ``Retry-After``)."""
    return error_reply(503, InternalError(
        "Service Unavailable: the session store cannot be reached; retry later"), request_id,
        {"Retry-After": "1"})


def body_at_hand(request: web.Request, limit: int) -> bytes | web.Response | None:
    """:func:`read_body` when it need not wait: the body that came whole with the head (as
    small bodies do), or the 413 of one declared or found over ``limit``; None when the rest
    must be awaited (then :func:`read_body` does). One coroutine less for every small POST."""
    size = request.content_length
    if size is not None and size > limit:
        return _too_large(size, limit)
    content = request.content
    if content.is_eof():  # it came with the head: no deadline to set
        whole = content.read_nowait()
        return _too_large(len(whole), limit) if len(whole) > limit else whole
    return None


async def read_body(request: web.Request, limit: int) -> bytes | web.Response:
    """The request body, or a response carrying a JSON-RPC error: 413 when it exceeds
    ``limit``, 408 when it has not all arrived within the server's ``body_timeout``.

    A declared ``Content-Length`` over the limit is refused before a byte is read; a body
    without one is read only until it passes the limit. The deadline counts from the end of
    the request head (whose own deadline is the connection guard's), so a peer trickling a
    large body a byte at a time holds its connection that long at most; the 408 closes it.
    """
    at_hand = body_at_hand(request, limit)
    if at_hand is not None:
        return at_hand
    size = request.content_length
    body = bytearray()
    timeout = request.app[STATE].settings.body_timeout
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.content.iter_any():
                body += chunk
                if len(body) > limit:
                    return _too_large(len(body), limit)
    except TimeoutError:
        response = error_reply(408, InvalidRequest(
            f"Request Timeout: the body did not arrive within {timeout:g} s "
            f"({len(body)} of {size if size is not None else 'unknown'} bytes)"))
        # Answered and closed now: aiohttp would otherwise linger, reading the trickle on for
        # its own lingering time. Ours is short: the answer is followed by the end of our side
        # (FIN), and what the peer still sends is read and dropped for _LINGER seconds before
        # the connection closes. Closed at once, with the peer's bytes unread, it would be
        # reset, and a reset can destroy the answer before the peer has read it.
        response.force_close()
        await response.prepare(request)
        await response.write_eof()
        transport = request.transport
        if transport is not None:
            if transport.can_write_eof():
                transport.write_eof()
            with contextlib.suppress(TimeoutError, ConnectionError, web.RequestPayloadError):
                async with asyncio.timeout(_LINGER):
                    while await request.content.readany():
                        pass
            transport.close()
        return response
    return bytes(body)


def _too_large(size: int, limit: int) -> web.Response:
    return error_reply(413, InvalidRequest(
        f"Message too large: {size} bytes exceeds the limit of {limit} bytes"))


async def open_event_stream(request: web.Request,
                            headers: dict[str, str] | None = None) -> web.StreamResponse:
    """A prepared ``text/event-stream`` response (with ``headers`` added), ready to write."""
    response = web.StreamResponse(headers={**RESPONSE_HEADERS, **(headers or {})})
    await response.prepare(request)
    return response


class TimedWriter:
    """Writes to one prepared response, each write bounded by the server's ``send_timeout``.

    aiohttp's ``write`` returns once the transport's buffer drains below its high-water
    mark; a client that never reads keeps it full, and the write (with the handler, the
    connection slot and every byte buffered for it) would wait forever. Past the deadline
    the connection is aborted, which frees the buffer, and the write raises
    ``ConnectionResetError`` like any write to a client that went away.
    """

    __slots__ = ("_request", "_response", "_timeout")

    def __init__(self, request: web.Request, response: web.StreamResponse) -> None:
        self._request = request
        self._response = response
        self._timeout = request.app[STATE].settings.send_timeout

    async def write(self, data: bytes) -> None:
        """Write ``data``; ``ConnectionResetError`` if it did not go out within the deadline."""
        await self._within(self._response.write(data))

    async def write_eof(self) -> None:
        """End the response, within the deadline too."""
        await self._within(self._response.write_eof())

    async def _within(self, write: Awaitable[None]) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await write
        except TimeoutError:
            _abort(self._request, self._timeout)
            raise ConnectionResetError("the client does not read its response") from None


def goes_out_at_once(request: web.Request, response: web.StreamResponse) -> bool:
    """Whether aiohttp may send ``response`` itself once the handler returns: it is already
    sent (a stream), or it is a small answer into an empty buffer, which cannot fill it
    past its high-water mark, so writing it cannot wait on the client and needs no deadline.
    Anything else goes through :func:`send_within`."""
    if response.prepared:
        return True
    # By exact type: isinstance against aiohttp's responses (mappings, so ABCs) runs Python
    # code; a subclass of Response takes the timed path.
    if type(response) is not web.Response:
        return False
    body = response.body
    transport = request.transport
    # aiohttp writes it right after the handler returns, before this connection's next
    # request is read (one at a time), so nothing else can fill the buffer in between.
    return (isinstance(body, bytes) and len(body) <= _UNBLOCKED and transport is not None
            and not transport.get_write_buffer_size())


async def send_within(request: web.Request, response: web.StreamResponse
                      ) -> web.StreamResponse:
    """Send a handler's ``response`` now, within the server's ``send_timeout``, rather than
    leave it to aiohttp after the handler returns (where nothing bounds the wait for a client
    that does not read, be it a big JSON reply or the hundredth small one pipelined unread).
    Past the deadline the connection is aborted. The response is returned either way (aiohttp
    finds it sent, or its connection gone); one that :func:`goes_out_at_once` is left to
    aiohttp, which sends it as it would have here."""
    if goes_out_at_once(request, response):
        return response
    timeout = request.app[STATE].settings.send_timeout
    try:
        async with asyncio.timeout(timeout):
            await response.prepare(request)
            await response.write_eof()
    except TimeoutError:
        _abort(request, timeout)
    except ConnectionResetError:
        logger.debug("%s %s: client went away before its response", request.method,
                     request.path)
    return response


def _abort(request: web.Request, timeout: float) -> None:
    """Drop the connection of a client that did not take its response within ``timeout``."""
    _stalled.log(logging.WARNING, "%s %s from %s: the response was not taken within %g s "
                 "(the client does not read); connection aborted", request.method,
                 request.path, request.remote or "?", timeout)
    if request.transport is not None:
        request.transport.abort()


def _quality(params: Any) -> float | None:
    """The ``q`` of a media range (1 without one); None when it is no valid qvalue."""
    q = params.get("q")
    if q is None:
        return 1.0
    return float(q) if _QVALUE.fullmatch(q.strip()) else None


@functools.lru_cache(maxsize=256)
def accepts(header: str | None, media_type: str) -> bool:
    """Whether an ``Accept`` header admits ``media_type`` (``type/subtype``).

    The most specific range that matches decides (``type/subtype`` over ``type/*`` over
    ``*/*``), and it admits only with a ``q`` above 0: ``application/json;q=0`` refuses
    JSON even when ``*/*`` is listed too. A range whose ``q`` is no qvalue is ignored; no
    header, or an empty one, admits nothing (MCP clients must list what they take).
    Cached: a client sends the same header with every request.
    """
    wanted_type, _, wanted_sub = media_type.lower().partition("/")
    best: tuple[int, float] | None = None  # (specificity, q) of the best match so far
    for part in (header or "").split(","):
        if not part.strip():
            continue
        parsed = parse_mimetype(part)
        kind, sub = parsed.type, parsed.subtype
        if kind == "*" and sub == "*":
            specificity = 0
        elif kind == wanted_type and sub == "*":
            specificity = 1
        elif kind == wanted_type and sub == wanted_sub:
            specificity = 2
        else:
            continue
        q = _quality(parsed.parameters)
        if q is None:
            continue
        if best is None or specificity > best[0] or (specificity == best[0] and q < best[1]):
            best = (specificity, q)
    return best is not None and best[1] > 0
