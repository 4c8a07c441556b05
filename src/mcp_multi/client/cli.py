"""``mcp-client`` (and ``python mcp_client.py``): the command line of the multi-server client.

Exactly the seed's forms, plus URLs, commands, config files, ``--timeout``, ``--trace``,
``--demo`` and ``--report``::

    mcp-client localhost:8080 localhost:8081                 # auto-named server1, server2
    mcp-client calc=localhost:8080 files=localhost:8081 --transport sse
    mcp-client ws1=ws://localhost:8080/ws sse1=http://localhost:8081/sse --mode test
    mcp-client api=http://localhost:8082/mcp "local=stdio:mcp-server --stdio"
    mcp-client --config claude_desktop_config.json --header "Authorization: Bearer T"
    mcp-client --demo
    mcp-client login api --config servers.json               # OAuth: authorize now, keep it
    mcp-client logout http://localhost:8082/mcp

This module and the shell are the only places that print; status and traces go to stderr,
command output to stdout. Text a server sent (frames, errors, its stdio child's stderr in the
log) is printed with control characters escaped (:mod:`mcp_multi.protocol.text`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import sys
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path

from .. import __version__
from ..protocol.errors import MCPError
from ..protocol.text import for_display, printable
from ..protocol.versions import SUPPORTED_VERSIONS
from ..transport import transport_names
from .answering import ClientHandlers, policy_handlers
from .auth.oauth import OAuthSettings
from .auth.redact import redact_text
from .auth.settings import parse_scopes
from .auth.store import ENV_VAR as TOKEN_STORE_VAR
from .auth.store import open_token_store
from .config import load_config, parse_header
from .conformance import run_conformance
from .connection import DEFAULT_TIMEOUT
from .login import ACCOUNT_COMMANDS, AuthChoices, find_server, login, logout
from .multi import MultiServerMCPClient
from .notices import Notices
from .person import person_handlers
from .repl import Shell, default_history_path, run_shell
from .targets import (
    DEFAULT_TRANSPORT,
    ServerSpec,
    auto_name,
    normalize_transport,
    parse_server_arg,
    resolve_target,
)
from .testmode import run_test_mode

__all__ = ["build_parser", "main", "parse_servers"]

EXAMPLES = """\
examples:
  mcp-client --demo                                   three built-in servers, mixed transports
  mcp-client localhost:8080                           one server, auto-named server1
  mcp-client calc=localhost:8080 files=localhost:8081 --transport websocket
  mcp-client sse1=localhost:8080 --transport sse
  mcp-client ws1=ws://localhost:8080/ws sse1=http://localhost:8081/sse
  mcp-client api=http://localhost:8082/mcp "local=stdio:mcp-server --stdio --name local"
  mcp-client --config ~/.cursor/mcp.json --header "Authorization: Bearer TOKEN"
  mcp-client localhost:8080 --mode test --report report.xml
  mcp-client api=http://localhost:8082/mcp --sampling reply:OK --elicitation defaults --roots .
  mcp-client --mode conformance http://localhost:3000/mcp    one-shot, for the MCP suite
  mcp-client login api --config servers.json          OAuth now (a browser, or the URL printed)
  mcp-client logout api --config servers.json         forget api's token
  mcp-client bench http://localhost:8082/mcp --tool echo --args '{"message": "hi"}'   load mode

interactive commands: servers, add, remove, tools [server], call, broadcast, ping [server],
  send, resources, templates, read, prompts, prompt, complete, subscribe, unsubscribe,
  loglevel, tasks, help, quit
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mcp-client",
        description="Multi-server MCP client: connect to many MCP servers at once over "
                    "WebSocket, SSE, Streamable HTTP and stdio, call their tools, broadcast, "
                    "and test them.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "servers", nargs="*", metavar="[NAME=]HOST:PORT|URL|stdio:CMD",
        help="servers to connect to; unnamed ones are called server1, server2, ...; "
             "stdio:CMD runs CMD (quote it) and talks to it over its stdin and stdout",
    )
    parser.add_argument(
        "--transport", default=DEFAULT_TRANSPORT, type=str.lower,
        help=f"transport for HOST:PORT servers: {' or '.join(transport_names())} "
             f"(default: {DEFAULT_TRANSPORT})",
    )
    parser.add_argument(
        "--mode", choices=("interactive", "test", "conformance"), default="interactive",
        help="interactive shell (default), the automated test checklist, or the one-shot "
             "client the MCP conformance suite runs (one server: list tools, call each)",
    )
    parser.add_argument(
        "--config", type=Path, action="append", default=[], metavar="FILE",
        help="servers from an mcpServers JSON file (Claude Desktop, Cursor, VS Code); "
             "repeatable, mixed with the servers given as arguments",
    )
    parser.add_argument(
        "--header", action="append", default=[], metavar="'NAME: VALUE'",
        help="HTTP header sent to every remote server (repeatable; a server's own headers "
             "from --config win)",
    )
    parser.add_argument(
        "--protocol-version", default="auto", metavar="VERSION",
        choices=("auto", *SUPPORTED_VERSIONS),
        help="speak only this MCP version: "
             f"{', '.join(SUPPORTED_VERSIONS)}; default auto: server/discover "
             "(2026-07-28) first over http and stdio, falling back to initialize",
    )
    parser.add_argument(
        "--sampling", metavar="POLICY", default="decline",
        help="how to answer a server's sampling requests where nobody is asked: decline "
             "(default), reply:TEXT, or command:CMD (CMD gets the request as JSON on stdin "
             "and prints the reply, or a whole CreateMessageResult)",
    )
    parser.add_argument(
        "--elicitation", metavar="POLICY", default=None,
        help="how to answer a server's elicitation requests where nobody is asked: decline "
             "or defaults (accept with the form's defaults when they make it valid); "
             "default decline, and defaults in conformance mode",
    )
    parser.add_argument(
        "--roots", action="append", default=[], type=Path, metavar="DIR",
        help="offer DIR to servers as a root (file:// URI; repeatable; none by default)",
    )
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
        help=f"seconds each request may take (default: {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--trace", action="store_true",
        help="print every JSON-RPC frame, with its server and direction, to stderr",
    )
    parser.add_argument(
        "--demo", action="store_true",
        help="start three built-in servers (calc, files, admin) in-process and connect",
    )
    parser.add_argument(
        "--report", type=Path, metavar="FILE",
        help="test mode: write results as JUnit XML (or JSON if FILE ends in .json)",
    )
    parser.add_argument(
        "--history", type=Path, metavar="FILE",
        help="interactive history file (default: $XDG_STATE_HOME/mcp-multi/client_history)",
    )
    _add_oauth_options(parser)
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log more (-v info, -vv debug) to stderr")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def _add_oauth_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "authorization (OAuth 2.1; 'mcp-client login SERVER' / 'logout SERVER')")
    group.add_argument(
        "--token-store", metavar="PATH", default=None,
        help=f"where tokens are kept: a file only you can read (default: ${TOKEN_STORE_VAR}, "
             "else $XDG_STATE_HOME/mcp-multi/tokens.json), or 'keyring' for the system "
             "keyring (needs the keyring package)")
    group.add_argument("--oauth-client-id", metavar="ID",
                       help="a pre-registered OAuth client id (default: a client metadata "
                            "document or dynamic registration)")
    group.add_argument("--oauth-client-secret", metavar="SECRET",
                       default=os.environ.get("MCP_CLIENT_OAUTH_SECRET"),
                       help="its secret (prefer $MCP_CLIENT_OAUTH_SECRET or the config "
                            "file: a command line is visible to other users)")
    group.add_argument("--oauth-scopes", metavar="'A B'",
                       help="the scopes to ask for (default: what the server says it needs)")
    group.add_argument("--oauth-redirect-port", type=int, metavar="PORT",
                       help="the loopback redirect port, for a client registered with a "
                            "fixed redirect URI (default: a random free port)")
    group.add_argument("--oauth-browser", choices=("auto", "always", "never"), default="auto",
                       help="open a browser to authorize: auto (on a desktop terminal), "
                            "always, never (the URL is always printed)")


def _oauth_settings(args: argparse.Namespace) -> OAuthSettings | None:
    """The ``--oauth-*`` options as settings (``None`` when none is given).

    Raises:
        ValueError: a bad scope or port.
    """
    port = args.oauth_redirect_port
    if port is not None and not 0 < port < 65536:
        raise ValueError("--oauth-redirect-port must be a port number (1-65535)")
    scopes = parse_scopes(args.oauth_scopes) if args.oauth_scopes is not None else None
    if args.oauth_client_id is None and scopes is None and port is None:
        return None  # a secret alone (from the environment) names no client
    return OAuthSettings(client_id=args.oauth_client_id,
                         client_secret=args.oauth_client_secret if args.oauth_client_id
                         else None,
                         scopes=scopes, redirect_port=port)


def parse_servers(args: list[str], transport: str,
                  taken: set[str] | frozenset[str] = frozenset()) -> list[ServerSpec]:
    """The servers named on the command line, auto-naming the unnamed ``server<n>``.

    Args:
        args: the positional arguments.
        transport: ``--transport``.
        taken: names already used (by ``--config`` servers).

    Raises:
        ValueError: a bad target, transport, or a name given twice.
    """
    parsed = [parse_server_arg(arg) for arg in args]
    explicit = {name for name, _ in parsed if name is not None}
    specs: list[ServerSpec] = []
    taken = set(taken)
    for index, (name, target) in enumerate(parsed, start=1):
        if name is None:
            name = auto_name(index, explicit | taken)
        if name in taken:
            raise ValueError(f"server name {name!r} is given twice")
        taken.add(name)
        # A URL that names its transport (ws://, .../sse) and a command win over --transport.
        named = "://" in target or target.startswith("stdio:")
        kind, url = resolve_target(target, None if named else transport, default=transport)
        specs.append(ServerSpec(name, kind, url))
    return specs


def _trace(server: str, direction: str, frame: bytes | str) -> None:
    text = frame.decode("utf-8", "replace") if isinstance(frame, bytes) else frame
    arrow = "->" if direction == "send" else "<-"
    sys.stderr.write(f"[{server}] {arrow} {printable(redact_text(text))}\n")
    sys.stderr.flush()


class _EscapingFormatter(logging.Formatter):
    """Log lines with control characters escaped: they carry what servers said (a stdio
    child's stderr, error messages); a traceback keeps its line breaks. Tokens, secrets and
    codes are masked, whatever logged them."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(redact_text(super().format(record)), keep_newlines=True)


def _status(text: str) -> None:
    sys.stderr.write(redact_text(text) + "\n")
    sys.stderr.flush()


def _command_line_servers(args: argparse.Namespace) -> list[ServerSpec]:
    """``--config`` servers, then the positional ones (conformance: the URL, as HTTP)."""
    if args.mode == "conformance":
        if len(args.servers) != 1 or args.config:
            raise ValueError("conformance mode takes exactly one server URL")
        name, target = parse_server_arg(args.servers[0])
        kind, url = resolve_target(target, None, default="http")
        return [ServerSpec(name or "conformance", kind, url)]
    specs = [spec for path in args.config for spec in load_config(path)]
    names = [spec.name for spec in specs]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"server name {twice[0]!r} is given twice")
    specs += parse_servers(args.servers, args.transport, taken=set(names))
    return specs


def _policies(args: argparse.Namespace) -> ClientHandlers:
    """The ``--sampling``, ``--elicitation`` and ``--roots`` policies; the conformance suite
    asks a client to accept elicitations with their defaults, so that mode does by default.

    Raises:
        ValueError: a policy or directory is bad (one line saying which).
    """
    elicitation = args.elicitation or ("defaults" if args.mode == "conformance" else "decline")
    return policy_handlers(args.sampling, elicitation, args.roots)


async def _run(args: argparse.Namespace, specs: list[ServerSpec]) -> int:
    protocol_version = None if args.protocol_version == "auto" else args.protocol_version
    if args.mode == "conformance":
        return await run_conformance(
            specs[0], timeout=args.timeout, protocol_version=protocol_version,
            headers=args.headers, on_frame=_trace if args.trace else None,
            handlers=args.handlers, write=lambda line: print(line, flush=True))
    async with AsyncExitStack() as stack:
        if args.demo:
            from .demo import demo_servers  # the server package, loaded only when asked

            specs = [*await stack.enter_async_context(demo_servers()), *specs]
        if args.mode == "test" and not specs:
            _status("Error: test mode needs at least one server (or --demo)")
            return 2
        # The shell shows every server's notifications, tagged with the server's name, and
        # on a terminal the person answers what servers ask (elsewhere the policies do).
        notices = Notices(lambda line: print(line, flush=True), live=sys.stderr.isatty())
        handlers = args.handlers
        if args.mode == "interactive" and sys.stdin.isatty():
            handlers = person_handlers(handlers)
        client = MultiServerMCPClient(
            timeout=args.timeout,
            on_frame=_trace if args.trace else None,
            on_notification=notices.hook if args.mode == "interactive" else None,
            transport_options={"connect_timeout": min(args.timeout, 10.0)},
            headers=args.headers,
            protocol_version=protocol_version,
            handlers=handlers,
            auth_for=args.auth.auth_for,
        )
        stack.push_async_callback(client.close)
        errors = await client.add_all(specs)
        for spec in specs:
            if spec.name in errors:
                _status(f"Failed to connect to {spec.name} ({spec.url}): "
                        f"{for_display(str(errors[spec.name]))}")
            else:
                connection = client.get(spec.name)
                server = connection.server
                assert server is not None
                _status(f"Connected to {spec.name} at {spec.url} ({spec.transport}, "
                        f"server {for_display(repr(server.server_name))}, "
                        f"protocol {for_display(server.protocol_version)})")

        if args.mode == "test":
            return await run_test_mode(client, dict(errors), report_path=args.report,
                                       write=lambda line: print(line, flush=True),
                                       status=_status)

        terminal = sys.stdin.isatty() and sys.stdout.isatty()
        if terminal:
            _status("MCP multi-server client. Type 'help' for commands, 'quit' to exit.")
            await client.list_tools()  # so tab completion knows the tool names
        shell = Shell(client, default_transport=args.transport, notices=notices)
        await run_shell(shell, terminal=terminal,
                        history_path=args.history or default_history_path())
        return 0


def _auth_choices(args: argparse.Namespace) -> AuthChoices:
    """How every server is authorized (``--token-store``, ``--oauth-*``, ``--header``).

    Raises:
        ValueError: a bad ``--oauth-*`` option.
    """
    return AuthChoices(store=open_token_store(args.token_store),
                       settings=_oauth_settings(args), headers=args.headers,
                       browser=args.oauth_browser, write=_status)


def _account_target(args: argparse.Namespace) -> ServerSpec:
    """The one server ``login``/``logout`` names: a ``--config`` name, a URL or host:port.

    Raises:
        ValueError: not exactly one server, or one that cannot be parsed.
    """
    command, targets = args.servers[0], args.servers[1:]
    if len(targets) != 1:
        raise ValueError(f"usage: mcp-client {command} SERVER (a name from --config, a URL "
                         "or host:port)")
    configured = [spec for path in args.config for spec in load_config(path)]

    def parse(target: str) -> ServerSpec:
        name, where = parse_server_arg(target)
        named = "://" in where or where.startswith("stdio:")
        kind, url = resolve_target(where, None if named else args.transport,
                                   default=args.transport)
        return ServerSpec(name or where, kind, url)

    return find_server(targets[0], configured, parse)


async def _account(args: argparse.Namespace, spec: ServerSpec) -> int:
    choices = args.auth
    write: Callable[[str], None] = lambda line: print(line, flush=True)  # noqa: E731
    if args.servers[0] == "login":
        return await login(spec, choices, write)
    return await logout(spec, choices, write)


def main(argv: list[str] | None = None) -> int:
    """Run the client; return the process exit code."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:  # the load mode has a command line of its own
        from .bench.cli import main as bench_main

        return bench_main(argv[1:])
    parser = build_parser()
    if any(arg in ACCOUNT_COMMANDS for arg in argv):
        # login/logout SERVER with options anywhere (`login --config F api`): argparse takes
        # the positionals apart only when asked to.
        args = parser.parse_intermixed_args(argv)
    else:
        args = parser.parse_args(argv)
    account = bool(args.servers) and args.servers[0] in ACCOUNT_COMMANDS
    try:
        args.transport = normalize_transport(args.transport)
        args.headers = dict(parse_header(text) for text in args.header)
        args.auth = _auth_choices(args)
        specs = [_account_target(args)] if account else _command_line_servers(args)
        args.handlers = _policies(args)
    except (ValueError, MCPError) as exc:  # MCPError: a token store that cannot be used
        parser.error(str(exc))
    if not 0 < args.timeout < math.inf:  # also refuses nan: every request is bounded
        parser.error("--timeout must be a positive number of seconds")
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_EscapingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    try:
        return asyncio.run(_account(args, specs[0]) if account else _run(args, specs))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # stdout went away (`mcp-client ... | head`): stop quietly, and keep Python's final
        # flush of stdout from failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except MCPError as exc:
        _status(f"Error: {for_display(str(exc))}")
        return 1
