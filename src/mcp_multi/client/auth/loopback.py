"""The person's browser as the user agent: a loopback redirect listener (RFC 8252 §7.3).

:class:`LoopbackAgent` is the :class:`UserAgent` a person meets at ``mcp-client login`` or
at the first 401 of a shell session. It listens on ``127.0.0.1`` (a random port, or the
configured redirect port when the client was registered with a fixed one), so the redirect
URI it hands to registration is ``http://127.0.0.1:PORT/callback``; then, per authorization:

1. it always prints the authorization URL (escaped, on stderr) so the person can copy it to
   any browser, and opens a browser itself only where one can be shown (a terminal on a
   desktop: macOS, Windows, or X11/Wayland with ``DISPLAY``) unless told otherwise: a client
   run from a script or a service never pops up windows;
2. it waits for exactly one callback: a ``GET`` of the callback path whose ``state`` is the one
   in the URL (compared in constant time); a callback with another state is refused and
   waiting goes on (it is someone else's, or forged); other paths and methods are refused;
3. it answers the browser with a small page saying to go back to the terminal, and returns
   the callback's query (``code``, ``state``, ``iss``, or ``error`` and its description) to
   the flow, which checks it;
4. after a bounded wait (5 minutes by default) it gives up with a clear error.

The listener logs no request line (the query holds the authorization code) and never shows
the code: pages and messages name only what went wrong.
"""

from __future__ import annotations

import asyncio
import hmac
import html
import logging
import os
import sys
import webbrowser
from collections.abc import Callable
from typing import Literal, TextIO
from urllib.parse import parse_qsl, urlsplit

from aiohttp import web

from ...protocol.text import for_display, printable
from .agent import AuthorizationFailed

__all__ = [
    "CALLBACK_PATH",
    "DEFAULT_WAIT",
    "BrowserChoice",
    "LoopbackAgent",
    "LoopbackError",
    "browser_available",
]

logger = logging.getLogger(__name__)

CALLBACK_PATH = "/callback"
DEFAULT_WAIT = 300.0
_BROWSER_WAIT = 10.0
_MAX_PARAMS = 16

BrowserChoice = Literal["auto", "always", "never"]
"""Whether to open a browser: where one can be shown (auto), always, or never."""


class LoopbackError(AuthorizationFailed):
    """The redirect listener cannot listen, or the authorization did not come back."""


def browser_available(stream: TextIO | None = None) -> bool:
    """Whether a browser can be shown to the person at ``stream`` (stdout by default): the
    stream is a terminal, and the system has a desktop (macOS, Windows, a ``DISPLAY`` or
    ``WAYLAND_DISPLAY`` elsewhere)."""
    stream = sys.stdout if stream is None else stream
    try:
        if not stream.isatty():
            return False
    except (AttributeError, ValueError):  # closed or not a real stream
        return False
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _page(title: str, text: str) -> str:
    return (
        "<!doctype html><html><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title></head>"
        "<body style=\"font-family:sans-serif;max-width:40em;margin:3em auto\">"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>"
    )


_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
}


def _answer(status: int, title: str, text: str, **headers: str) -> web.Response:
    return web.Response(status=status, text=_page(title, text), content_type="text/html",
                        charset="utf-8", headers={**_HEADERS, **headers})


class LoopbackAgent:
    """A :class:`~.agent.UserAgent` that sends the person to a browser and listens on
    loopback for the redirect.

    Args:
        port: the redirect port (``None`` or 0: a random free one). A client registered with
            a fixed redirect URI needs the same port every time.
        browser: ``"auto"`` opens a browser only where :func:`browser_available`;
            ``"always"`` tries wherever asked; ``"never"`` only prints the URL.
        wait: seconds to wait for the redirect after printing the URL.
        label: what the person is authorizing for, shown in the printed line (a server name).
        write: where status lines go (stderr by default).
    """

    def __init__(self, *, port: int | None = None, browser: BrowserChoice = "auto",
                 wait: float = DEFAULT_WAIT, label: str | None = None,
                 write: Callable[[str], None] | None = None) -> None:
        if port is not None and not 0 <= port < 65536:
            raise ValueError(f"bad redirect port {port}")
        self._port = port or 0
        self._browser = browser
        self._wait = wait
        self._label = label
        self._write = write or _to_stderr
        self._runner: web.AppRunner | None = None
        self._redirect_uri = ""
        self._state: str | None = None
        self._waiter: asyncio.Future[dict[str, str]] | None = None

    @property
    def redirect_uri(self) -> str:
        """The redirect URI, once :meth:`start` has run (else empty)."""
        return self._redirect_uri

    async def start(self) -> str:
        """Listen on ``127.0.0.1`` and return the redirect URI (idempotent).

        Raises:
            LoopbackError: the port cannot be listened on (in use, say).
        """
        if self._runner is not None:
            return self._redirect_uri
        app = web.Application(client_max_size=1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # access_log=None: a request line holds the authorization code.
        runner = web.AppRunner(app, access_log=None, handle_signals=False,
                               shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self._port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise LoopbackError(
                f"cannot listen on 127.0.0.1:{self._port} for the authorization redirect: "
                f"{exc.strerror or exc}") from None
        self._runner = runner
        port = runner.addresses[0][1]
        self._redirect_uri = f"http://127.0.0.1:{port}{CALLBACK_PATH}"
        return self._redirect_uri

    async def authorize(self, url: str) -> dict[str, str]:
        """Send the person to ``url``; return the query of the redirect that comes back.

        Raises:
            LoopbackError: :meth:`start` was not called, or no valid redirect came back in
                time.
        """
        if self._runner is None:
            raise LoopbackError("the redirect listener is not started")
        states = [value for key, value in parse_qsl(urlsplit(url).query) if key == "state"]
        self._state = states[0] if states else None
        waiter: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        try:
            self._show(url)
            if self._wants_browser():
                await self._open_browser(url)
            try:
                return await asyncio.wait_for(asyncio.shield(waiter), self._wait)
            except TimeoutError:
                raise LoopbackError(
                    f"no authorization came back within {self._wait:g} s (nothing reached "
                    f"{self._redirect_uri}); run the login again") from None
        finally:
            self._waiter = None
            if not waiter.done():
                waiter.cancel()

    async def close(self) -> None:
        """Stop listening (idempotent)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    def _show(self, url: str) -> None:
        what = f" for {for_display(self._label)}" if self._label else ""
        self._write(f"To authorize{what}, open this URL in a browser:")
        self._write(f"  {printable(url)}")
        self._write(f"(waiting up to {self._wait:g} s for the browser to come back to "
                    f"{self._redirect_uri})")

    def _wants_browser(self) -> bool:
        if self._browser == "never":
            return False
        return self._browser == "always" or browser_available()

    async def _open_browser(self, url: str) -> None:
        """Open a browser in a thread (``webbrowser`` may block on a slow launcher); the
        printed URL stays the way in when that fails or takes too long."""
        try:
            opened = await asyncio.wait_for(asyncio.to_thread(webbrowser.open, url, 2),
                                            _BROWSER_WAIT)
        except (TimeoutError, webbrowser.Error, OSError):
            opened = False
        if not opened:
            self._write("(could not open a browser: open the URL above yourself)")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path != CALLBACK_PATH:
            return _answer(404, "Not found", "This address only receives the authorization "
                                             "redirect of mcp-client.")
        if request.method != "GET":
            return _answer(405, "Method not allowed", "Only GET is accepted here.",
                           Allow="GET")
        waiter = self._waiter
        if waiter is None or waiter.done():
            return _answer(410, "Nothing is waiting here",
                           "No authorization is in progress. Go back to the terminal.")
        pairs = parse_qsl(request.query_string, keep_blank_values=True)
        query = dict(pairs)
        if len(pairs) > _MAX_PARAMS or len(query) != len(pairs):
            return _answer(400, "Bad redirect", "The redirect's parameters are malformed. "
                                                "Go back to the terminal and try again.")
        if self._state is not None and not hmac.compare_digest(
                query.get("state", "").encode(), self._state.encode()):
            self._write("(refused a redirect whose state is not this login's; still waiting)")
            return _answer(400, "Not this login",
                           "This redirect does not belong to the login in progress. "
                           "Go back to the terminal.")
        waiter.set_result(query)
        if "error" in query:
            return _answer(200, "Authorization refused",
                           f"The authorization server said: {for_display(query['error'], 200)}. "
                           "You can close this tab and go back to the terminal.")
        return _answer(200, "Authorization complete",
                       "You can close this tab and go back to the terminal.")


def _to_stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
