"""DPoP against a real authorization server and resource on loopback: a bound token from
the token endpoint, fresh proofs with ``ath`` at the resource, and the nonces both ask for."""

from __future__ import annotations

import aiohttp
import pytest

from mcp_multi.client.auth.client_auth import ClientSecretBasic
from mcp_multi.client.auth.dpop import (
    MAX_NONCE_RETRIES,
    DPoPProver,
    access_token_hash,
    choose_prover,
    dpop_challenge,
    is_nonce_challenge,
    proof_target,
)
from mcp_multi.client.auth.machine import (
    GRANT_CLIENT_CREDENTIALS,
    MachineGrant,
    TokenRequestError,
)
from mcp_multi.client.auth.oauth import MemoryTokenStore, OAuthAuth, OAuthSettings, StoredGrant

from .m2m_servers import (
    AS_NONCE,
    CLIENT_ID,
    CLIENT_SECRET,
    RS_NONCE,
    AuthServer,
    auth_server,
    jose_claims,
    jose_header,
    send,
)

__all__ = ["auth_server"]

GRANT = MachineGrant(GRANT_CLIENT_CREDENTIALS, ClientSecretBasic(CLIENT_ID, CLIENT_SECRET))


async def bound_token(server: AuthServer, session: aiohttp.ClientSession,
                      prover: DPoPProver) -> str:
    answer = await GRANT.obtain(session, token_endpoint=server.token_endpoint,
                                issuer=server.issuer, resource=server.resource, scope=None,
                                dpop=prover)
    assert answer.token_type == "DPoP"
    return answer.access_token


async def call(session: aiohttp.ClientSession, prover: DPoPProver, url: str,
               token: str) -> aiohttp.ClientResponse:
    """One resource request the way OAuthAuth makes it: headers, observe, retry on nonce."""
    for _ in range(MAX_NONCE_RETRIES + 1):
        async with session.post(url, headers=prover.resource_headers("POST", url, token),
                                json={}) as response:
            await response.read()
        prover.observe(url, response.headers, response.status)
        if not prover.retry_for_nonce(url, response.status, response.headers):
            return response
    return response


async def test_the_token_is_bound_to_the_runs_key(auth_server: AuthServer) -> None:
    auth_server.dpop = True
    prover = DPoPProver.for_server(["RS256", "ES256"])
    assert prover is not None and prover.algorithm == "ES256"
    async with aiohttp.ClientSession() as session:
        token = await bound_token(auth_server, session, prover)
        assert jose_claims(token)["cnf"] == {"jkt": prover.thumbprint}
        proof = auth_server.requests[0].headers["DPoP"]
        header, claims = jose_header(proof), jose_claims(proof)
        assert header["typ"] == "dpop+jwt" and "d" not in header["jwk"]
        assert claims["htm"] == "POST" and claims["htu"] == auth_server.token_endpoint
        assert "ath" not in claims and "nonce" not in claims
        # Each resource request gets its own proof (the resource refuses a replayed jti).
        for _ in range(3):
            response = await call(session, prover, auth_server.resource + "?q=1#f", token)
            assert response.status == 200
    sent = auth_server.resource_requests
    assert len(sent) == 3 and all(r.headers["Authorization"] == f"DPoP {token}" for r in sent)
    assert jose_claims(sent[0].headers["DPoP"])["ath"] == access_token_hash(token)


async def test_another_key_cannot_use_the_token(auth_server: AuthServer) -> None:
    auth_server.dpop = True
    async with aiohttp.ClientSession() as session:
        token = await bound_token(auth_server, session, DPoPProver())
        response = await call(session, DPoPProver(), auth_server.resource, token)
    assert response.status == 401


async def test_nonces_of_the_token_endpoint_and_the_resource(auth_server: AuthServer) -> None:
    auth_server.dpop = auth_server.as_nonce = auth_server.rs_nonce = True
    prover = DPoPProver()
    async with aiohttp.ClientSession() as session:
        token = await bound_token(auth_server, session, prover)
        first, second = auth_server.requests
        assert "nonce" not in jose_claims(first.headers["DPoP"])
        assert jose_claims(second.headers["DPoP"])["nonce"] == AS_NONCE
        assert (await call(session, prover, auth_server.resource, token)).status == 200
        assert (await call(session, prover, auth_server.resource, token)).status == 200
    nonces = [jose_claims(r.headers["DPoP"]).get("nonce")
              for r in auth_server.resource_requests]
    assert nonces == [None, RS_NONCE, RS_NONCE]  # asked once, then kept


async def test_a_token_endpoint_insisting_on_a_nonce_is_asked_twice_at_most(
        auth_server: AuthServer) -> None:
    auth_server.dpop = True
    auth_server.refuse_with = "use_dpop_nonce"  # and never a DPoP-Nonce header
    async with aiohttp.ClientSession() as session:
        with pytest.raises(TokenRequestError, match="use_dpop_nonce"):
            await bound_token(auth_server, session, DPoPProver())
    assert len(auth_server.requests) == 1


def test_a_server_rotating_nonces_cannot_make_the_client_loop() -> None:
    prover = DPoPProver()
    url = "https://mcp.example/mcp"
    challenge = 'DPoP error="use_dpop_nonce"'
    retries = [prover.retry_for_nonce(url, 401, {"WWW-Authenticate": challenge,
                                                 "DPoP-Nonce": f"n{i}"}) for i in range(6)]
    assert retries == [True] * MAX_NONCE_RETRIES + [False] * (6 - MAX_NONCE_RETRIES)
    prover.observe(url, {}, 200)  # a success ends the streak
    assert prover.retry_for_nonce(url, 401, {"www-authenticate": challenge,
                                             "dpop-nonce": "n9"})
    assert jose_claims(prover.proof("GET", url))["nonce"] == "n9"
    # Another origin has its own nonce (none yet).
    assert "nonce" not in jose_claims(prover.proof("POST", "https://as.example/token"))


@pytest.mark.parametrize(("challenge", "expected"), [
    ('DPoP error="use_dpop_nonce"', True),
    ('dpop algs="ES256", error="use_dpop_nonce"', True),
    ('Bearer realm="x", DPoP error=use_dpop_nonce', True),
    ('Bearer error="use_dpop_nonce", DPoP algs="ES256"', False),
    ('DPoP error="invalid_token"', False),
    ('DPoPx error="use_dpop_nonce"', False),
    ("", False),
])
def test_nonce_challenges(challenge: str, expected: bool) -> None:
    assert is_nonce_challenge(401, {"WWW-Authenticate": challenge}) is expected
    assert is_nonce_challenge(403, {"WWW-Authenticate": challenge}) is False


@pytest.mark.parametrize("nonce", ["has space", 'quo"te', "x" * 600, ""])
def test_a_malformed_nonce_is_not_kept(nonce: str) -> None:
    prover = DPoPProver()
    assert prover.observe("https://a.example/", {"DPoP-Nonce": nonce}) is False
    assert "nonce" not in jose_claims(prover.proof("POST", "https://a.example/x"))


def test_algorithm_choice_and_targets() -> None:
    assert DPoPProver.for_server(None) is None
    assert DPoPProver.for_server(["HS256", "none"]) is None
    eddsa = DPoPProver.for_server(["EdDSA"])
    assert eddsa is not None and jose_header(eddsa.proof("GET", "http://h/"))["alg"] == "EdDSA"
    with pytest.raises(ValueError):
        DPoPProver("none")
    assert proof_target("HTTP://Host:8080/mcp?sessionId=1#x") == "http://host:8080/mcp"
    assert proof_target("http://host") == "http://host/"
    assert "jkt" in repr(DPoPProver())


async def test_oauth_auth_binds_its_tokens_when_the_server_asks(
        auth_server: AuthServer) -> None:
    """The resource challenges with the DPoP scheme, both servers want nonces: OAuthAuth
    gets a bound token and presents it with a fresh proof per request."""
    auth_server.dpop = auth_server.as_nonce = auth_server.rs_nonce = True
    settings = OAuthSettings(grant="client_credentials", client_id=CLIENT_ID,
                             client_secret=CLIENT_SECRET)
    auth = OAuthAuth(auth_server.resource, settings)
    async with aiohttp.ClientSession() as session:
        for _ in range(3):
            assert await send(auth, session, auth_server.resource) == 200
    assert auth.grant is not None and auth.grant.token_type == "DPoP"
    assert len(auth_server.requests) == 2  # one nonce retry at the token endpoint
    presented = [r.headers.get("Authorization", "").split(" ")[0]
                 for r in auth_server.resource_requests]
    # no token yet; the token without the nonce; then with it, three times
    assert presented == ["", "DPoP", "DPoP", "DPoP", "DPoP"]
    jtis = {jose_claims(r.headers["DPoP"])["jti"] for r in auth_server.resource_requests[1:]}
    assert len(jtis) == 4


async def test_no_dpop_when_the_settings_say_never(auth_server: AuthServer) -> None:
    auth_server.dpop = True
    settings = OAuthSettings(grant="client_credentials", client_id=CLIENT_ID,
                             client_secret=CLIENT_SECRET, dpop=False)
    auth = OAuthAuth(auth_server.resource, settings)
    async with aiohttp.ClientSession() as session:  # this server insists on a proof
        with pytest.raises(TokenRequestError, match="invalid_dpop_proof"):
            await send(auth, session, auth_server.resource)
    assert "DPoP" not in auth_server.requests[0].headers


def test_a_stored_dpop_token_of_an_earlier_run_is_not_presented() -> None:
    store = MemoryTokenStore()
    store.save("https://mcp.example/mcp", StoredGrant(access_token="old", token_type="DPoP",
                                                      client_id="kept"))
    auth = OAuthAuth("https://mcp.example/mcp", store=store)
    assert auth.grant is not None and auth.grant.access_token is None
    assert auth.grant.client_id == "kept"


def test_the_dpop_challenge_is_read_for_discovery() -> None:
    headers = {"WWW-Authenticate": 'DPoP resource_metadata="https://m/.well-known/x", '
                                   'scope="a b", algs="ES256"'}
    challenge = dpop_challenge(headers)
    assert challenge is not None and challenge.resource_metadata == "https://m/.well-known/x"
    assert challenge.scopes == ("a", "b")
    assert dpop_challenge({"WWW-Authenticate": 'Bearer scope="a"'}) is None


@pytest.mark.parametrize("offered", [None, 7, "ES256", [1, "ES256"], {"ES256": 1}])
def test_a_malformed_algorithm_list_is_not_an_offer(offered: object) -> None:
    assert choose_prover(None, offered, resource_asks=True) is None
    forced = choose_prover(True, offered, resource_asks=False)
    assert forced is not None and forced.algorithm == "ES256"
    assert choose_prover(False, ["ES256"], resource_asks=True) is None
    assert choose_prover(None, ["ES256"], resource_asks=False) is None
