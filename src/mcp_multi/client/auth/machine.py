"""Machine-to-machine grants: a client that obtains tokens without a person.

Three extensions of MCP authorization let a client act as itself (or for a user who already
signed in elsewhere) instead of sending a person to an authorization page:

- **client credentials** (``io.modelcontextprotocol/oauth-client-credentials``): the
  ``client_credentials`` grant, the client authenticated by its secret (HTTP Basic,
  ``client_secret_basic``) or, as recommended, by a JWT it signs with its private key
  (``private_key_jwt``, RFC 7523 section 2.2);
- **workload identity federation** (``io.modelcontextprotocol/auth/wif``): the JWT-bearer
  grant (RFC 7523 section 2.1) with a JWT the client's platform issued to it (a Kubernetes
  service account token, a SPIFFE JWT-SVID...), read afresh from its file each time since
  platforms rotate it; a refused assertion is an error to report, never a reason to retry
  or to try another grant;
- **enterprise-managed authorization** (``io.modelcontextprotocol/enterprise-managed-
  authorization``): the user's ID token from the enterprise identity provider is exchanged
  there (RFC 8693 token exchange) for an Identity Assertion JWT Authorization Grant
  (ID-JAG), which the client then presents to the MCP server's authorization server as a
  JWT-bearer grant.

The pieces are small and separate: a :class:`~.client_auth.ClientAuthentication` adds the
client's credentials to a token request, the ``*_form`` functions build a grant's parameters, and
:func:`request_token` makes the one POST (with a DPoP proof and its nonce retry when a
:class:`~.dpop.DPoPProver` is given) and reads the answer as the authorization code flow
does (:func:`~.flow.parse_token_response`).
:class:`MachineGrant` puts them together for :class:`~.oauth.OAuthAuth`.

Nothing here logs or shows a secret, a key, an assertion or a token: errors carry only the
authorization server's ``error`` code and its description, made safe for a terminal.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from ...protocol.text import for_display
from .agent import AuthorizationFailed
from .client_auth import (
    ClientAuthentication,
    ClientSecretBasic,
    PublicClient,
    choose_auth_method,
    client_authentication,
)
from .discovery import read_bounded
from .dpop import DPoPProver
from .flow import MAX_TOKEN_BYTES, TokenResponse, parse_token_response

if TYPE_CHECKING:
    from .oauth import OAuthSettings

__all__ = [
    "GRANT_CLIENT_CREDENTIALS",
    "GRANT_ENTERPRISE",
    "GRANT_JWT_BEARER",
    "GRANT_TOKEN_EXCHANGE",
    "MACHINE_GRANTS",
    "TOKEN_TYPE_ID_JAG",
    "TOKEN_TYPE_ID_TOKEN",
    "MachineGrant",
    "TokenRequestError",
    "client_credentials_form",
    "extension_settings",
    "jwt_bearer_form",
    "machine_grant",
    "request_token",
    "token_exchange_form",
]

logger = logging.getLogger(__name__)

GRANT_CLIENT_CREDENTIALS = "client_credentials"
GRANT_JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GRANT_TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
# Not an OAuth grant type of its own: token exchange at the IdP, then JWT-bearer at the AS.
GRANT_ENTERPRISE = "enterprise"
TOKEN_TYPE_ID_JAG = "urn:ietf:params:oauth:token-type:id-jag"
TOKEN_TYPE_ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"

# The names a configuration may give ``OAuthSettings.grant`` for these grants (matched
# without case, ``_`` or ``-``: ``client_credentials`` is ``clientCredentials``).
MACHINE_GRANTS: dict[str, str] = {
    "clientcredentials": GRANT_CLIENT_CREDENTIALS,
    "jwtbearer": GRANT_JWT_BEARER,
    "wif": GRANT_JWT_BEARER,
    "workloadidentity": GRANT_JWT_BEARER,
    "urn:ietf:params:oauth:granttype:jwtbearer": GRANT_JWT_BEARER,
    "enterprise": GRANT_ENTERPRISE,
    "idjag": GRANT_ENTERPRISE,
    "urn:ietf:params:oauth:granttype:tokenexchange": GRANT_ENTERPRISE,
}


def _name(text: str) -> str:
    """A setting's name as configurations spell it in any case: ``id_token``, ``idToken``
    and ``id-token`` are one name."""
    return text.lower().replace("_", "").replace("-", "")



class TokenRequestError(AuthorizationFailed):
    """A token endpoint refused a request or answered something that is no token.

    The message names the endpoint's ``error`` code and description (clipped and escaped),
    never a credential.

    Attributes:
        error: the OAuth ``error`` code (``invalid_client``, ``invalid_grant``...), or
            ``None`` when the answer was not an OAuth error at all.
        status: the HTTP status (``None`` when no response arrived).
    """

    def __init__(self, message: str, *, error: str | None = None,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.error = error
        self.status = status


# --- grant parameters ------------------------------------------------------------------


def _common(form: dict[str, str], resource: str | None, scope: str | None) -> dict[str, str]:
    if resource is not None:
        form["resource"] = resource
    if scope:
        form["scope"] = scope
    return form


def client_credentials_form(*, resource: str | None, scope: str | None) -> dict[str, str]:
    """The ``client_credentials`` grant's parameters (OAuth 2.1 section 4.2), with the
    resource indicator (RFC 8707) MCP requires."""
    return _common({"grant_type": GRANT_CLIENT_CREDENTIALS}, resource, scope)


def jwt_bearer_form(assertion: str, *, resource: str | None,
                    scope: str | None) -> dict[str, str]:
    """The JWT-bearer grant's parameters (RFC 7523 section 2.1)."""
    return _common({"grant_type": GRANT_JWT_BEARER, "assertion": assertion}, resource, scope)


def token_exchange_form(subject_token: str, *, audience: str, resource: str,
                        scope: str | None,
                        subject_token_type: str = TOKEN_TYPE_ID_TOKEN,
                        requested_token_type: str = TOKEN_TYPE_ID_JAG) -> dict[str, str]:
    """A token exchange request (RFC 8693 section 2.1) for an ID-JAG: ``audience`` is the
    MCP server's authorization server's issuer, ``resource`` the MCP server."""
    form = {"grant_type": GRANT_TOKEN_EXCHANGE, "requested_token_type": requested_token_type,
            "audience": audience, "subject_token": subject_token,
            "subject_token_type": subject_token_type}
    return _common(form, resource, scope)


# --- the request -----------------------------------------------------------------------


async def request_token(session: aiohttp.ClientSession, endpoint: str,
                        form: Mapping[str, str], *, auth: ClientAuthentication,
                        audience: str, dpop: DPoPProver | None = None,
                        timeout: float = 30.0) -> TokenResponse:
    """POST one token request and read the answer.

    Args:
        session: the HTTP session to use.
        endpoint: the token endpoint's URL.
        form: the grant's parameters (the ``*_form`` functions).
        auth: the client's authentication, applied afresh to each attempt.
        audience: the authorization server's issuer (for a client assertion).
        dpop: prove possession of this key (RFC 9449 section 5); when the server answers
            ``use_dpop_nonce`` with a new ``DPoP-Nonce``, the request is sent once more
            with it (section 8).
        timeout: seconds for the whole exchange, per attempt.

    Raises:
        TokenRequestError: the server refused (its ``error`` code is kept), answered
            something that is no token response, or could not be reached.
    """
    answer = await _token_answer(session, endpoint, form, auth=auth, audience=audience,
                                 dpop=dpop, timeout=timeout)
    try:
        return parse_token_response(answer)
    except AuthorizationFailed as exc:
        raise TokenRequestError(str(exc), status=200) from None


async def _token_answer(session: aiohttp.ClientSession, endpoint: str,
                        form: Mapping[str, str], *, auth: ClientAuthentication,
                        audience: str, dpop: DPoPProver | None,
                        timeout: float) -> dict[str, Any]:
    """The JSON object of a 200 answer (see :func:`request_token`)."""
    retried = False
    while True:
        body = dict(form)
        headers = {"Accept": "application/json"}
        auth.apply(body, headers, audience=audience)
        if dpop is not None:
            headers["DPoP"] = dpop.proof("POST", endpoint)
        status, answer, response_headers = await _post(session, endpoint, body, headers,
                                                       timeout)
        if dpop is not None:
            fresh = dpop.observe(endpoint, response_headers, status)
        if status == 200:
            if not isinstance(answer, dict):
                raise TokenRequestError("the token endpoint's answer is not a JSON object",
                                        status=status)
            return answer
        error, description = _oauth_error(answer)
        if dpop is not None and not retried and error == "use_dpop_nonce" and fresh:
            retried = True
            continue
        raise TokenRequestError(_refusal(status, error, description), error=error,
                                status=status)


async def _post(session: aiohttp.ClientSession, endpoint: str, body: dict[str, str],
                headers: dict[str, str],
                timeout: float) -> tuple[int, Any, Mapping[str, str]]:
    try:
        async with session.post(endpoint, data=body, headers=headers, allow_redirects=False,
                                timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            try:
                raw = await read_bounded(response, MAX_TOKEN_BYTES, "the token endpoint")
            except AuthorizationFailed:
                raise TokenRequestError("the token endpoint's answer is too large",
                                        status=response.status) from None
            try:
                answer = orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                answer = None
            return response.status, answer, response.headers
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise TokenRequestError(
            f"the token endpoint could not be reached: {for_display(type(exc).__name__)}"
        ) from None


def _oauth_error(answer: Any) -> tuple[str | None, str | None]:
    if not isinstance(answer, dict):
        return None, None
    error, description = answer.get("error"), answer.get("error_description")
    return (error if isinstance(error, str) else None,
            description if isinstance(description, str) else None)


def _refusal(status: int, error: str | None, description: str | None) -> str:
    if error is None:
        return f"the token endpoint answered HTTP {status} without an OAuth error"
    text = f"the token endpoint refused: {for_display(error, 80)}"
    if description:
        text += f" ({for_display(description, 300)})"
    return text


# --- the grants together ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MachineGrant:
    """One machine-to-machine way of getting an access token, ready to run.

    Attributes:
        grant: :data:`GRANT_CLIENT_CREDENTIALS`, :data:`GRANT_JWT_BEARER` (workload
            identity) or :data:`GRANT_ENTERPRISE` (ID token -> ID-JAG -> access token).
        auth: the client's authentication at the authorization server.
        assertion: the workload JWT (JWT-bearer), when given inline.
        assertion_file: the file the workload JWT is read from at each request (platforms
            rotate it); used when ``assertion`` is ``None``.
        id_token: the user's ID token from the enterprise IdP (enterprise).
        idp_token_endpoint: the IdP's token endpoint (enterprise).
        idp_auth: the client's authentication at the IdP (enterprise).
        idp_issuer: the IdP's issuer (what an assertion to it is addressed to; ``None``:
            its token endpoint).
    """

    grant: str
    auth: ClientAuthentication
    assertion: str | None = field(default=None, repr=False)
    assertion_file: str | None = None
    id_token: str | None = field(default=None, repr=False)
    idp_token_endpoint: str | None = None
    idp_auth: ClientAuthentication = field(default_factory=PublicClient)
    idp_issuer: str | None = None

    def __post_init__(self) -> None:
        if self.grant == GRANT_CLIENT_CREDENTIALS and isinstance(self.auth, PublicClient):
            raise ValueError("the client_credentials grant needs a client secret or a "
                             "private key (only a confidential client may use it)")
        if self.grant == GRANT_JWT_BEARER and not (self.assertion or self.assertion_file):
            raise ValueError("the jwt-bearer grant needs an assertion or an assertion file")
        if self.grant == GRANT_ENTERPRISE and not (self.id_token and self.idp_token_endpoint):
            raise ValueError("enterprise-managed authorization needs the IdP's ID token "
                             "and token endpoint")
        if self.grant not in (GRANT_CLIENT_CREDENTIALS, GRANT_JWT_BEARER, GRANT_ENTERPRISE):
            raise ValueError(f"unknown machine grant {for_display(self.grant, 80)}")

    async def obtain(self, session: aiohttp.ClientSession, *, token_endpoint: str,
                     issuer: str, resource: str, scope: str | None,
                     dpop: DPoPProver | None = None,
                     timeout: float = 30.0) -> TokenResponse:
        """Get an access token for ``resource`` from the authorization server whose
        ``issuer`` and ``token_endpoint`` discovery found.

        Raises:
            TokenRequestError: a token endpoint refused, or the assertion file is unreadable.
        """
        if self.grant == GRANT_CLIENT_CREDENTIALS:
            form = client_credentials_form(resource=resource, scope=scope)
        elif self.grant == GRANT_JWT_BEARER:
            form = jwt_bearer_form(self._workload_assertion(), resource=resource, scope=scope)
        else:
            id_jag = await self._id_jag(session, issuer=issuer, resource=resource,
                                        scope=scope, timeout=timeout)
            form = jwt_bearer_form(id_jag, resource=resource, scope=scope)
        return await request_token(session, token_endpoint, form, auth=self.auth,
                                   audience=issuer, dpop=dpop, timeout=timeout)

    def _workload_assertion(self) -> str:
        if self.assertion:
            return self.assertion
        assert self.assertion_file is not None
        try:
            text = Path(self.assertion_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise TokenRequestError(
                f"the workload token file cannot be read: {for_display(type(exc).__name__)}"
            ) from None
        if not text or len(text) > MAX_TOKEN_BYTES:
            raise TokenRequestError("the workload token file holds no usable JWT")
        return text

    async def _id_jag(self, session: aiohttp.ClientSession, *, issuer: str, resource: str,
                      scope: str | None, timeout: float) -> str:
        assert self.id_token is not None and self.idp_token_endpoint is not None
        form = token_exchange_form(self.id_token, audience=issuer, resource=resource,
                                   scope=scope)
        answer = await _token_answer(session, self.idp_token_endpoint, form,
                                     auth=self.idp_auth,
                                     audience=self.idp_issuer or self.idp_token_endpoint,
                                     dpop=None, timeout=timeout)
        id_jag = answer.get("access_token")
        if answer.get("issued_token_type") != TOKEN_TYPE_ID_JAG or not isinstance(
                id_jag, str) or not id_jag or len(id_jag) > MAX_TOKEN_BYTES:
            raise TokenRequestError("the identity provider issued no ID-JAG")
        logger.debug("the identity provider issued an ID-JAG")
        return id_jag


# --- from settings ---------------------------------------------------------------------

# The ``extra`` settings these grants read (the ``oauth`` object of a config entry).
EXTRA_ASSERTION = "assertion"  # the workload JWT itself
EXTRA_ASSERTION_FILE = "assertion_file"  # or the file it is kept (and rotated) in
EXTRA_ID_TOKEN = "id_token"  # the user's ID token from the enterprise IdP
EXTRA_ID_TOKEN_FILE = "id_token_file"
EXTRA_IDP_TOKEN_ENDPOINT = "idp_token_endpoint"
EXTRA_IDP_CLIENT_ID = "idp_client_id"
EXTRA_IDP_CLIENT_SECRET = "idp_client_secret"
EXTRA_IDP_ISSUER = "idp_issuer"


def _extra(settings: OAuthSettings, name: str) -> str | None:
    wanted = _name(name)
    for key, value in settings.extra.items():
        if _name(key) == wanted:
            return (value.strip() or None) if isinstance(value, str) else None
    return None


def machine_grant(settings: OAuthSettings,
                  auth_methods: tuple[str, ...] | None) -> MachineGrant:
    """The :class:`MachineGrant` that ``settings`` describe, authenticating the client by
    its configured method or else the best one the authorization server lists
    (``auth_methods``: its ``token_endpoint_auth_methods_supported``).

    Raises:
        AuthorizationFailed: the grant is unknown or its settings are incomplete.
    """
    grant = MACHINE_GRANTS.get(_name(settings.grant))
    try:
        if grant is None:
            raise ValueError(f"unknown grant {for_display(settings.grant, 80)}")
        method = settings.token_endpoint_auth_method or choose_auth_method(
            list(auth_methods) if auth_methods is not None else None,
            has_secret=settings.client_secret is not None,
            has_key=settings.private_key_pem is not None)
        auth = client_authentication(method, client_id=settings.client_id,
                                     client_secret=settings.client_secret,
                                     private_key_pem=settings.private_key_pem,
                                     signing_alg=settings.signing_alg)
        idp_secret = _extra(settings, EXTRA_IDP_CLIENT_SECRET)
        idp_id = _extra(settings, EXTRA_IDP_CLIENT_ID)
        idp_auth: ClientAuthentication = (
            ClientSecretBasic(idp_id, idp_secret) if idp_id and idp_secret
            else PublicClient(idp_id))
        return MachineGrant(
            grant, auth, assertion=_extra(settings, EXTRA_ASSERTION),
            assertion_file=_extra(settings, EXTRA_ASSERTION_FILE),
            id_token=_extra(settings, EXTRA_ID_TOKEN) or _read_secret_file(
                _extra(settings, EXTRA_ID_TOKEN_FILE)),
            idp_token_endpoint=_extra(settings, EXTRA_IDP_TOKEN_ENDPOINT),
            idp_auth=idp_auth, idp_issuer=_extra(settings, EXTRA_IDP_ISSUER))
    except ValueError as exc:
        raise AuthorizationFailed(f"the {for_display(settings.grant, 80)} grant cannot be "
                                  f"used: {exc}") from None


def _read_secret_file(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{for_display(path, 200)} cannot be read "
                         f"({type(exc).__name__})") from None
    return text or None


def extension_settings(context: Mapping[str, Any]) -> dict[str, Any]:
    """The :class:`~.oauth.OAuthSettings` fields an extension scenario of the conformance
    suite asks for, from its ``MCP_CONFORMANCE_CONTEXT`` (``{}``: not one of them).

    ``auth/client-credentials-*`` give a client id and a secret or a private key;
    ``auth/wif-jwt-bearer`` a workload JWT (``valid_jwt``; the others it offers are there
    to be refused); ``auth/enterprise-managed-authorization`` the client's credentials at
    the authorization server and the user's ID token with the IdP that issued it.
    """
    name = context.get("name")

    def text(key: str) -> str | None:
        value = context.get(key)
        return value if isinstance(value, str) and value else None

    if name in ("auth/client-credentials-jwt", "auth/client-credentials-basic"):
        return {"grant": GRANT_CLIENT_CREDENTIALS, "client_id": text("client_id"),
                "client_secret": text("client_secret"),
                "private_key_pem": text("private_key_pem"),
                "signing_alg": text("signing_algorithm")}
    if name == "auth/wif-jwt-bearer":
        return {"grant": "jwt_bearer", "extra": {EXTRA_ASSERTION: text("valid_jwt")}}
    if name == "auth/enterprise-managed-authorization":
        return {"grant": GRANT_ENTERPRISE, "client_id": text("client_id"),
                "client_secret": text("client_secret"),
                "token_endpoint_auth_method": "client_secret_basic",
                "extra": {EXTRA_ID_TOKEN: text("idp_id_token"),
                          EXTRA_IDP_TOKEN_ENDPOINT: text("idp_token_endpoint"),
                          EXTRA_IDP_CLIENT_ID: text("idp_client_id"),
                          EXTRA_IDP_ISSUER: text("idp_issuer")}}
    return {}
