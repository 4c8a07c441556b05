"""A small authorization server and a protected MCP server in one aiohttp app, on
127.0.0.1:0, for the client's OAuth tests (error paths and knobs the e2e authorization
server has no reason to offer).

The authorization server's issuer has a path (``<base>/as``), so its metadata lives at the
path-inserted well-known URI. It registers clients dynamically, approves every
authorization at once (redirecting with ``code``, ``state`` and ``iss``), checks PKCE and
``resource`` at the token endpoint, and issues opaque tokens with the scopes asked for
(and refresh tokens when ``refresh`` is on). The MCP side speaks just enough of the
protocol (initialize, tools/list, tools/call of ``echo``) over Streamable HTTP (JSON
answers), legacy SSE and WebSocket, each behind the same bearer check.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import orjson
from aiohttp import WSMsgType, web

SSE_QUEUES = web.AppKey("sse_queues", dict[str, "asyncio.Queue[dict[str, Any]]"])
TOOLS = [{"name": "echo", "inputSchema": {"type": "object",
                                          "properties": {"text": {"type": "string"}}}}]


@dataclass
class Token:
    scopes: tuple[str, ...]
    expires_at: float
    resource: str


@dataclass
class FakeOAuth:
    """The app's state and knobs (the test changes them between requests)."""

    base: str = ""
    refresh: bool = False  # issue refresh tokens
    expires_in: int = 3600
    required: tuple[str, ...] = ()  # scopes every MCP request needs (challenge scope)
    call_needs: tuple[str, ...] = ()  # extra scopes tools/call needs (403 otherwise)
    always_forbid: bool = False
    iss: str | None = "correct"  # "correct", "wrong", None (omitted)
    metadata_padding: int = 0  # bytes of junk added to the metadata document
    tokens: dict[str, Token] = field(default_factory=dict)
    refresh_tokens: dict[str, tuple[str, ...]] = field(default_factory=dict)
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    clients: dict[str, dict[str, Any]] = field(default_factory=dict)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    mcp_auth_headers: list[str | None] = field(default_factory=list)

    @property
    def issuer(self) -> str:
        return f"{self.base}/as"

    @property
    def mcp_url(self) -> str:
        return f"{self.base}/mcp"

    def revoke_all(self) -> None:
        self.tokens.clear()

    # -- authorization server -------------------------------------------------------

    async def prm(self, request: web.Request) -> web.Response:
        resource = self.base + request.match_info.get("tail", "")
        return web.json_response({"resource": resource, "authorization_servers": [self.issuer],
                                  "scopes_supported": list(self.required) or None})

    async def metadata(self, request: web.Request) -> web.Response:
        doc: dict[str, Any] = {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "registration_endpoint": f"{self.issuer}/register",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "none"],
            "authorization_response_iss_parameter_supported": True,
        }
        if self.metadata_padding:
            doc["padding"] = "x" * self.metadata_padding
        return web.json_response(doc)

    async def register(self, request: web.Request) -> web.Response:
        body = await request.json()
        client_id = f"client-{len(self.clients) + 1}"
        secret = secrets.token_urlsafe(16)
        self.clients[client_id] = {"secret": secret, "redirect_uris": body["redirect_uris"]}
        return web.json_response({"client_id": client_id, "client_secret": secret,
                                  "token_endpoint_auth_method": "client_secret_basic",
                                  "redirect_uris": body["redirect_uris"]}, status=201)

    async def authorize(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        self.authorize_requests.append(query)
        code = secrets.token_urlsafe(16)
        self.codes[code] = query
        answer = {"code": code, "state": query.get("state", "")}
        if self.iss == "correct":
            answer["iss"] = self.issuer
        elif self.iss == "wrong":
            answer["iss"] = "https://evil.example"
        raise web.HTTPFound(f"{query['redirect_uri']}?{urlencode(answer)}")

    def _client_ok(self, request: web.Request, form: dict[str, str]) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        client = self.clients.get(client_id)
        return client is not None and secrets.compare_digest(client["secret"], secret)

    async def token(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self.token_requests.append({k: str(v) for k, v in form.items()})
        if not self._client_ok(request, {k: str(v) for k, v in form.items()}):
            return web.json_response({"error": "invalid_client"}, status=401)
        if form.get("grant_type") == "authorization_code":
            asked = self.codes.pop(str(form.get("code")), None)
            verifier = str(form.get("code_verifier", ""))
            challenge = base64.urlsafe_b64encode(
                hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if asked is None or asked.get("code_challenge") != challenge or (
                    asked.get("resource") != form.get("resource")):
                return web.json_response({"error": "invalid_grant"}, status=400)
            scopes = tuple((asked.get("scope") or "").split())
        elif form.get("grant_type") == "refresh_token":
            scopes_or_none = self.refresh_tokens.pop(str(form.get("refresh_token")), None)
            if scopes_or_none is None:
                return web.json_response({"error": "invalid_grant"}, status=400)
            scopes = scopes_or_none
        else:
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        return web.json_response(self._issue(scopes, str(form.get("resource"))))

    def _issue(self, scopes: tuple[str, ...], resource: str) -> dict[str, Any]:
        access = secrets.token_urlsafe(24)
        self.tokens[access] = Token(scopes, time.time() + self.expires_in, resource)
        answer: dict[str, Any] = {"access_token": access, "token_type": "Bearer",
                                  "expires_in": self.expires_in, "scope": " ".join(scopes)}
        if self.refresh:
            refresh = secrets.token_urlsafe(24)
            self.refresh_tokens[refresh] = scopes
            answer["refresh_token"] = refresh
        return answer

    # -- the protected MCP server ---------------------------------------------------

    def check(self, request: web.Request, method: str | None) -> web.Response | None:
        """``None`` when the request may pass, else the 401/403 to answer."""
        header = request.headers.get("Authorization")
        self.mcp_auth_headers.append(header)
        # The legacy transport's POSTs belong to the resource of its stream.
        path = "/sse" if request.path == "/message" else request.path
        prm = f"{self.base}/.well-known/oauth-protected-resource{path}"
        scope = f', scope="{" ".join(self.required)}"' if self.required else ""
        token = self.tokens.get(header[7:]) if header and header.startswith("Bearer ") else None
        if token is None or token.expires_at < time.time():
            error = ', error="invalid_token"' if header else ""
            return web.json_response(
                {"error": "invalid_token"}, status=401,
                headers={"WWW-Authenticate": f'Bearer resource_metadata="{prm}"{scope}{error}'})
        needed = set(self.required) | (set(self.call_needs) if method == "tools/call" else set())
        if self.always_forbid or not needed <= set(token.scopes):
            wanted = " ".join(sorted(needed)) or "x"
            return web.json_response(
                {"error": "insufficient_scope"}, status=403,
                headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", '
                                             f'scope="{wanted}", resource_metadata="{prm}"'})
        return None

    async def mcp(self, request: web.Request) -> web.Response:
        message = await request.json()
        refusal = self.check(request, message.get("method"))
        if refusal is not None:
            return refusal
        reply = answer(message)
        if reply is None:
            return web.Response(status=202)
        return web.json_response(reply)

    async def sse(self, request: web.Request) -> web.StreamResponse:
        refusal = self.check(request, None)
        if refusal is not None:
            return refusal
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        request.app[SSE_QUEUES]["one"] = queue
        await response.write(b"event: endpoint\ndata: /message?sessionId=one\n\n")
        while True:
            reply = await queue.get()
            await response.write(b"event: message\ndata: " + orjson.dumps(reply) + b"\n\n")

    async def message(self, request: web.Request) -> web.Response:
        message = await request.json()
        refusal = self.check(request, message.get("method"))
        if refusal is not None:
            return refusal
        reply = answer(message)
        if reply is not None:
            request.app[SSE_QUEUES]["one"].put_nowait(reply)
        return web.Response(status=202)

    async def ws(self, request: web.Request) -> web.StreamResponse:
        refusal = self.check(request, None)
        if refusal is not None:
            return refusal
        ws = web.WebSocketResponse(protocols=("mcp",))
        await ws.prepare(request)
        async for frame in ws:
            if frame.type is WSMsgType.TEXT:
                reply = answer(orjson.loads(frame.data))
                if reply is not None:
                    await ws.send_str(orjson.dumps(reply).decode())
        return ws


def answer(message: dict[str, Any]) -> dict[str, Any] | None:
    """The reply of the toy MCP server (``None`` for a notification)."""
    if "id" not in message:
        return None
    method = message.get("method")
    if method == "initialize":
        result: dict[str, Any] = {
            "protocolVersion": message["params"]["protocolVersion"],
            "capabilities": {"tools": {}}, "serverInfo": {"name": "fake", "version": "1"}}
    elif method == "tools/list":
        result = {"tools": TOOLS}
    elif method == "tools/call":
        text = message["params"].get("arguments", {}).get("text", "")
        result = {"content": [{"type": "text", "text": text}]}
    else:
        return {"jsonrpc": "2.0", "id": message["id"],
                "error": {"code": -32601, "message": "Method not found"}}
    return {"jsonrpc": "2.0", "id": message["id"], "result": result}


async def start_fake_oauth() -> tuple[FakeOAuth, web.AppRunner]:
    """Start the app on 127.0.0.1:0; the caller cleans the runner up."""
    state = FakeOAuth()
    app = web.Application()
    app[SSE_QUEUES] = {}
    app.router.add_get("/.well-known/oauth-protected-resource{tail:/.*}", state.prm)
    app.router.add_get("/.well-known/oauth-authorization-server/as", state.metadata)
    app.router.add_post("/as/register", state.register)
    app.router.add_get("/as/authorize", state.authorize)
    app.router.add_post("/as/token", state.token)
    app.router.add_post("/mcp", state.mcp)
    app.router.add_get("/sse", state.sse)
    app.router.add_post("/message", state.message)
    app.router.add_get("/ws", state.ws)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state.base = f"http://127.0.0.1:{port}"
    return state, runner
