"""The POSTs of the HTTP transports over plain ``http://``: the lean pool of :mod:`.http1`,
its answers read the way the transports read aiohttp's.

A POST is a transport's hot path: one per call. aiohttp's ``ClientSession`` spends about
three quarters of a sequential call's client time on what one MCP endpoint does not need
(header multidicts, tracing hooks, a stream reader per answer); :class:`PlainPoster` sends the
same request through :class:`~.http1.HTTP1Pool` instead. It is used where nothing of
aiohttp's is missed (:meth:`PlainPoster.applies`): plain ``http://`` with no credentials in
the URL and no authorization hook (whose 401 rounds and changing headers stay with aiohttp).
Streamable HTTP's ``GET`` stream and ``DELETE``, and the legacy SSE transport's stream, still
go through aiohttp, and share its cookie jar with the POSTs: a cookie a load balancer sets
for persistence (a BIG-IP's, nginx's sticky) comes back on every request, whichever way it
went.

An answer is an :class:`Answer` either way: aiohttp's ``ClientResponse`` is one, and so is
:class:`PlainAnswer`, made of the pool's :class:`~.http1.HTTP1Response`. An answer of the
poster's ``stream_type`` (Streamable HTTP's event stream) is handed over with its head and
its body read as it comes; any other comes whole, at most ``max_body`` bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from http.cookies import CookieError, SimpleCookie
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from ..protocol.wire import SSE_TYPE
from .http1 import HTTP1Pool, HTTP1Response, header_lines, media_type

__all__ = ["Answer", "BodyReader", "PlainAnswer", "PlainPoster", "cookie_jar"]

logger = logging.getLogger("mcp_multi.transport.streamable_http")

POOL_LIMIT = 100
"""Most connections the POSTs of one transport keep open at once (aiohttp's default)."""

_OCTET_STREAM = "application/octet-stream"  # aiohttp's content_type when none is named


def cookie_jar() -> aiohttp.CookieJar:
    """The jar an HTTP transport's aiohttp session and its :class:`PlainPoster` share. It
    takes cookies from an address too (aiohttp's default takes them from names only): a load
    balancer reached at its virtual address keeps a client on one server by a cookie."""
    return aiohttp.CookieJar(unsafe=True)


class BodyReader(Protocol):
    """How the transport reads a body as it comes."""

    async def readany(self) -> bytes: ...


class Answer(Protocol):
    """What the transport reads of an HTTP answer (aiohttp's ``ClientResponse`` is one)."""

    @property
    def status(self) -> int: ...

    @property
    def reason(self) -> str | None: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def content_type(self) -> str: ...

    @property
    def content_length(self) -> int | None: ...

    @property
    def content(self) -> BodyReader: ...

    async def read(self) -> bytes: ...

    def release(self) -> object: ...

    def close(self) -> None: ...


class _Headers(Mapping[str, str]):
    """An answer's header lines by name, whatever its case (the pool keeps them lower)."""

    __slots__ = ("_lines",)

    def __init__(self, lines: dict[str, str]) -> None:
        self._lines = lines

    def __getitem__(self, name: str) -> str:
        return self._lines[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._lines)

    def __len__(self) -> int:
        return len(self._lines)


class _Whole:
    """A body that came whole, read as if it came in one piece."""

    __slots__ = ("_body",)

    def __init__(self, body: bytes) -> None:
        self._body = body

    async def readany(self) -> bytes:
        body, self._body = self._body, b""
        return body


class PlainAnswer:
    """An answer of the pool, read as the transport reads aiohttp's."""

    __slots__ = ("_answer", "content", "content_length", "content_type", "headers", "reason",
                 "status")

    def __init__(self, answer: HTTP1Response) -> None:
        self._answer = answer
        self.status = answer.status
        self.reason: str | None = answer.reason
        lines = answer.headers
        self.headers = _Headers(lines)
        raw = lines.get("content-type")
        self.content_type = media_type(raw) if raw else _OCTET_STREAM
        stream = answer.stream
        self.content: BodyReader
        if stream is None:
            self.content = _Whole(answer.body)
            self.content_length: int | None = len(answer.body)
        else:
            self.content = stream
            self.content_length = None

    async def read(self) -> bytes:
        """The whole body (a streamed one read to its end)."""
        if self._answer.stream is None:
            return self._answer.body
        chunks = []
        while chunk := await self.content.readany():
            chunks.append(chunk)
        return b"".join(chunks)

    def release(self) -> None:
        """Done with the answer: a stream not read to its end closes its connection."""
        self.close()

    def close(self) -> None:
        stream = self._answer.stream
        if stream is not None and not stream.at_eof:
            stream.close()


class PlainPoster:
    """POSTs to one plain ``http://`` endpoint through a lean pool of connections.

    Args:
        url: the endpoint (see :meth:`applies`).
        connect_timeout: seconds to open a connection.
        max_body: the largest body of an answer that is not streamed.
        cookies: the jar the transport's aiohttp session keeps, shared with its POSTs.
        timeout: seconds for a whole answer (for a streamed one, its head); ``None``: no
            limit (the session layer's request timeout is the one that counts).
        stream_type: the media type of answers read as they come (``None``: all whole).
    """

    def __init__(self, url: str, *, connect_timeout: float, max_body: int,
                 cookies: aiohttp.abc.AbstractCookieJar, timeout: float | None = None,
                 stream_type: str | None = SSE_TYPE) -> None:
        parts = urlsplit(url)
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._pool = HTTP1Pool(parts.hostname or "localhost", parts.port or 80,
                               limit=POOL_LIMIT, connect_timeout=connect_timeout,
                               max_body=max_body)
        self.url = url
        self._url = URL(url)
        self._cookies = cookies
        self._timeout = timeout
        self._stream_type = stream_type

    @staticmethod
    def applies(url: str, auth: object | None) -> bool:
        """Whether POSTs to ``url`` through the authorization hook ``auth`` can go this way:
        plain ``http://``, no credentials in it (aiohttp turns them into a Basic
        ``Authorization``), and no hook (its 401 rounds and changing headers)."""
        if auth is not None:
            return False
        parts = urlsplit(url)
        return parts.scheme == "http" and parts.username is None and parts.password is None

    async def post(self, headers: Mapping[str, str], body: bytes) -> PlainAnswer:
        """POST ``body`` with ``headers`` (and the jar's cookies for the endpoint).

        Raises what :meth:`HTTP1Pool.request <.http1.HTTP1Pool.request>` raises, and
        :class:`ValueError` for a header that cannot be sent.
        """
        cookies = self._cookies
        if len(cookies):
            headers = self._with_cookies(headers)
        answer = await self._pool.request("POST", self._target, header_lines(headers), body,
                                          timeout=self._timeout,
                                          stream_type=self._stream_type)
        if answer.cookies:
            self._keep_cookies(answer.cookies)
        return PlainAnswer(answer)

    async def close(self) -> None:
        await self._pool.close()

    def _with_cookies(self, headers: Mapping[str, str]) -> Mapping[str, str]:
        """``headers`` with the jar's cookies for the endpoint added (as aiohttp adds them:
        after any ``Cookie`` header of the caller's)."""
        morsels = self._cookies.filter_cookies(self._url)
        if not morsels:
            return headers
        pairs = "; ".join(f"{m.key}={m.coded_value}" for m in morsels.values())
        given = next((v for k, v in headers.items() if k.lower() == "cookie"), None)
        merged = {k: v for k, v in headers.items() if k.lower() != "cookie"}
        merged["Cookie"] = f"{given}; {pairs}" if given else pairs
        return merged

    def _keep_cookies(self, lines: tuple[str, ...]) -> None:
        """The answer's ``Set-Cookie`` lines into the jar (a line that does not parse is
        left out, as aiohttp leaves it)."""
        jar: SimpleCookie = SimpleCookie()
        for line in lines:
            try:
                jar.load(line)
            except CookieError:
                logger.debug("%s: left out a Set-Cookie line that does not parse", self._url)
        if jar:
            self._cookies.update_cookies(jar, self._url)
