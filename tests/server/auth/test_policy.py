"""Roles and tool permissions (``--policy FILE``): the file's checks, who holds which role,
and each caller seeing and using only what its roles allow, over every transport.

Callers are told apart by the static tokens of the policy file itself (no authorization
server needed): ``ops-token`` holds the role ``ops``, a caller with no token the default role
``guest``.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mcp_multi.server.app import RunningServer
from mcp_multi.server.auth import ANONYMOUS, Principal
from mcp_multi.server.auth.policy import Policy, PolicyError

from ...conftest import StartServer
from ..wire import (
    RawPeer,
    SSEPeer,
    StdioPeer,
    StreamableHTTPPeer,
    WebSocketPeer,
    enveloped,
    stdio_args,
)

OPS_TOKEN = "ops-token-0123456789"
POLICY = f"""
default_role = "guest"

[roles.guest]
tools = ["echo", "get_*"]
resources = ["server://info"]
prompts = ["explain_error"]

[roles.ops]
tools = ["*"]
resources = ["server://*"]
prompts = ["*"]
admin = true

[[grants]]
scope = "mcp:ops"
roles = ["ops"]

[[tokens]]
name = "ops"
token = "sha256:{hashlib.sha256(OPS_TOKEN.encode()).hexdigest()}"
roles = ["ops"]
"""

GUEST_TOOLS = ["echo", "get_time"]
OPS_TOOLS = ["echo", "get_time", "list_files", "run_command", "math_calc", "admin_tools"]


def write_policy(directory: Path, text: str = POLICY) -> Path:
    path = directory / "policy.toml"
    path.write_text(text)
    return path


# ------------------------------------------------------------------ the file and its roles


def test_roles_of_tokens_rules_and_the_default() -> None:
    policy = Policy.parse(POLICY)
    ops = policy.principal_for_token(OPS_TOKEN)
    assert ops is not None and ops.subject == "token:ops" and ops.issuer is None
    assert policy.roles_for(ops) == {"ops"}
    assert policy.principal_for_token("ops-token") is None
    assert policy.principal_for_token("") is None
    assert policy.roles_for(ANONYMOUS) == {"guest"}
    scoped = Principal("alice", frozenset({"mcp:ops", "other"}), issuer="https://as.example")
    assert policy.roles_for(scoped) == {"ops"}
    # A subject an authorization server chose never takes a static token's roles.
    impostor = Principal("token:ops", issuer="https://as.example")
    assert policy.roles_for(impostor) == {"guest"}


def test_access_of_a_role() -> None:
    policy = Policy.parse(POLICY)
    guest = policy.access(ANONYMOUS)
    assert [guest.tool(n) for n in ("echo", "get_time", "run_command", "admin_tools")] == \
        [True, True, False, False]
    assert guest.readable("server://info") and not guest.readable("server://stats")
    assert not guest.readable("server://tools/echo", "server://tools/{name}")
    ops = policy.access(policy.principal_for_token(OPS_TOKEN) or ANONYMOUS)
    assert ops.tool("admin_tools") and ops.readable("server://tools/echo",
                                                    "server://tools/{name}")


def test_plain_tokens_rules_by_subject_and_client() -> None:
    policy = Policy.parse("""
        [roles.a]
        tools = ["echo"]
        [roles.b]
        tools = ["math_calc"]
        [[grants]]
        subject = "alice"
        client_id = "cli"
        roles = ["a"]
        [[tokens]]
        name = "bot"
        token = "plain-secret"
        roles = ["b"]
        scopes = ["x"]
    """)
    bot = policy.principal_for_token("plain-secret")
    assert bot is not None and bot.scopes == {"x"} and policy.roles_for(bot) == {"b"}
    assert policy.roles_for(Principal("alice", client_id="cli", issuer="i")) == {"a"}
    assert policy.roles_for(Principal("alice", client_id="other", issuer="i")) == frozenset()
    assert policy.roles_for(ANONYMOUS) == frozenset()  # no default role: nothing
    assert not policy.access(ANONYMOUS).tool("echo")


BAD_POLICIES = {
    "not TOML": ("roles = [", "not valid TOML"),
    "unknown top key": ("role = 1", "unknown key 'role'"),
    "unknown role key": ("[roles.a]\ntool = ['echo']", "roles.a: unknown key 'tool'"),
    "bad type": ("[roles.a]\ntools = 'echo'", "roles.a.tools: expected an array of strings"),
    "admin not bool": ("[roles.a]\nadmin = 'yes'", "roles.a.admin: expected true or false"),
    "unknown default role": ("default_role = 'root'", "default_role: no role 'root'"),
    "unknown role in a rule": ("[roles.a]\n[[grants]]\nscope = 's'\nroles = ['b']",
                               "grants[0].roles[0]: no role 'b'"),
    "rule without condition": ("[roles.a]\n[[grants]]\nroles = ['a']",
                               "grants[0]: names no condition"),
    "unknown role of a token": ("[[tokens]]\nname = 't'\ntoken = 'x'\nroles = ['a']",
                                "tokens[0].roles[0]: no role 'a'"),
    "duplicate token": (
        "[roles.a]\n[[tokens]]\nname = 't'\ntoken = 'abc'\nroles = ['a']\n"
        f"[[tokens]]\nname = 'u'\ntoken = 'sha256:{hashlib.sha256(b'abc').hexdigest()}'\n"
        "roles = ['a']", "tokens[1].token: the same token as tokens[0]"),
    "duplicate token name": (
        "[roles.a]\n[[tokens]]\nname = 't'\ntoken = 'a'\nroles = ['a']\n"
        "[[tokens]]\nname = 't'\ntoken = 'b'\nroles = ['a']", "tokens[1].name"),
    "short digest": ("[roles.a]\n[[tokens]]\nname = 't'\ntoken = 'sha256:abcd'\n"
                     "roles = ['a']", "64 hexadecimal digits"),
}


@pytest.mark.parametrize("case", sorted(BAD_POLICIES))
def test_bad_policy_is_refused_with_the_place_named(case: str) -> None:
    text, expected = BAD_POLICIES[case]
    with pytest.raises(PolicyError) as caught:
        Policy.parse(text, "p.toml")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("p.toml: ") and expected in message


@pytest.mark.parametrize("case", ["not TOML", "unknown role key", "duplicate token",
                                  "missing file"])
def test_bad_policy_file_stops_the_server_with_one_line(case: str, tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    if case != "missing file":
        path.write_text(BAD_POLICIES[case][0])
    done = subprocess.run([sys.executable, "-m", "mcp_multi.server", "--port", "0",
                           "--policy", str(path)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"mcp-server: error: --policy {path}: ")


# ------------------------------------------------------------------ over the wire

# Every transport as a test's id: the two eras of Streamable HTTP apart.
WIRES = ["websocket", "sse", "http", "http-modern"]


async def peer_for(wire: str, server: RunningServer, token: str | None) -> RawPeer:
    """A raw peer of ``wire`` sending ``token`` as its bearer token (if any), initialized
    unless it speaks 2026-07-28."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    http = aiohttp.ClientSession(headers=headers)
    base = server.base_url
    peer: RawPeer
    if wire == "websocket":
        peer = WebSocketPeer(http, await http.ws_connect(base + "/ws", protocols=("mcp",)))
    elif wire == "sse":
        stream = await http.get(base + "/sse", headers={"Accept": "text/event-stream"})
        assert stream.status == 200, stream.status
        sse = SSEPeer(http, stream, "", base)
        event, sse.endpoint = await sse.next_event()
        assert event == "endpoint"
        peer = sse
    else:
        peer = StreamableHTTPPeer(http, base + "/mcp", modern=wire == "http-modern")
    if wire != "http-modern":
        await peer.initialize()
    return peer


async def ask(peer: RawPeer, wire: str, method: str, params: dict[str, Any] | None = None,
              id: int = 1) -> dict[str, Any]:
    if wire == "http-modern":
        return await peer.request(method, enveloped(params), id)
    return await peer.request(method, params or {}, id)


@pytest.fixture
async def policy_server(start_mcp_server: StartServer, tmp_path: Path) -> RunningServer:
    return await start_mcp_server(name="policy-server", policy=write_policy(tmp_path))


@pytest.fixture
async def peers(policy_server: RunningServer, request: pytest.FixtureRequest
                ) -> AsyncIterator[dict[str, RawPeer]]:
    wire = request.param
    opened = {"guest": await peer_for(wire, policy_server, None),
              "ops": await peer_for(wire, policy_server, OPS_TOKEN)}
    yield opened
    for peer in opened.values():
        await peer.close()


def names(reply: dict[str, Any], key: str = "tools", field: str = "name") -> list[str]:
    assert "result" in reply, reply
    return [entry[field] for entry in reply["result"][key]]


@pytest.mark.parametrize("peers", WIRES, indirect=True)
async def test_each_role_lists_its_own_tools(peers: dict[str, RawPeer],
                                             request: pytest.FixtureRequest) -> None:
    wire = request.node.callspec.params["peers"]
    assert names(await ask(peers["guest"], wire, "tools/list")) == GUEST_TOOLS
    assert names(await ask(peers["ops"], wire, "tools/list")) == OPS_TOOLS


@pytest.mark.parametrize("peers", WIRES, indirect=True)
async def test_a_hidden_tool_is_refused_as_an_unknown_one(
        peers: dict[str, RawPeer], request: pytest.FixtureRequest) -> None:
    wire = request.node.callspec.params["peers"]
    guest = peers["guest"]
    hidden = await ask(guest, wire, "tools/call",
                       {"name": "run_command", "arguments": {"command": "echo hi"}}, id=2)
    unknown = await ask(guest, wire, "tools/call", {"name": "no_such_tool"}, id=3)
    assert hidden["error"]["code"] == unknown["error"]["code"] == -32602
    assert hidden["error"]["message"] == "Unknown tool: run_command"
    assert unknown["error"]["message"] == "Unknown tool: no_such_tool"
    assert hidden["error"]["data"] == {"tool": "run_command"}
    assert "policy" not in str(hidden).lower() and "role" not in str(hidden).lower()
    admin = await ask(guest, wire, "tools/call",
                      {"name": "admin_tools", "arguments": {"action": "list"}}, id=4)
    assert admin["error"]["message"] == "Unknown tool: admin_tools"
    allowed = await ask(peers["ops"], wire, "tools/call",
                        {"name": "run_command", "arguments": {"command": "echo hi"}}, id=5)
    assert "hi" in allowed["result"]["content"][0]["text"]


@pytest.mark.parametrize("peers", WIRES, indirect=True)
async def test_resources_templates_and_prompts_follow_the_roles(
        peers: dict[str, RawPeer], request: pytest.FixtureRequest) -> None:
    wire = request.node.callspec.params["peers"]
    guest, ops = peers["guest"], peers["ops"]
    assert names(await ask(guest, wire, "resources/list"), "resources", "uri") == \
        ["server://info"]
    assert names(await ask(ops, wire, "resources/list"), "resources", "uri") == \
        ["server://info", "server://stats"]
    assert names(await ask(guest, wire, "resources/templates/list"), "resourceTemplates",
                 "uriTemplate") == []
    assert names(await ask(guest, wire, "prompts/list"), "prompts") == ["explain_error"]
    assert names(await ask(ops, wire, "prompts/list"), "prompts") == \
        ["explain_tool_call", "explain_error"]
    # server://info names only the tools the caller may use.
    info = await ask(guest, wire, "resources/read", {"uri": "server://info"})
    assert '"run_command"' not in info["result"]["contents"][0]["text"]
    assert '"echo"' in info["result"]["contents"][0]["text"]
    # A hidden resource, template read or prompt is answered as one that does not exist.
    for uri in ("server://stats", "server://tools/echo"):
        hidden = await ask(guest, wire, "resources/read", {"uri": uri}, id=7)
        missing = await ask(ops, wire, "resources/read", {"uri": uri + "-none"}, id=8)
        assert hidden["error"]["code"] == missing["error"]["code"]
        assert hidden["error"]["message"] == missing["error"]["message"].replace("-none", "")
    hidden = await ask(guest, wire, "prompts/get",
                       {"name": "explain_tool_call", "arguments": {"tool": "echo"}}, id=9)
    missing = await ask(ops, wire, "prompts/get", {"name": "explain_tool_callx"}, id=10)
    assert hidden["error"]["code"] == missing["error"]["code"] == -32602
    assert hidden["error"]["message"] == "Invalid params: unknown prompt 'explain_tool_call'"
    completion = await ask(guest, wire, "completion/complete", {
        "ref": {"type": "ref/prompt", "name": "explain_tool_call"},
        "argument": {"name": "tool", "value": ""}}, id=11)
    assert completion["error"]["message"] == hidden["error"]["message"]
    # Completing tool names offers only the tools the caller may see.
    offered = await ask(ops, wire, "completion/complete", {
        "ref": {"type": "ref/resource", "uri": "server://tools/{name}"},
        "argument": {"name": "name", "value": ""}}, id=12)
    assert offered["result"]["completion"]["values"] == OPS_TOOLS


async def test_stdio_callers_hold_the_default_role(policy_server: RunningServer) -> None:
    policy = policy_server.state.settings.policy
    peer = await StdioPeer.spawn(*stdio_args(policy_server), "--policy", str(policy))
    try:
        await peer.initialize()
        assert names(await peer.request("tools/list", {}, 1)) == GUEST_TOOLS
        hidden = await peer.request("tools/call", {"name": "math_calc",
                                                   "arguments": {"expression": "1+1"}}, 2)
        assert hidden["error"]["message"] == "Unknown tool: math_calc"
    finally:
        await peer.close()


async def test_without_a_policy_everyone_sees_everything(mcp_server: RunningServer,
                                                         policy_server: RunningServer) -> None:
    http = aiohttp.ClientSession()
    plain = StreamableHTTPPeer(http, mcp_server.base_url + "/mcp")
    guarded = StreamableHTTPPeer(http, policy_server.base_url + "/mcp")
    try:
        caps = (await plain.initialize())["result"]["capabilities"]
        assert caps["tools"] == {"listChanged": True}
        assert caps["resources"]["listChanged"] is False  # fixed without a policy
        assert names(await plain.request("tools/list", {}, 1)) == \
            ["echo", "get_time", "list_files", "run_command", "math_calc"]
        caps = (await guarded.initialize())["result"]["capabilities"]
        assert caps["resources"]["listChanged"] is True  # a reload may change them
    finally:
        plain.session_id = guarded.session_id = None
        await plain.close()
        await guarded.close()
