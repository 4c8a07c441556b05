"""How one call travels: a driver sends the run's request over one open session and says
how it went (``None`` for success, else the kind of error, see :mod:`.outcome`).

:class:`ClientDriver` works for every transport and era: it is
:meth:`MCPConnection.request <mcp_multi.client.connection.MCPConnection.request>` itself.
:class:`HTTPDriver` is the lean path for Streamable HTTP over plain ``http://``: it takes the
headers and the body the connection would send (session id, protocol version, the
2026-07-28 envelope and its ``Mcp-Method``/``Mcp-Name`` mirror), encodes them once, and for
each call only writes the new id into the body before handing the bytes to the HTTP/1.1
pool of :mod:`~mcp_multi.transport.http1`. :func:`driver_for` picks one.
"""

from __future__ import annotations

import itertools
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson

from ...protocol.errors import MCPError
from ...protocol.sse import SSEParser
from ...protocol.wire import JSON_TYPE, SSE_TYPE
from ...transport import StreamableHTTPTransport
from ...transport.http1 import (
    ConnectionLost,
    HTTP1Error,
    HTTP1Pool,
    HTTP1Response,
    header_lines,
    media_type,
)
from ...transport.plain_http import PlainPoster
from ..connection import MCPConnection
from .outcome import (
    CONNECTION_LOST,
    OTHER,
    TIMEOUT,
    TOOL_ERROR,
    error_kind,
    http_kind,
    jsonrpc_kind,
)
from .plan import Call

__all__ = ["ClientDriver", "Driver", "HTTPDriver", "driver_for"]

# The statuses the client reports as refusals whatever the body says (credentials wanted).
_AUTH_STATUSES = (401, 403)


class Driver(Protocol):
    """Sends the run's request; one driver per session, shared by its workers."""

    async def call(self, timeout: float) -> str | None:
        """Send one request and wait for its answer; ``None`` or the error's kind."""
        ...

    async def close(self) -> None:
        """Free what the driver holds (not the session)."""
        ...


class ClientDriver:
    """Every call through :meth:`MCPConnection.request` (any transport, any era)."""

    __slots__ = ("_connection", "_method", "_params", "_tool")

    def __init__(self, connection: MCPConnection, call: Call) -> None:
        self._connection = connection
        self._method = call.method
        self._params = call.params
        self._tool = call.tool is not None

    async def call(self, timeout: float) -> str | None:
        try:
            result = await self._connection.request(self._method, self._params,
                                                    timeout=timeout)
        except Exception as exc:  # whatever it is, it is this call's outcome, not a crash
            return error_kind(exc)
        if self._tool and result.get("isError") is True:
            return TOOL_ERROR
        return None if isinstance(result, dict) else OTHER

    async def close(self) -> None:
        return None


class HTTPDriver:
    """Calls as the connection's Streamable HTTP transport would POST them, through a lean
    HTTP/1.1 pool of at most ``limit`` connections (see the module docstring).

    The answer is read as the transport reads it: an error status is the JSON-RPC error its
    body holds (401 and 403 are refusals whatever the body), else ``http <status>``; a JSON
    body is the response; an event stream is read to the response bearing the call's id
    (notifications before it are skipped).

    A 404 to a call made in a session (2025-11-25 and before) says the server forgot it: the
    call counts as ``http 404``, and the connection opens a new session, as its transport
    would (once for all the calls that went out in the old one); the calls after it carry
    the new session's id. When no new session opens, the call counts as a lost connection,
    and the engine opens the connection again as it does after any (see :mod:`.engine`).
    """

    __slots__ = ("_connection", "_epoch", "_head", "_headers", "_ids", "_message", "_pool",
                 "_tail", "_target", "_tool")

    def __init__(self, connection: MCPConnection, call: Call, *, limit: int) -> None:
        transport = connection.transport
        assert isinstance(transport, StreamableHTTPTransport)
        params = connection.outgoing_params(call.method, call.params)
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": 0, "method": call.method}
        if params is not None:
            message["params"] = params
        self._connection, self._message = connection, message
        self._headers, self._epoch = self._session_headers()
        # The body with every field but the id encoded once: head + id + tail.
        self._head = b'{"jsonrpc":"2.0","id":'
        rest = {key: value for key, value in message.items() if key not in ("jsonrpc", "id")}
        self._tail = b"," + orjson.dumps(rest)[1:]
        parts = urlsplit(transport.url)
        self._target = parts.path + (f"?{parts.query}" if parts.query else "")
        self._pool = HTTP1Pool(parts.hostname or "localhost", parts.port or 80, limit=limit,
                               connect_timeout=min(connection.timeout, 10.0))
        self._ids = itertools.count(1)
        self._tool = call.tool is not None

    @staticmethod
    def applies(connection: MCPConnection) -> bool:
        """Whether calls over ``connection`` can take this driver: where the transport's own
        POSTs take the lean pool (Streamable HTTP over plain ``http://``, no credentials in
        the URL, no authorization hook, whose headers may change per request)."""
        transport = connection.transport
        return isinstance(transport, StreamableHTTPTransport) \
            and PlainPoster.applies(transport.url, transport.auth)

    def _session_headers(self) -> tuple[bytes, int | None]:
        """The header lines of a call now, encoded, and the session they name (its
        :attr:`~MCPConnection.session_epoch`; None when the call is made in none)."""
        transport = self._connection.transport
        assert isinstance(transport, StreamableHTTPTransport)
        headers = transport.request_headers(self._message)
        epoch = self._connection.session_epoch if transport.session_id is not None else None
        return header_lines(headers), epoch

    async def call(self, timeout: float) -> str | None:
        request_id = next(self._ids)
        body = b"%s%d%s" % (self._head, request_id, self._tail)
        epoch = self._epoch
        try:
            response = await self._pool.request("POST", self._target, self._headers, body,
                                                timeout=timeout)
        except ConnectionLost:
            return CONNECTION_LOST
        except TimeoutError:
            return TIMEOUT
        except OSError:
            return CONNECTION_LOST
        except (HTTP1Error, ValueError):
            return OTHER
        if response.status == 404 and epoch is not None:
            try:
                await self._renew(epoch)
            except (MCPError, OSError, TimeoutError):
                return CONNECTION_LOST  # no new session: the engine opens the connection again
        try:
            return self._judge(response, request_id)
        except (ValueError, TypeError, AttributeError):  # an answer of a shape we cannot read
            return OTHER

    async def _renew(self, epoch: int) -> None:
        """The server forgot session ``epoch``: have the connection open a new one (unless a
        call that saw the 404 first did), and take its headers. Raises as the connection's
        handshake does."""
        await self._connection.renew_session(epoch)
        if self._epoch == epoch:
            self._headers, self._epoch = self._session_headers()

    def _judge(self, response: HTTP1Response, request_id: int) -> str | None:
        status = response.status
        kind = media_type(response.headers.get("content-type", ""))
        if status >= 300:
            if status not in _AUTH_STATUSES and kind == JSON_TYPE:
                answer = _loads(response.body)
                if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
                    return jsonrpc_kind(answer["error"].get("code"))
            return http_kind(status)
        if kind == JSON_TYPE:
            return self._outcome(_loads(response.body))
        if kind == SSE_TYPE:
            for event in SSEParser().feed(response.body):
                answer = _loads(event.data.encode("utf-8"))
                if isinstance(answer, dict) and answer.get("id") == request_id \
                        and "method" not in answer:
                    return self._outcome(answer)
        return OTHER

    def _outcome(self, answer: Any) -> str | None:
        if not isinstance(answer, dict):
            return OTHER
        result = answer.get("result")
        if isinstance(result, dict):
            if result.get("resultType", "complete") != "complete":
                return OTHER  # input_required: nobody here can answer it
            return TOOL_ERROR if self._tool and result.get("isError") is True else None
        error = answer.get("error")
        if isinstance(error, dict):
            return jsonrpc_kind(error.get("code"))
        return OTHER

    async def close(self) -> None:
        await self._pool.close()


def _loads(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


def driver_for(connection: MCPConnection, call: Call, *, fast: bool = True,
               limit: int = 16) -> Driver:
    """The driver for calls over ``connection``: the lean HTTP one where it applies
    (``fast`` and :meth:`HTTPDriver.applies`; ``limit`` connections at most), else
    :class:`ClientDriver`."""
    if fast and HTTPDriver.applies(connection):
        return HTTPDriver(connection, call, limit=limit)
    return ClientDriver(connection, call)
