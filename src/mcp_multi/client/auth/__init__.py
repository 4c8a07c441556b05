"""Authorization in the client: OAuth 2.1 as the MCP specification defines it.

An HTTP transport holds one :class:`~.hook.RequestAuth` (or none) and asks it for the
headers of each request and what to do with a refusal (401, 403); everything else
(discovery, registration, the authorization code flow, machine-to-machine grants, DPoP,
the token store) lives behind it in this package.
"""

from .agent import AuthorizationFailed, HeadlessAgent, UserAgent
from .hook import RequestAuth
from .oauth import MemoryTokenStore, OAuthSettings, StoredGrant, TokenStore

__all__ = [
    "AuthorizationFailed",
    "HeadlessAgent",
    "MemoryTokenStore",
    "OAuthSettings",
    "RequestAuth",
    "StoredGrant",
    "TokenStore",
    "UserAgent",
]
