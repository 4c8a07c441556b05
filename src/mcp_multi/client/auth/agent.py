"""The user agent of the authorization code flow: who takes a person (or a test) to the
authorization endpoint and brings the redirect's query back.

The flow needs two things of it: a ``redirect_uri`` before the client registers (dynamic
registration sends it) and, later, the query the authorization server redirected to it with
(``code``, ``state``, ``iss``, or ``error``). :class:`UserAgent` is that contract; the
shell's loopback listener with a browser (cli-ux) is one implementation, and
:class:`HeadlessAgent` here is another: it follows the authorization URL itself, for test and
conformance modes and for servers whose authorization endpoint approves without a person.
"""

from __future__ import annotations

import asyncio
from typing import Protocol
from urllib.parse import parse_qsl, urlsplit

import aiohttp
from aiohttp import hdrs
from yarl import URL

from ...protocol.errors import MCPError
from ...protocol.text import for_display

__all__ = [
    "DEFAULT_REDIRECT_URI",
    "AuthorizationFailed",
    "HeadlessAgent",
    "UserAgent",
    "redirect_query",
]

DEFAULT_REDIRECT_URI = "http://127.0.0.1:3000/callback"
AUTHORIZE_TIMEOUT = 30.0
MAX_HOPS = 5  # redirects within the authorization server before it redirects to us
MAX_QUERY_PARAMS = 50


class AuthorizationFailed(MCPError):
    """The authorization could not be obtained or used: the user agent, the authorization
    server or its answers failed a check. The message is one line and holds peer text only
    escaped and clipped; it never holds a token, a code or a secret."""


class UserAgent(Protocol):
    """Takes the authorization URL to whoever approves it and returns the redirect's query.

    Call :meth:`start` first (it may open a listener), then :meth:`authorize` once per
    authorization, then :meth:`close`.
    """

    async def start(self) -> str:
        """Get ready and return the ``redirect_uri`` (needed before registration)."""
        ...

    async def authorize(self, url: str) -> dict[str, str]:
        """Have ``url`` approved and return the query the redirect carried (``code``,
        ``state``, ``iss``, ``error``, ...). Raises :class:`AuthorizationFailed` on a
        timeout or when nothing came back."""
        ...

    async def close(self) -> None:
        """Release what :meth:`start` took (idempotent)."""
        ...


class HeadlessAgent:
    """A user agent without a person: ``GET`` the authorization URL without following the
    redirect, and read the query of its ``Location`` (following at most :data:`MAX_HOPS`
    redirects that stay away from the ``redirect_uri``).

    Args:
        redirect_uri: what the client registers and the server redirects to; nothing listens
            there, the agent reads the redirect before it gets sent anywhere.
        timeout: seconds for the whole authorization.
    """

    def __init__(self, redirect_uri: str = DEFAULT_REDIRECT_URI, *,
                 timeout: float = AUTHORIZE_TIMEOUT) -> None:
        self.redirect_uri = redirect_uri
        self.timeout = timeout

    async def start(self) -> str:
        return self.redirect_uri

    async def authorize(self, url: str) -> dict[str, str]:
        try:
            async with asyncio.timeout(self.timeout), aiohttp.ClientSession() as http:
                return await self._follow(http, url)
        except TimeoutError:
            raise AuthorizationFailed(
                f"the authorization endpoint did not redirect within {self.timeout:g} s"
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise AuthorizationFailed(
                f"cannot reach the authorization endpoint: {for_display(str(exc), 200)}"
            ) from None

    async def _follow(self, http: aiohttp.ClientSession, url: str) -> dict[str, str]:
        target = _without_query(self.redirect_uri)
        for _ in range(MAX_HOPS):
            async with http.get(url, allow_redirects=False) as response:
                location = response.headers.get(hdrs.LOCATION)
                status = response.status
            if not (300 <= status < 400 and location):
                raise AuthorizationFailed(
                    f"the authorization endpoint answered HTTP {status} instead of "
                    "redirecting back")
            location = str(response.url.join(URL(location)))
            if _without_query(location) == target:
                return redirect_query(location)
            url = location
        raise AuthorizationFailed("the authorization endpoint redirected too many times")

    async def close(self) -> None:
        return None


def _without_query(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def redirect_query(url: str) -> dict[str, str]:
    """The query of a redirect to us as a dict (first value of each name; bounded)."""
    try:
        pairs = parse_qsl(urlsplit(url).query, keep_blank_values=True,
                          max_num_fields=MAX_QUERY_PARAMS)
    except ValueError:
        raise AuthorizationFailed("the redirect carried too many parameters") from None
    query: dict[str, str] = {}
    for name, value in pairs:
        query.setdefault(name, value)
    return query
