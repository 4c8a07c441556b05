"""``mcp-client login <server>`` and ``mcp-client logout <server>``, and the authorization
every other command line run gives its HTTP servers.

The server is named as everywhere else in the CLI: a name from ``--config``, a URL, or
``host:port`` (with ``--transport``), optionally ``name=``-prefixed. ``login`` authorizes now
(discovery through the well-known URIs, registration, the browser) and keeps the grant in the
token store, so later runs start authorized; it prints whom it logged in to and with which
scopes, never a token. ``logout`` forgets the grant (tokens and registration) and says
whether there was one. The grant is keyed by the server's URL, the same key the shell's
connections use.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..protocol.text import for_display
from .auth.agent import AuthorizationFailed
from .auth.hook import RequestAuth
from .auth.loopback import BrowserChoice, LoopbackAgent
from .auth.oauth import MemoryTokenStore, OAuthAuth, OAuthSettings, StoredGrant, TokenStore
from .auth.settings import merge_oauth, static_authorization
from .auth.store import TokenStoreError
from .targets import ServerSpec

__all__ = ["ACCOUNT_COMMANDS", "AuthChoices", "find_server", "login", "logout"]

ACCOUNT_COMMANDS = ("login", "logout")


@dataclass(frozen=True, slots=True)
class AuthChoices:
    """What the command line says about authorization, for every server.

    Attributes:
        store: where grants live (``--token-store``).
        settings: the ``--oauth-*`` options (``None``: none given); a server's own
            ``oauth`` settings from ``--config`` win field by field.
        headers: ``--header``: a static ``Authorization`` among them means no OAuth.
        browser: ``--oauth-browser``.
        write: where the agent's status lines go (stderr).
    """

    store: TokenStore
    settings: OAuthSettings | None
    headers: dict[str, str]
    browser: BrowserChoice
    write: Callable[[str], None]

    def settings_for(self, spec: ServerSpec) -> OAuthSettings:
        return merge_oauth(spec.oauth, self.settings) or OAuthSettings()

    def auth_for(self, spec: ServerSpec) -> RequestAuth | None:
        """The authorization of ``spec``'s HTTP requests: ``None`` for a stdio server or one
        given a static ``Authorization`` header, else OAuth through a browser."""
        if spec.transport == "stdio" or static_authorization(self.headers, spec.headers):
            return None
        try:
            return self.oauth(spec)
        except TokenStoreError as exc:
            # An unsafe store must not cost the servers that need no authorization: this
            # run keeps its tokens in memory, and says why.
            self.write(f"Warning: {exc}; tokens for {_named(spec)} are kept in memory only")
            return self.oauth(spec, MemoryTokenStore())

    def oauth(self, spec: ServerSpec, store: TokenStore | None = None) -> OAuthAuth:
        """OAuth for ``spec`` through a browser, its grant kept in the store.

        Raises:
            TokenStoreError: the store cannot be used safely.
        """
        settings = self.settings_for(spec)
        agent = LoopbackAgent(port=settings.redirect_port, browser=self.browser,
                              label=spec.name, write=self.write)
        return OAuthAuth(spec.url, settings, store=store or self.store, agent=agent)


def find_server(target: str, configured: Sequence[ServerSpec],
                parse: Callable[[str], ServerSpec]) -> ServerSpec:
    """The server ``target`` names: a ``--config`` server by name, else ``parse(target)``
    (a URL or ``host:port``).

    Raises:
        ValueError: neither.
    """
    for spec in configured:
        if spec.name == target:
            return spec
    return parse(target)


def _refuse_static(spec: ServerSpec, choices: AuthChoices) -> str | None:
    if spec.transport == "stdio":
        return f"{_named(spec)} is a stdio server: it is not reached over HTTP and needs no login"
    if static_authorization(choices.headers, spec.headers):
        return (f"{_named(spec)} is given a static Authorization header (--header or its "
                "config); it needs no login")
    return None


def _named(spec: ServerSpec) -> str:
    url = for_display(spec.url, 200)
    return url if spec.name in (spec.url, url) or "://" in spec.name else \
        f"{for_display(spec.name)} ({url})"


def _expiry(grant: StoredGrant) -> str:
    if grant.expires_at is None:
        return "no expiry given"
    minutes = max(0, round((grant.expires_at - time.time()) / 60))
    return f"expires in {minutes} min"


async def login(spec: ServerSpec, choices: AuthChoices, write: Callable[[str], None]) -> int:
    """Authorize with ``spec`` now and keep the grant; the exit code.

    Raises:
        AuthorizationFailed: the server needs no login (stdio, a static Authorization
            header), or discovery, registration, the browser or the token request failed
            (the message is one line and holds no secret).
    """
    refusal = _refuse_static(spec, choices)
    if refusal is not None:
        raise AuthorizationFailed(refusal)
    auth = choices.oauth(spec)
    try:
        grant = await auth.login()
    finally:
        await auth.close()
    scopes = for_display(grant.scope or "(none)", 200)
    refresh = ", refreshable" if grant.refresh_token else ""
    write(f"Logged in to {_named(spec)} at "
          f"{for_display(grant.issuer or 'its authorization server', 200)}: "
          f"scopes {scopes}; {_expiry(grant)}{refresh}")
    return 0


async def logout(spec: ServerSpec, choices: AuthChoices, write: Callable[[str], None]) -> int:
    """Revoke ``spec``'s tokens where its authorization server allows (RFC 7009), then
    forget its grant; the exit code (0 whether or not there was one)."""
    where = _named(spec)
    auth = choices.oauth(spec)
    try:
        revoked = await auth.revoke()
    finally:
        await auth.close()
    if choices.store.delete(spec.url):
        write(f"Logged out of {where}: its token was removed"
              + (" and revoked at its authorization server" if revoked else ""))
    else:
        write(f"No token was stored for {where}; nothing removed")
    return 0
