"""Authorization on the server: who is calling (:mod:`.principal`), how a request proves it
(bearer tokens: static ones, JWTs checked against an authorization server's keys, or token
introspection; the protected resource metadata that tells clients where to get one), and
what each caller may use (the policy of roles and tools).

Transports reach it through one hook: the app's guard authenticates an MCP request and puts
its :class:`~.principal.Principal` on the request; the endpoint binds it to the session it
opens or serves. Handlers ask the session's principal; tools never see tokens.
"""

from .principal import ANONYMOUS, Principal

__all__ = ["ANONYMOUS", "Principal"]
