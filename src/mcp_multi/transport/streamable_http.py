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
  the server asked for and reconnect with ``Last-Event-ID``, within bounds
  (:mod:`.http_streams` says which);
- a request's event stream that ends before its response is resumed the same way, by a
  ``GET`` with ``Last-Event-ID`` after ``retry``; a stream that gave no event id cannot be
  resumed and its request fails alone (:class:`RequestFailed`);
- ``404`` to a request that named our session means the server forgot it:
  :class:`SessionExpired`, and the session layer initializes again; until it has, nothing but
  ``initialize`` goes out (the session's :class:`ClientLifecycle` is ``RENEWING``);
- :meth:`close` ends the session with ``DELETE``.

2026-07-28 (after :meth:`negotiated` names it, and for the ``server/discover`` probe): no
session, ``GET`` or ``DELETE``; each request carries ``MCP-Protocol-Version``, ``Mcp-Method``
and ``Mcp-Name`` mirrored from its own body; streams are not resumed; cancelling a request
closes its response stream (the spec's signal on this transport) instead of POSTing
``notifications/cancelled``.

HTTP errors: an error status whose body is a JSON-RPC error is the request's answer (modern
servers answer ``-32022``, ``-32020`` and ``-32601`` so), except 401 and 403, which raise
:class:`AuthorizationRequired` with the server's ``WWW-Authenticate`` challenge; any other
error status raises :class:`HTTPStatusError`. Redirects are not followed (the message names
the new location). A server's text in an error (a body, a reason, a header) is escaped and
clipped, saying how much was cut.

Over plain ``http://`` with no authorization hook, POSTs go through a lean HTTP/1.1 pool
(:mod:`.plain_http`), everything else through aiohttp; both share one cookie jar.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NoReturn

import aiohttp
from aiohttp import hdrs

from ..protocol import methods
from ..protocol.client_state import ClientEvent, ClientLifecycle, ClientState
from ..protocol.envelope import mirror_headers
from ..protocol.errors import (
    AuthorizationRequired,
    ConnectionClosed,
    HTTPStatusError,
    JSONRPCError,
    MCPError,
    ProtocolError,
    SessionExpired,
    TransportError,
)
from ..protocol.jsonrpc import RequestId, dumps, encode, is_request_id, loads
from ..protocol.params_headers import (
    HeaderAnnotationError,
    HeaderParam,
    header_params,
    param_headers,
)
from ..protocol.text import for_display
from ..protocol.versions import is_modern
from ..protocol.wire import (
    ACCEPT_BOTH,
    JSON_TYPE,
    PATH_HTTP,
    SESSION_HEADER,
    SSE_TYPE,
    VERSION_HEADER,
)
from .base import (
    AUTH_STATUSES,
    DEFAULT_CONNECT_TIMEOUT,
    ClientTransport,
    authorized,
    describe_error,
    peer_text,
    transport_error,
)
from .http1 import ConnectFailed, HTTP1Error, TooLarge
from .http_streams import EventStreams, Inbox, RequestStream
from .plain_http import Answer, PlainPoster, cookie_jar

if TYPE_CHECKING:
    from ..client.auth.hook import RequestAuth

__all__ = ["StreamableHTTPTransport"]

logger = logging.getLogger(__name__)

MAX_MESSAGE_SIZE = 16 * 1024 * 1024
DELETE_TIMEOUT = 5.0

class StreamableHTTPTransport(EventStreams, ClientTransport):
    """POSTs to one MCP endpoint, ``http://host:port/mcp`` by default.

    Args:
        url: the MCP endpoint.
        connect_timeout: seconds to open a TCP connection (and, up to
            :data:`GET_STREAM_WAIT`, to wait for the ``GET`` stream's answer after the
            handshake, so the server's stream is open before the first call).
        headers: extra headers on every HTTP request (``Authorization``, ...).
        max_message_size: the largest JSON body or SSE event accepted, in bytes.
        auth: the authorization every request goes through (its headers on each, its
            reaction to a 401 or 403: see :func:`~.base.authorized`); ``None``: none.
    """

    kind = "http"
    era_probe = True
    scheme = "http"
    default_path = PATH_HTTP

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
        self._headers = dict(headers or {})
        self._auth = auth
        self._max_message_size = max_message_size
        self._http: aiohttp.ClientSession | None = None
        self._plain: PlainPoster | None = None  # the POSTs' lean way, where it applies
        self._inbox: Inbox = asyncio.Queue()
        # The HTTP session's life: RENEWING once the server forgot it (only initialize may
        # go out then), CLOSED with the reason the transport ended.
        self._life = ClientLifecycle()
        self._streams: dict[RequestId, RequestStream] = {}
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self.session_id: str | None = None
        self.protocol_version: str | None = None
        # Tool name -> the Mcp-Param-* headers its calls carry (2026-07-28 x-mcp-header);
        # only tools that ask for some are here, so a plain call costs one failed lookup.
        self._param_headers: dict[str, tuple[HeaderParam, ...]] = {}
        # (protocol version, session id) -> the POST headers for them (_post_headers).
        self._posting: tuple[tuple[str | None, str | None], dict[str, str]] = (("", ""), {})

    @property
    def modern(self) -> bool:
        """Whether the negotiated protocol is the stateless 2026-07-28 one."""
        return self.protocol_version is not None and is_modern(self.protocol_version)

    # -- lifecycle -------------------------------------------------------------------

    async def connect(self) -> None:
        # HTTP has nothing to open: the first POST (the handshake) meets the server.
        self._life.process(ClientEvent.CONNECT)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout)
        self._http = aiohttp.ClientSession(timeout=timeout, cookie_jar=cookie_jar())
        if PlainPoster.applies(self.url, self._auth):
            self._plain = PlainPoster(self.url, connect_timeout=self.connect_timeout,
                                      max_body=self._max_message_size,
                                      cookies=self._http.cookie_jar)

    def negotiated(self, protocol_version: str) -> None:
        self.protocol_version = protocol_version
        if self._life.state is ClientState.OPENING:
            self._life.process(ClientEvent.OPENED)

    def accept_tools(self, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """2026-07-28: remember which tools mirror arguments into ``Mcp-Param-*`` headers,
        and leave out (one warning each) the tools whose ``x-mcp-header`` is invalid, as the
        specification requires of a Streamable HTTP client. Earlier eras: all tools."""
        if not self.modern:
            return tools
        accepted: list[dict[str, Any]] = []
        headers: dict[str, tuple[HeaderParam, ...]] = {}
        for tool in tools:
            try:
                wanted = header_params(tool.get("inputSchema"))
            except HeaderAnnotationError as exc:
                logger.warning("%s: leaving out tool %s: %s", self.url,
                               for_display(repr(tool.get("name")), 100),
                               for_display(str(exc), 200))
                continue
            if wanted:
                headers[tool["name"]] = wanted
            accepted.append(tool)
        self._param_headers = headers
        return accepted

    def request_headers(self, message: dict[str, Any]) -> dict[str, str]:
        """The HTTP headers a ``POST`` of ``message`` carries now (session id, version, the
        2026-07-28 mirror, ``Mcp-Param-*``), not those of :attr:`auth`: for a caller that
        sends the request itself (the load mode's lean driver)."""
        return self._headers_for(message)

    def forget_session(self) -> None:
        """The server no longer knows our session (it answered a request in it with 404):
        drop it, and its listening stream; only ``initialize`` may go out until a new one
        opens. Done by :meth:`send` itself, and by a caller that sent the request on its own
        (the load mode's lean driver)."""
        self.session_id = None
        if not self._life.closed:
            self._life.process(ClientEvent.EXPIRED)
        self._stop_listening()

    async def close(self) -> None:
        if self._life.closed and self._http is None:
            return
        self._life.close("closed by the client")
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
        plain, self._plain = self._plain, None
        if plain is not None:
            await plain.close()
        if http is not None:
            if self.session_id is not None and not self.modern:
                await self._delete_session(http)
            await http.close()
        self._inbox.put_nowait(None)

    async def _delete_session(self, http: aiohttp.ClientSession) -> None:
        try:
            headers = self._base_headers()
            if self._auth is not None:
                headers.update(await self._auth.headers("DELETE", self.url))
            async with asyncio.timeout(DELETE_TIMEOUT), http.delete(
                    self.url, headers=headers, allow_redirects=False) as response:
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
            raise ConnectionClosed(f"Streamable HTTP to {self.url}: {self._life.reason}")
        if isinstance(item, MCPError):
            raise item
        return item

    def _shut(self, reason: str) -> None:
        """The server is gone: end :meth:`receive` (the session layer then closes us)."""
        if self._life.close(reason):
            self._inbox.put_nowait(None)

    # -- sending ---------------------------------------------------------------------

    def _base_headers(self) -> dict[str, str]:
        headers = {hdrs.ACCEPT: ACCEPT_BOTH, **self._headers}
        if self.protocol_version is not None:
            headers[VERSION_HEADER] = self.protocol_version
        if self.session_id is not None and not self.modern:
            headers[SESSION_HEADER] = self.session_id
        return headers

    def _post_headers(self) -> dict[str, str]:
        """The headers every POST carries now, made again only when the session or the
        version changed (never to be changed in place: it is kept)."""
        key = (self.protocol_version, self.session_id)
        if key != self._posting[0]:
            headers = self._base_headers()
            headers[hdrs.CONTENT_TYPE] = JSON_TYPE
            self._posting = (key, headers)
        return self._posting[1]

    def _headers_for(self, message: dict[str, Any]) -> dict[str, str]:
        headers = dict(self._post_headers())
        if message.get("method") == methods.INITIALIZE:
            # The handshake negotiates the version: no earlier answer may leak onto it.
            headers.pop(VERSION_HEADER, None)
        headers.update(mirror_headers(message))
        if self._param_headers and message.get("method") == methods.TOOLS_CALL:
            params = message.get("params") or {}
            wanted = self._param_headers.get(str(params.get("name")))
            if wanted:
                arguments = params.get("arguments")
                headers.update(param_headers(wanted, arguments if isinstance(
                    arguments, dict) else None))
        return headers

    async def _request(self, method: str, headers: dict[str, str],
                       **options: Any) -> aiohttp.ClientResponse:
        """One HTTP request to the endpoint, through :attr:`_auth` when there is one."""
        http = self._check_open()
        if self._auth is None:
            return await http.request(method, self.url, headers=headers,
                                      allow_redirects=False, **options)
        return await authorized(
            self._auth, method, self.url,
            lambda extra: http.request(method, self.url, headers={**headers, **extra},
                                       allow_redirects=False, **options))

    def _check_open(self) -> aiohttp.ClientSession:
        if self._http is None or self._life.closed:
            reason = self._life.reason
            raise ConnectionClosed(f"Streamable HTTP to {self.url} is closed"
                                   + (f" ({reason})" if reason else ""))
        return self._http

    @contextlib.contextmanager
    def _mapped(self, what: str) -> Iterator[None]:
        try:
            yield
        except MCPError:
            raise
        except (TimeoutError, aiohttp.ClientError, HTTP1Error, OSError) as exc:
            raise self._transport_error(what, exc) from exc

    def _transport_error(self, what: str, exc: BaseException) -> MCPError:
        """``exc`` (aiohttp's, the lean pool's or the OS's) met while doing ``what``, as our
        error: a server that cannot be reached says so whatever we were doing."""
        if isinstance(exc, aiohttp.ClientConnectorError):
            return TransportError(f"Cannot connect to {self.url}: {describe_error(exc)}")
        if isinstance(exc, ConnectFailed):
            return TransportError(f"Cannot connect to {self.url}: {peer_text(exc.reason)}")
        if isinstance(exc, TooLarge):
            return ProtocolError(f"{self.url} sent a body over {self._max_message_size} bytes")
        return transport_error(what, exc)

    async def send(self, message: dict[str, Any]) -> None:
        http = self._check_open()
        method = message.get("method")
        raw_id = message.get("id") if method is not None else None
        request_id: RequestId | None = raw_id if is_request_id(raw_id) else None
        if method == methods.CANCELLED and self._abandon(message):
            return
        if self._life.state is ClientState.RENEWING and method != methods.INITIALIZE:
            raise SessionExpired(f"{self.url} no longer knows our session; initialize again")
        headers = self._headers_for(message)
        response: Answer
        try:
            if self._plain is not None:
                response = await self._plain.post(headers, encode(message))
            elif self._auth is None:
                response = await http.post(self.url, data=encode(message), headers=headers,
                                           allow_redirects=False)
            else:
                response = await self._request("POST", headers, data=encode(message))
        except MCPError:
            raise
        except (TimeoutError, aiohttp.ClientError, HTTP1Error, OSError) as exc:
            raise self._transport_error(f"send to {self.url}", exc) from exc
        except ValueError as exc:  # a header aiohttp or the pool will not send
            raise TransportError(f"Cannot send to {self.url}: {exc}") from None
        keep = False  # whether a stream reader took the response over
        try:
            keep = await self._answer(message, method, request_id, response,
                                      headers.get(SESSION_HEADER))
        finally:
            if not keep:
                response.release()
        if method == methods.INITIALIZED and self.session_id is not None:
            await self._start_listening()

    async def _answer(self, message: dict[str, Any], method: Any, request_id: RequestId | None,
                      response: Answer, session: str | None) -> bool:
        """Handle the HTTP answer to one POST (which named ``session``, if any); ``True``
        when a stream reader took it over."""
        status = response.status
        if method == methods.INITIALIZE and 200 <= status < 300:
            self.session_id = response.headers.get(SESSION_HEADER) or None
            if self._life.state in (ClientState.OPENING, ClientState.RENEWING):
                self._life.process(ClientEvent.OPENED)
        if status >= 300:
            await self._refused(request_id, response, session)
            return False
        if request_id is None:  # a notification or a response: 202, nothing to read
            return False
        if status in (202, 204):
            raise ProtocolError(f"{self.url} answered request {method} with HTTP {status} "
                                "and no response")
        content_type = response.content_type
        if content_type == JSON_TYPE:
            try:
                body = await self._read_body(response)
            except MCPError:
                raise
            except (TimeoutError, aiohttp.ClientError, HTTP1Error, OSError) as exc:
                raise self._transport_error(f"read from {self.url}", exc) from exc
            if not body.strip():
                raise ProtocolError(f"{self.url} answered {method} with an empty body")
            self._deliver(method, body)
            return False
        if content_type == SSE_TYPE:
            old = self._streams.pop(request_id, None)
            if old is not None:
                old.abandon()
            stream = self._streams[request_id] = RequestStream(response)
            stream.task = asyncio.create_task(self._follow(request_id, stream),
                                              name=f"mcp-http-stream-{request_id}")
            return True
        raise ProtocolError(f"{self.url} answered {method} with '{peer_text(content_type)}', "
                            "neither JSON nor an event stream")

    async def _refused(self, request_id: RequestId | None, response: Answer,
                       session: str | None) -> None:
        """An HTTP error status: the JSON-RPC error in its body is the answer, else raise
        (``session``: the session the request named, if any)."""
        status = response.status
        with self._mapped(f"read from {self.url}"):
            body = await self._read_body(response)
        if status in AUTH_STATUSES:
            self._refused_authorization(response, body)
        if status == 404 and session is not None:
            # A 404 to a session already renewed (the request went out before) must not
            # forget the new one: the session layer sends the request again in it.
            if session == self.session_id:
                self.forget_session()
            raise SessionExpired(f"{self.url} no longer knows our session (HTTP 404)")
        if request_id is not None and response.content_type == JSON_TYPE:
            try:
                answer = loads(body)
            except MCPError:
                answer = None
            if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
                # A modern server rejects before it reads the id: the answer is to this request.
                self._inbox.put_nowait(dumps({**answer, "id": request_id}))
                return
        if 300 <= status < 400:
            location = response.headers.get(hdrs.LOCATION, "")
            raise HTTPStatusError(f"{self.url} redirects (HTTP {status}) to "
                                  f"'{peer_text(location)}'; use that URL if it is the server",
                                  status)
        text = peer_text(body.decode("utf-8", "replace"))
        raise HTTPStatusError(f"POST {self.url} refused: {self._status_line(response)}"
                              + (f": {text}" if text else ""), status)

    @staticmethod
    def _status_line(response: Answer) -> str:
        return peer_text(f"HTTP {response.status} {response.reason or ''}".rstrip())

    def _refused_authorization(self, response: Answer, body: bytes) -> NoReturn:
        """HTTP 401 or 403: the server wants credentials, whatever the body says; the
        ``WWW-Authenticate`` challenge tells which (shown escaped and clipped)."""
        challenge = response.headers.get(hdrs.WWW_AUTHENTICATE)
        if challenge:
            detail = f" (WWW-Authenticate: {peer_text(challenge)})"
        else:
            text = peer_text(body.decode("utf-8", "replace"))
            detail = f": {text}" if text else ""
        raise AuthorizationRequired(f"POST {self.url} refused: {self._status_line(response)}"
                                    f"{detail}", response.status, challenge)

    def _deliver(self, method: Any, body: bytes) -> None:
        """The JSON body answering this request: to the session directly when it takes
        frames so (see :attr:`~.base.ClientTransport.direct`), else into the inbox.

        This body answers exactly this request: one that is not JSON fails it now (a frame
        the session cannot read is otherwise dropped, and it would wait for its timeout).
        """
        direct = self.direct
        if direct is not None and direct(body):
            return
        try:
            loads(body)
        except JSONRPCError as exc:
            raise ProtocolError(f"{self.url} answered {method} with a body that is not "
                                f"JSON ({exc.message})") from None
        self._inbox.put_nowait(body)

    async def _read_body(self, response: Answer) -> bytes:
        length = response.content_length
        if length is not None and length <= self._max_message_size:
            return await response.read()  # one read: the length is known and bounded
        chunks: list[bytes] = []
        size = 0
        while chunk := await response.content.readany():
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
        stream = self._streams.pop(request_id, None) if is_request_id(request_id) else None
        if stream is not None:
            stream.abandon()
        return self.modern
