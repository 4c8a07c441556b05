"""Server settings: one frozen object built by the CLI (or a test) and read everywhere."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ServerSettings", "is_loopback_host"]


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Everything a server instance is configured with.

    Attributes:
        host: interface to bind; loopback unless told otherwise.
        port: TCP port; 0 picks a free one.
        max_connections: TCP connections held at once; more are answered 503 and closed.
            ``None`` derives it from the open-file limit (raised to its hard limit at
            start-up) minus a reserve.
        header_timeout: seconds a request head may take from its first byte (or from the
            connection's opening); past it the connection is closed.
        keepalive_timeout: seconds an idle keep-alive connection is kept open.
        name: server name reported in ``initialize`` and ``server://info``.
        tools: names of enabled tools; ``None`` means all.
        profile: a named set of fixtures added to the server (``--profile``); ``None`` for
            none (see :mod:`mcp_multi.server.profiles`).
        root: the directory ``list_files`` is confined to.
        max_message_size: largest accepted JSON-RPC message in bytes.
        max_sse_sessions: concurrent legacy SSE sessions allowed.
        max_http_sessions: concurrent Streamable HTTP sessions allowed.
        http_session_idle_timeout: seconds after which an idle Streamable HTTP session (no
            request running, no stream open) may be ended to admit a new one.
        http_handshake_grace: seconds a Streamable HTTP session may wait for its client's
            ``notifications/initialized``; past it, it gives way to a new session first.
        session_queue_size: outbound messages buffered per stream session (and per
            Streamable HTTP stream, for replay).
        max_stateless_requests: 2026-07-28 requests over HTTP served at once (each stands
            alone, so no session limit counts them); past it they get HTTP 503.
        task_ttl: seconds a task (tasks extension) lives from its creation: its work is
            stopped past it, and its result kept until then.
        max_tasks_per_client: tasks one client (a session, or a stateless client's address)
            may hold, running or finished; past it creating one is refused.
        max_tasks: tasks the whole server holds; past it creating one is refused.
        session_buffer_bytes: bytes of events a legacy SSE stream may have waiting for a
            client that does not read (at least 4 messages of ``max_message_size``); past it
            the stream is ended. Also what one Streamable HTTP session keeps in its response
            streams for delivery and replay; past it its oldest events are dropped.
        allowed_origins: browser origins allowed (CORS and DNS-rebinding check); ``*`` allows all.
        command_timeout: seconds a ``run_command`` process may run.
        command_output_cap: bytes of ``run_command`` output kept.
        auth_token: bearer token required on HTTP endpoints when set.
        auth_issuer: the OAuth authorization server whose access tokens the MCP endpoints
            accept (``--auth-issuer``; see :mod:`mcp_multi.server.auth`).
        auth_audience: this server's resource URL, what tokens must be issued for; ``None``
            derives it from the listening address (loopback only).
        auth_scopes: scopes every access token must grant (and ``scopes_supported``).
        auth_introspection_client: ``(client_id, client_secret)`` for the issuer's token
            introspection endpoint; ``None`` checks tokens as JWTs against its keys.
        auth_fetch_timeout: seconds one request to the authorization server may take.
        auth_key_refresh_interval: least seconds between two fetches of the issuer's keys
            made for tokens signed with a key the server does not know.
        metrics_token: bearer token required on ``/metrics`` when set (instead of the MCP
            endpoints' credentials).
        max_websocket_sessions: concurrent WebSocket sessions allowed.
        max_sessions_per_client: sessions one client address may hold in each transport's
            table; None is three quarters of the table (see ``session_table.default_share``).
        websocket_send_buffer: bytes of replies one WebSocket connection may have waiting
            to be sent; past it the server stops reading the connection's frames.
        websocket_total_buffer: the same bound over all WebSocket connections together.
        websocket_heartbeat: the WebSocket heartbeat, in seconds: a peer silent for half of
            it is pinged, and one still silent half of it after the ping is taken for dead
            and dropped (0: never).
        send_timeout: seconds one write may take on any transport (an HTTP response's JSON
            body or SSE event on ``/mcp`` and ``/sse``, a WebSocket reply), and seconds a
            WebSocket connection may stay over its send bound; past it the client is taken
            for one that does not read and its connection is aborted (1008 on WebSocket).
        body_timeout: seconds a request body may take to arrive once its head has; past
            it the request is answered 408 and the connection closed.
        sse_total_buffer: bytes of events all legacy SSE streams together may have waiting;
            past it the streams holding the most are ended.
        http_total_buffer: bytes all Streamable HTTP sessions together keep in their
            response streams; past it the sessions holding the most drop their oldest events.
        max_commands: ``run_command`` processes the whole server runs at once; one session
            may hold half of them (at least one).
        command_slot_wait: seconds a ``run_command`` call waits for a free slot before it is
            told the server is busy.
        page_size: entries in one page of ``tools/list``, ``resources/list``,
            ``resources/templates/list`` and ``prompts/list``; a longer list is paged with
            ``nextCursor``.
        ask_timeout: seconds a handler waits for its client to answer one request the server
            sent it (sampling, elicitation, roots; handshake era).
        max_asks: requests to its client one session may have awaiting answers at once.
        policy: the policy file of roles and what each may use (``--policy``; see
            :mod:`mcp_multi.server.auth.policy`); ``None`` for none: every caller may use
            everything.
        session_store: where sessions live when several server processes share them
            (``--session-store``): a URL ``redis://HOST:PORT/DB``, ``rediss://`` (TLS) or
            ``unix://PATH`` (see :mod:`mcp_multi.server.store`); ``None`` keeps them in this
            process's memory.
        workers: server processes serving one port (``--workers``; see
            :mod:`mcp_multi.server.workers`); more than one needs ``session_store``.
        worker: this process's number among ``workers`` (1 to N) when a supervisor started
            it; it names itself by it in its logs, ``/healthz`` and ``/metrics``, and listens
            with ``SO_REUSEPORT`` beside its siblings. ``None`` when it serves alone.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    # Connection-level limits (issue 8: 12).
    max_connections: int | None = None
    header_timeout: float = 10.0
    keepalive_timeout: float = 75.0
    name: str = "mcp-server"
    tools: tuple[str, ...] | None = None
    profile: str | None = None
    root: Path = field(default_factory=Path.cwd)
    log_level: str = "INFO"
    max_message_size: int = 4 * 1024 * 1024
    max_sse_sessions: int = 1000
    max_http_sessions: int = 1000
    http_session_idle_timeout: float = 600.0
    http_handshake_grace: float = 10.0
    session_queue_size: int = 256
    session_buffer_bytes: int = 16 * 1024 * 1024
    max_stateless_requests: int = 1000
    task_ttl: float = 600.0
    max_tasks_per_client: int = 64
    max_tasks: int = 4096
    allowed_origins: tuple[str, ...] = ()
    command_timeout: float = 10.0
    command_output_cap: int = 64 * 1024
    auth_token: str | None = field(default=None, repr=False)
    # OAuth resource server (issue 10)
    auth_issuer: str | None = None
    auth_audience: str | None = None
    auth_scopes: tuple[str, ...] = ()
    auth_introspection_client: tuple[str, str] | None = field(default=None, repr=False)
    auth_fetch_timeout: float = 5.0
    auth_key_refresh_interval: float = 30.0
    metrics_token: str | None = field(default=None, repr=False)
    # Bounds of the endpoints' session tables and WebSocket send buffers (issue 8: 9, 11).
    max_websocket_sessions: int = 1000
    max_sessions_per_client: int | None = None
    websocket_send_buffer: int = 16 * 1024 * 1024
    websocket_total_buffer: int = 256 * 1024 * 1024
    websocket_heartbeat: float = 30.0
    # Byte bounds of the HTTP transports' buffers, and the request-body deadline (issue 8: 9,
    # carried to every transport).
    body_timeout: float = 30.0
    send_timeout: float = 30.0
    sse_total_buffer: int = 256 * 1024 * 1024
    http_total_buffer: int = 256 * 1024 * 1024
    # run_command across sessions (issue 8, defect 17)
    max_commands: int = 8
    command_slot_wait: float = 5.0
    page_size: int = 100
    # Asking the client (issue 9)
    ask_timeout: float = 300.0
    max_asks: int = 16
    # Roles and tool permissions (issue 10)
    policy: Path | None = None
    # Scale-out (issue 11)
    session_store: str | None = field(default=None, repr=False)  # may hold a password
    workers: int = 1
    worker: int | None = None

    @property
    def session_bytes(self) -> int:
        """The bytes one SSE stream or Streamable HTTP session may hold for its client:
        ``session_buffer_bytes``, but never less than 4 messages of ``max_message_size``."""
        return max(self.session_buffer_bytes, 4 * self.max_message_size)

    @property
    def websocket_send_timeout(self) -> float:
        """The WebSocket transport's write deadline: :attr:`send_timeout`, one for all."""
        return self.send_timeout

    @property
    def authenticates(self) -> bool:
        """Whether the HTTP endpoints refuse callers without credentials."""
        return bool(self.auth_token) or self.auth_issuer is not None

    @property
    def is_loopback(self) -> bool:
        """Whether ``host`` binds loopback only: ``localhost``, 127.0.0.0/8 or ``::1``.

        A name such as ``127.evil.example`` is not an address: it resolves to wherever its
        owner likes, so only IP literals and ``localhost`` count.
        """
        return is_loopback_host(self.host)


def is_loopback_host(host: str, *, subdomains: bool = False) -> bool:
    """Whether ``host`` names loopback: ``localhost`` or an IP literal in 127.0.0.0/8 or
    ``::1`` (brackets allowed). With ``subdomains``, names under ``.localhost`` count too
    (RFC 6761: what a browser sends in ``Host`` for them is loopback; a name we bind is
    resolved by the system, which need not agree)."""
    host = host.strip("[]").lower()
    if host == "localhost" or (subdomains and host.endswith(".localhost")):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
