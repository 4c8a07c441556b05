"""``mcp-server``: the command line of the MCP server (the seed's options, plus safety ones)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import resource
import signal
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit

from .. import __version__, eventloop
from .app import start_server
from .auth.configure import check_auth_settings
from .auth.policy import Policy, PolicyError
from .limits import open_file_warning, raise_open_file_limit
from .profiles import PROFILES
from .settings import ServerSettings
from .stdio import serve_stdio
from .tools import ALL_TOOLS, ToolRegistry
from .workers import WORKER_OPTION, Lifeline, Supervisor, redact_url

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mcp-server",
        description="MCP server with WebSocket (/ws), Streamable HTTP (/mcp) and legacy HTTP+SSE "
                    "(/sse, /message) transports, or stdio (--stdio).",
        epilog=f"Tools: {', '.join(ALL_TOOLS)}. Health check: GET /healthz. Metrics: GET /metrics.",
    )
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to bind (default 127.0.0.1; use 0.0.0.0 for all interfaces)")
    p.add_argument("--port", type=int, default=8080, help="TCP port (default 8080; 0 = any free)")
    p.add_argument("--name", default="mcp-server", help="server name (default mcp-server)")
    p.add_argument("--stdio", action="store_true",
                   help="serve one client on stdin/stdout (newline-delimited JSON-RPC; logs go to "
                        "stderr) instead of listening on a port")
    p.add_argument("--tools", nargs="+", metavar="NAME",
                   help=f"enable only these tools (default all: {' '.join(ALL_TOOLS)})")
    p.add_argument("--profile", choices=sorted(PROFILES), default=None,
                   help="add a named set of fixture tools, resources and prompts to the "
                        "server's own ('conformance': what the official MCP conformance "
                        "suite's server scenarios call)")
    p.add_argument("--root", type=Path, default=None,
                   help="directory list_files may read (default: the working directory)")
    p.add_argument("--log-level", default="INFO", type=str.upper,
                   choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
                   help="logging level (default INFO)")
    p.add_argument("--allowed-origin", action="append", default=[], metavar="ORIGIN",
                   help="browser origin allowed by CORS and the Origin check (repeatable; '*' all)")
    p.add_argument("--auth-token", default=None,
                   help="require 'Authorization: Bearer TOKEN' on the MCP endpoints and /metrics "
                        "(/healthz stays open for load-balancer monitors)")
    # OAuth 2.1 resource server (issue 10): see mcp_multi.server.auth
    p.add_argument("--auth-issuer", default=None, metavar="URL",
                   help="accept OAuth access tokens issued by this authorization server "
                        "(https, or http on loopback): JWTs checked against its published "
                        "keys, or introspected with --auth-introspection-client; clients "
                        "find it in /.well-known/oauth-protected-resource")
    p.add_argument("--auth-audience", default=None, metavar="URL",
                   help="this server's resource URL, which tokens must be issued for "
                        "(default: http://HOST:PORT of a loopback bind; required on any "
                        "other, e.g. the public https URL behind a proxy)")
    p.add_argument("--auth-scopes", default=None, metavar='"SCOPE ..."',
                   help="scopes every access token must grant (space-separated; also "
                        "advertised as scopes_supported); a token without them gets 403 "
                        "insufficient_scope")
    p.add_argument("--auth-introspection-client", default=None, metavar="ID:SECRET",
                   help="client credentials for the issuer's token introspection endpoint "
                        "(RFC 7662): tokens are then introspected instead of checked as "
                        f"JWTs; ID alone takes the secret from ${INTROSPECTION_SECRET_ENV} "
                        "(a command line is visible to other users)")
    p.add_argument("--auth-timeout", type=float, default=5.0, metavar="SECONDS",
                   help="time one request to the authorization server may take (default 5); "
                        "while it cannot be reached requests are answered 503")
    p.add_argument("--metrics-token", default=None, metavar="TOKEN",
                   help="require 'Authorization: Bearer TOKEN' on /metrics (instead of the "
                        "MCP endpoints' credentials)")
    p.add_argument("--policy", type=Path, default=None, metavar="FILE",
                   help="roles and what each may use (tools, resources, prompts), and who "
                        "holds them (token scopes, subjects, static tokens): a TOML file; "
                        "SIGHUP reloads it (see README, 'Securing a server')")
    p.add_argument("--max-connections", type=int, default=None, metavar="N",
                   help="TCP connections held at once; more are answered 503 and closed "
                        "(default: the open-file limit, raised to its hard limit at start-up, "
                        "minus a reserve)")
    p.add_argument("--header-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="time a request head may take before the connection is closed "
                        "(default 10)")
    p.add_argument("--keepalive-timeout", type=float, default=75.0, metavar="SECONDS",
                   help="time an idle keep-alive connection stays open (default 75)")
    p.add_argument("--max-message-size", type=int, default=4 * 1024 * 1024, metavar="BYTES",
                   help="largest accepted JSON-RPC message (default 4 MiB)")
    p.add_argument("--max-sessions", type=int, default=1000,
                   help="concurrent sessions allowed per transport (default 1000)")
    p.add_argument("--max-sessions-per-client", type=int, default=None, metavar="N",
                   help="sessions one client address may hold per transport (default three "
                        "quarters of --max-sessions)")
    p.add_argument("--command-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="run_command time limit (default 10)")
    # What peers can make the server hold: buffered replies, and slow request bodies.
    p.add_argument("--max-buffered-bytes", type=int, default=256 * 1024 * 1024, metavar="BYTES",
                   help="bytes of replies each transport holds at most for clients that do "
                        "not read them, over all its sessions (default 256 MiB each for "
                        "WebSocket, SSE and Streamable HTTP); past it WebSocket stops reading "
                        "the connections with replies waiting, the SSE streams holding the "
                        "most are ended, and the Streamable HTTP sessions holding the most "
                        "drop their oldest events")
    p.add_argument("--body-timeout", type=float, default=30.0, metavar="SECONDS",
                   help="time a request body may take once its head has arrived; past it "
                        "the request is answered 408 and the connection closed (default 30)")
    p.add_argument("--send-timeout", type=float, default=30.0, metavar="SECONDS",
                   help="time one write of a response (a JSON body, an SSE event, a WebSocket "
                        "message) may take; a client that does not read it in that time is "
                        "disconnected (default 30)")
    # run_command across sessions (issue 8, defect 17)
    p.add_argument("--max-commands", type=int, default=8, metavar="N",
                   help="run_command processes run at once by the whole server; one session "
                        "may hold half of them (default 8)")
    p.add_argument("--page-size", type=int, default=100, metavar="N",
                   help="entries in one page of tools/list, resources/list, "
                        "resources/templates/list and prompts/list (default 100)")
    p.add_argument("--ask-timeout", type=float, default=300.0, metavar="SECONDS",
                   help="seconds to wait for the client to answer a sampling, elicitation or "
                        "roots request (default 300)")
    p.add_argument("--max-asks", type=int, default=16, metavar="N",
                   help="requests to its client (sampling, elicitation, roots) one session may "
                        "have awaiting answers at once; one more fails its tool call "
                        "(default 16)")
    # Scale-out (issue 11): see mcp_multi.server.store and mcp_multi.server.workers
    p.add_argument("--session-store", default=None, metavar="URL",
                   help="share MCP sessions with the other server processes given the same "
                        "store, so that a load balancer may send any request to any of them: "
                        "the Streamable HTTP session registry and each session's negotiated "
                        "state, messages for the process holding a session's stream, and "
                        "resumable event streams. A Redis URL: redis://HOST:PORT/DB, "
                        "rediss://HOST:PORT/DB (TLS) or unix://PATH. Without it sessions "
                        "stay in this process's memory")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="serve the port from N processes (SO_REUSEPORT) under a supervisor "
                        "that forwards signals to them and starts again one that dies "
                        "(default 1: this process serves). N > 1 needs --session-store; "
                        "with --port 0 they all share the one free port picked")
    # Set by the supervisor of --workers on each worker's command line: its number.
    p.add_argument(WORKER_OPTION, type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


def settings_from_args(args: argparse.Namespace) -> ServerSettings:
    ToolRegistry(args.tools)  # raises ValueError naming unknown tools and the valid ones
    root = (args.root or Path.cwd()).resolve()
    if not root.is_dir():
        raise ValueError(f"--root {args.root} is not a directory")
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port {args.port} is out of range")
    counts = {"--max-connections": args.max_connections, "--max-message-size":
              args.max_message_size, "--max-sessions": args.max_sessions,
              "--max-sessions-per-client": args.max_sessions_per_client,
              "--max-buffered-bytes": args.max_buffered_bytes,
              "--max-commands": args.max_commands, "--page-size": args.page_size,
              "--max-asks": args.max_asks, "--workers": args.workers}
    for name, value in counts.items():
        if value is not None and value < 1:  # None: the option's default is derived
            raise ValueError(f"{name} {value} is out of range")
    seconds = {"--header-timeout": args.header_timeout,
               "--keepalive-timeout": args.keepalive_timeout,
               "--body-timeout": args.body_timeout, "--send-timeout": args.send_timeout,
               "--ask-timeout": args.ask_timeout, "--auth-timeout": args.auth_timeout}
    for name, value in seconds.items():
        if not 0 < value < float("inf"):
            raise ValueError(f"{name} {value} must be a positive number of seconds")
    settings = ServerSettings(
        body_timeout=args.body_timeout,
        send_timeout=args.send_timeout,
        websocket_total_buffer=args.max_buffered_bytes,
        sse_total_buffer=args.max_buffered_bytes,
        http_total_buffer=args.max_buffered_bytes,
        host=args.host,
        port=args.port,
        max_connections=args.max_connections,
        header_timeout=args.header_timeout,
        keepalive_timeout=args.keepalive_timeout,
        name=args.name,
        tools=tuple(args.tools) if args.tools else None,
        profile=args.profile,
        root=root,
        log_level=args.log_level,
        max_message_size=args.max_message_size,
        max_sse_sessions=args.max_sessions,
        max_http_sessions=args.max_sessions,
        max_websocket_sessions=args.max_sessions,
        max_sessions_per_client=args.max_sessions_per_client,
        allowed_origins=tuple(args.allowed_origin),
        command_timeout=args.command_timeout,
        auth_token=args.auth_token,
        auth_issuer=args.auth_issuer,
        auth_audience=args.auth_audience,
        auth_scopes=tuple((args.auth_scopes or "").split()),
        auth_introspection_client=_client_credentials(args.auth_introspection_client),
        auth_fetch_timeout=args.auth_timeout,
        metrics_token=args.metrics_token,
        max_commands=args.max_commands,
        page_size=args.page_size,
        ask_timeout=args.ask_timeout,
        max_asks=args.max_asks,
        policy=args.policy,
        session_store=args.session_store,
        workers=args.workers,
        worker=args.as_worker,
    )
    check_auth_settings(settings)
    return settings


SESSION_STORE_SCHEMES = ("redis", "rediss", "unix")


def check_scale_out(settings: ServerSettings, *, stdio: bool) -> None:
    """Refuse what ``--session-store`` and ``--workers`` cannot do, with a one-line
    ``ValueError``: a store URL of another kind (checked by its form; nothing is connected
    to), several workers without a store to share sessions in, or with ``--stdio``."""
    if settings.session_store is not None:
        check_session_store_url(settings.session_store)
    if settings.worker is not None and not 1 <= settings.worker <= settings.workers:
        raise ValueError(f"{WORKER_OPTION} {settings.worker} is out of range")
    if settings.workers == 1:
        return
    if stdio:
        raise ValueError(f"--workers {settings.workers} cannot be used with --stdio: a stdio "
                         "server has one client, on this process's stdin and stdout")
    if settings.session_store is None:
        raise ValueError(f"--workers {settings.workers} needs --session-store: sessions live in "
                         "one process's memory, so a request reaching another worker would "
                         "not find its session")


def check_session_store_url(url: str) -> None:
    """Raise a one-line ``ValueError`` unless ``url`` has the form of a session store URL
    (``redis://HOST:PORT/DB``, ``rediss://``, ``unix://PATH``)."""
    shown = redact_url(url)
    usage = "a session store is redis://HOST:PORT/DB, rediss://HOST:PORT/DB or unix://PATH"
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a port that is no number in range
    except ValueError:
        raise ValueError(f"--session-store {shown}: {usage}") from None
    if parts.scheme not in SESSION_STORE_SCHEMES:
        raise ValueError(f"--session-store {shown}: {usage}")
    if parts.scheme == "unix":
        if not parts.path or port is not None:
            raise ValueError(f"--session-store {shown}: {usage}")
        return
    database = parts.path.removeprefix("/")
    if not parts.hostname or not (database == "" or database.isdigit()):
        raise ValueError(f"--session-store {shown}: {usage}")


# Where --auth-introspection-client ID finds its secret.
INTROSPECTION_SECRET_ENV = "MCP_SERVER_INTROSPECTION_SECRET"


def _client_credentials(value: str | None) -> tuple[str, str] | None:
    """``ID:SECRET`` split at the first colon (a secret may hold colons, an id may not)."""
    if value is None:
        return None
    client_id, colon, secret = value.partition(":")
    if not colon:  # the secret from the environment, out of sight of `ps`
        secret = os.environ.get(INTROSPECTION_SECRET_ENV, "")
    if not client_id or not secret:
        raise ValueError("--auth-introspection-client must be CLIENT_ID:CLIENT_SECRET, or "
                         f"CLIENT_ID with the secret in ${INTROSPECTION_SECRET_ENV}")
    return client_id, secret


async def _serve(settings: ServerSettings, lifeline: Lifeline | None = None) -> None:
    """Serve until SIGINT or SIGTERM. A worker of ``--workers`` (``lifeline`` given) tells
    its supervisor when it listens instead of printing the banner, and stops when the
    supervisor is gone."""
    server = await start_server(settings, reuse_port=lifeline is not None)
    names = server.state.dispatcher.registry.names
    if lifeline is None:
        _banner(settings, server.port, names)
    else:
        await lifeline.ready(names)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    server.state.dispatcher.context.permissions.reload_on_hangup()
    orphaned = None if lifeline is None else asyncio.create_task(_orphaned(lifeline, stop))
    try:
        await stop.wait()
    finally:
        if orphaned is not None:
            orphaned.cancel()
        await server.close()
        if lifeline is not None:
            lifeline.close()


async def _orphaned(lifeline: Lifeline, stop: asyncio.Event) -> None:
    await lifeline.wait_closed()
    logging.getLogger("mcp_multi.server").warning("the supervisor is gone: stopping")
    stop.set()


def _banner(settings: ServerSettings, port: int, tools: list[str]) -> None:
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    print(f"MCP server '{settings.name}' on {host}:{port} (tools: {', '.join(tools)})",
          flush=True)
    print(f"  WebSocket:    ws://{host}:{port}/ws", flush=True)
    print(f"  HTTP (MCP):   http://{host}:{port}/mcp", flush=True)
    print(f"  SSE stream:   http://{host}:{port}/sse", flush=True)
    print(f"  SSE messages: http://{host}:{port}/message", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    try:
        settings = settings_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        check_scale_out(settings, stdio=args.stdio)
    except ValueError as exc:
        return _refuse(str(exc))
    if settings.policy is not None:
        try:
            Policy.load(settings.policy)
        except PolicyError as exc:
            return _refuse(f"--policy {exc}")
    lifeline = None
    if settings.worker is not None:
        try:
            lifeline = Lifeline.take()
        except OSError:
            return _refuse(f"{WORKER_OPTION} is given by the supervisor of --workers to the "
                           "processes it starts, not by hand")
    # Logs go to stderr: with --stdio, stdout carries nothing but MCP messages. A worker
    # names itself in each line.
    worker = "" if settings.worker is None else f"worker {settings.worker} "
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format=f"%(asctime)s %(levelname)s {worker}%(name)s: %(message)s")
    if args.stdio:
        try:
            asyncio.run(serve_stdio(settings))
        except KeyboardInterrupt:
            pass
        return 0
    check_open_files(settings, warn=lifeline is None)
    if lifeline is None and not settings.is_loopback and not settings.authenticates:
        logging.getLogger("mcp_multi.server").warning(
            "listening on %s without --auth-token or --auth-issuer: run_command is refused",
            settings.host)
    supervisor = None
    try:
        if lifeline is None and settings.workers > 1:
            supervisor = Supervisor(argv, settings)
            supervisor.reserve()
        else:
            eventloop.run(_serve(settings, lifeline))
    except OSError as exc:
        print(f"mcp-server: cannot listen on {settings.host}:{settings.port}: {exc.strerror}",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    if supervisor is not None:
        try:
            return asyncio.run(supervisor.run())
        except KeyboardInterrupt:  # before its own signal handlers were set: no worker yet
            return 0
    return 0


def check_open_files(settings: ServerSettings, *, warn: bool = True) -> None:
    """Raise this process's open-file limit to what the system allows (a worker of
    ``--workers`` raises its own; the supervisor's is inherited) and, with ``warn``, say in
    one WARNING line when even that is too low for ``--max-sessions`` open sessions."""
    before, after = raise_open_file_limit()
    log = logging.getLogger("mcp_multi.server")
    if after != before:
        log.info("open-file limit raised from %d to %d", before, after)
    if not warn:
        return
    sessions = max(settings.max_sse_sessions, settings.max_websocket_sessions)
    message = open_file_warning(after, resource.getrlimit(resource.RLIMIT_NOFILE)[1],
                                sessions, _listeners(settings.host, settings.port))
    if message is not None:
        log.warning("%s", message)


def _listeners(host: str, port: int) -> int:
    """Sockets listening on ``host`` (an address each that it resolves to)."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError):
        return 1
    return max(1, len({info[4][:2] for info in found}))


def _refuse(message: str) -> int:
    """Say why the server does not start, in one line, with the usage error's status."""
    print(f"mcp-server: error: {message}", file=sys.stderr)
    return 2
