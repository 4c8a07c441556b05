"""A config entry's ``oauth`` object and the ``--oauth-*`` options, as OAuthSettings."""

from __future__ import annotations

import pytest

from mcp_multi.client.auth.oauth import OAuthSettings
from mcp_multi.client.auth.settings import merge_oauth, parse_oauth, static_authorization
from mcp_multi.client.config import ConfigError, parse_config


def _entry(oauth: object, **more: object) -> dict[str, object]:
    return {"mcpServers": {"api": {"url": "https://mcp.example/mcp", "oauth": oauth, **more}}}


def test_the_names_other_clients_use() -> None:
    (spec,) = parse_config(_entry({
        "clientId": "app", "clientSecret": "s", "scopes": ["read", "write", "read"],
        "callbackPort": 33418, "clientMetadataUrl": "https://app.example/client.json",
        "tokenEndpointAuthMethod": "client_secret_post"}))
    assert spec.oauth == OAuthSettings(
        client_id="app", client_secret="s", scopes=("read", "write"), redirect_port=33418,
        client_metadata_url="https://app.example/client.json",
        token_endpoint_auth_method="client_secret_post")
    snake = parse_oauth({"client_id": "app", "redirect_port": "8080", "scope": "a b"})
    assert (snake.client_id, snake.redirect_port, snake.scopes) == ("app", 8080, ("a", "b"))
    cursor = parse_config({"mcpServers": {"c": {"url": "https://c.example/mcp", "auth": {
        "CLIENT_ID": "cid", "CLIENT_SECRET": "cs", "scopes": ["x"]}}}})[0].oauth
    assert cursor is not None and (cursor.client_id, cursor.client_secret) == ("cid", "cs")
    m2m = parse_oauth({"grantType": "client_credentials", "dpop": True, "audience": "x"})
    assert (m2m.grant, m2m.dpop, m2m.extra) == ("client_credentials", True, {"audience": "x"})
    assert parse_config(_entry(None))[0].oauth is None


@pytest.mark.parametrize(("oauth", "complaint"), [
    ("app", "must be an object"),
    ({"scopes": 5}, "scopes must be a list"),
    ({"scopes": ["a\"b"]}, "bad scope"),
    ({"callbackPort": 70000}, "callbackPort must be a port number"),
    ({"redirectPort": True}, "redirectPort must be a port number"),
    ({"clientId": ""}, "clientId must be a non-empty string"),
    ({"clientSecret": 12}, "clientSecret must be a non-empty string"),
    ({"clientMetadataUrl": "http://app.example/c.json"}, "must be an https URL with a path"),
    ({"tokenEndpointAuthMethod": "magic"}, "must be one of"),
    ({"dpop": "yes"}, "dpop must be true or false"),
])
def test_a_bad_oauth_object_is_one_line_naming_the_field(oauth: object, complaint: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_entry(oauth), "servers.json")
    message = str(caught.value)
    assert message.startswith("servers.json: server 'api': \"oauth\": ")
    assert complaint in message and "\n" not in message


def test_a_secret_is_never_in_the_message_or_the_repr() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_entry({"clientSecret": ["hunter2"]}))
    assert "hunter2" not in str(caught.value)
    assert "hunter2" not in repr(parse_oauth({"clientSecret": "hunter2"}))


def test_a_servers_own_settings_win_field_by_field() -> None:
    own = OAuthSettings(client_id="own", scopes=("a",))
    flags = OAuthSettings(client_id="flag", client_secret="flag-secret", redirect_port=9000)
    merged = merge_oauth(own, flags)
    assert merged is not None
    assert (merged.client_id, merged.scopes, merged.redirect_port) == ("own", ("a",), 9000)
    assert merged.client_secret is None  # a secret goes with its own client id only
    assert merge_oauth(None, flags) is flags and merge_oauth(own, None) is own
    assert merge_oauth(OAuthSettings(scopes=("a",)), flags).client_secret == "flag-secret"  # type: ignore[union-attr]


def test_a_static_authorization_header_means_no_oauth() -> None:
    assert static_authorization({}, {"authorization": "Bearer t"})
    assert static_authorization({"Authorization": "Bearer t"})
    assert not static_authorization({"X-Api-Key": "k"}, {})
