"""``mcp-server``: the command line of the MCP server (the seed's options, plus safety ones)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

from .. import __version__
from .app import start_server
from .auth.configure import check_auth_settings
from .auth.policy import Policy, PolicyError
from .profiles import PROFILES
from .settings import ServerSettings
from .stdio import serve_stdio
from .tools import ALL_TOOLS, ToolRegistry

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
              "--max-asks": args.max_asks}
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
    )
    check_auth_settings(settings)
    return settings


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


async def _serve(settings: ServerSettings) -> None:
    server = await start_server(settings)
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    tools = ", ".join(server.state.dispatcher.registry.names)
    print(f"MCP server '{settings.name}' on {host}:{server.port} (tools: {tools})", flush=True)
    print(f"  WebSocket:    ws://{host}:{server.port}/ws", flush=True)
    print(f"  HTTP (MCP):   http://{host}:{server.port}/mcp", flush=True)
    print(f"  SSE stream:   http://{host}:{server.port}/sse", flush=True)
    print(f"  SSE messages: http://{host}:{server.port}/message", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    server.state.dispatcher.context.permissions.reload_on_hangup()
    try:
        await stop.wait()
    finally:
        await server.close()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    if settings.policy is not None:
        try:
            Policy.load(settings.policy)
        except PolicyError as exc:  # one line, and the usage error's status
            print(f"mcp-server: error: --policy {exc}", file=sys.stderr)
            return 2
    # Logs go to stderr: with --stdio, stdout carries nothing but MCP messages.
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.stdio:
        try:
            asyncio.run(serve_stdio(settings))
        except KeyboardInterrupt:
            pass
        return 0
    if not settings.is_loopback and not settings.authenticates:
        logging.getLogger("mcp_multi.server").warning(
            "listening on %s without --auth-token or --auth-issuer: run_command is refused",
            settings.host)
    try:
        asyncio.run(_serve(settings))
    except OSError as exc:
        print(f"mcp-server: cannot listen on {settings.host}:{settings.port}: {exc.strerror}",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0
