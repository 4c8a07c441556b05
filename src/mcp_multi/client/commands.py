"""The shell's commands: the seed's commands and its output formats, one line per fact.

Output goes to stdout exactly in the forms the seed's example session shows::

    Connected servers: ['calc', 'files']
    [calc]:
      math_calc: Perform basic math calculations
    Result: {'content': [{'type': 'text', 'text': '2 + 2 * 3 = 8'}]}
    Add server succeeded
    [calc] {'jsonrpc': '2.0', 'id': 1, 'result': {...}}

Errors are one line starting with ``Error:`` (or ``Failed to add server:``). Whatever a server
sent (tool names, descriptions, error messages, reasons) is shown escaped and clipped
(:func:`~mcp_multi.protocol.text.for_display`); results are shown as Python ``repr``, which
escapes control characters itself. Reading lines (prompt, history, completion) is
:mod:`.repl`'s part.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sys
from typing import TextIO

from ..protocol import methods
from ..protocol.errors import MCPError
from ..protocol.text import clip, for_display
from .arguments import ArgumentError, parse_json_args, strip_comment
from .auth.redact import redact_text
from .feature_commands import FEATURE_COMMANDS, FEATURE_HELP, FeatureCommands, NotOffered
from .multi import MultiServerMCPClient
from .notices import Notices
from .rendering import tool_result_lines

logger = logging.getLogger(__name__)

__all__ = [
    "COMMANDS",
    "HELP",
    "RAW_METHODS",
    "ArgumentError",
    "Shell",
    "parse_json_args",
    "strip_comment",
]

COMMANDS = ("servers", "add", "remove", "tools", "call", "broadcast", "ping", "send",
            *FEATURE_COMMANDS, "help", "quit", "exit")

RAW_METHODS = (
    methods.PING,
    methods.SERVER_DISCOVER,
    methods.TOOLS_LIST,
    methods.RESOURCES_LIST,
    methods.RESOURCES_READ,
    methods.RESOURCES_TEMPLATES_LIST,
    methods.PROMPTS_LIST,
    methods.PROMPTS_GET,
    methods.COMPLETION_COMPLETE,
    methods.RESOURCES_SUBSCRIBE,
    methods.RESOURCES_UNSUBSCRIBE,
    methods.LOGGING_SET_LEVEL,
    methods.TASKS_LIST,
    methods.TASKS_GET,
    methods.TASKS_RESULT,
    methods.TASKS_CANCEL,
)

HELP = """\
Commands:
  servers                                  list connected servers
  add <name> <host:port|url> [transport]   connect another server (websocket, sse, http)
  add <name> stdio <command...>            run a server as a child process, over stdio
  remove <name>                            disconnect a server
  tools [server]                           list tools of all servers, or of one
  call <server> <tool> [json_args]         call a tool, e.g. call calc echo {"message": "hi"}
  call <server> <method> [json_params]     send any method, e.g. call calc resources/list {}
  broadcast <tool> [json_args]             call a tool on every server at once
  ping [server]                            ping every server at once, or one: round-trip times
  send <server> <method> [json_params]     send any method by name, e.g. send calc ping
""" + FEATURE_HELP + """
  help                                     show this help
  quit                                     exit (also: exit, Ctrl-D)"""


def _first_line(text: object) -> str:
    lines = str(text or "").strip().splitlines()
    return lines[0].strip() if lines else ""


class Shell(FeatureCommands):
    """Runs shell commands against a :class:`MultiServerMCPClient` and prints their output.

    Args:
        client: the servers to work with.
        out: where output goes (stdout, looked up at each write, when ``None``).
        default_transport: the transport ``add`` uses when the line names none.
        notices: what shows the servers' notifications (its :meth:`~.Notices.hook` is the
            client's notification hook); one that prints through :meth:`write` by default.
    """

    def __init__(
        self,
        client: MultiServerMCPClient,
        *,
        out: TextIO | None = None,
        default_transport: str | None = None,
        notices: Notices | None = None,
    ) -> None:
        self.client = client
        self._out = out
        self.default_transport = default_transport
        self.notices = notices if notices is not None else Notices(self.write)
        self._listeners: dict[str, asyncio.Task[None]] = {}
        self._subscribed: dict[str, set[str]] = {}
        self.seen: dict[tuple[str, str], list[str]] = {}
        self._progress_tokens = itertools.count(1)

    def write(self, text: str) -> None:
        stream = self._out if self._out is not None else sys.stdout
        stream.write(text + "\n")
        stream.flush()

    async def execute(self, line: str) -> bool:
        """Run one command line; return ``False`` when the shell should exit."""
        line = strip_comment(line)
        if not line:
            return True
        command, *tail = line.split(None, 1)
        command = command.lower()
        rest = tail[0].strip() if tail else ""
        if command in ("quit", "exit"):
            return False
        handler = {
            "servers": self._servers,
            "add": self._add,
            "remove": self._remove,
            "tools": self._tools,
            "call": self._call,
            "broadcast": self._broadcast,
            "ping": self._ping,
            "send": self._send,
            "help": self._help,
            **self.feature_handlers(),
        }.get(command)
        if handler is None:
            self.write(f"Error: unknown command {command!r} (type 'help' for the commands)")
            return True
        try:
            await handler(rest)
        except NotOffered as exc:
            self.write(str(exc))
        except (ArgumentError, MCPError) as exc:
            self.write(f"Error: {for_display(redact_text(str(exc)))}")
        except Exception as exc:  # whatever a server provokes is one line, never a traceback
            logger.debug("%s failed", command, exc_info=True)
            self.write(f"Error: {for_display(redact_text(f'{type(exc).__name__}: {exc}'))}")
        finally:
            self.notices.settle()
        return True

    async def _help(self, rest: str) -> None:
        self.write(HELP)

    async def _servers(self, rest: str) -> None:
        live = [n for n, c in self.client.connections.items() if c.closed_reason is None]
        self.write(f"Connected servers: {live!r}")
        gone = [f"{n} ({for_display(c.closed_reason)})"
                for n, c in self.client.connections.items()
                if c.closed_reason is not None]
        if gone:  # still named (add replaces them, remove forgets them), but not connected
            self.write(f"Disconnected servers: {', '.join(gone)}")

    async def _add(self, rest: str) -> None:
        words = rest.split(None, 2)
        transport: str | None
        if len(words) >= 2 and (words[1].lower() == "stdio" or words[1].startswith("stdio:")):
            # The rest of the line is the command: `add fs stdio npx -y server-filesystem /tmp`
            # (or `add fs stdio:npx -y ...`).
            if words[1].lower() == "stdio":
                command = words[2] if len(words) == 3 else ""
            else:
                command = rest.split(None, 1)[1][len("stdio:"):]
            if not command.strip():
                raise ArgumentError("usage: add <name> stdio <command...>")
            name, target, transport = words[0], f"stdio:{command.strip()}", "stdio"
        else:
            words = rest.split()
            if len(words) not in (2, 3):
                raise ArgumentError("usage: add <name> <host:port|url> [transport] "
                                    "| add <name> stdio <command...>")
            name, target = words[0], words[1]
            transport = words[2] if len(words) == 3 else None
            if transport is None and "://" not in target:
                transport = self.default_transport
        try:
            await self.client.add(name, target, transport)
        except (MCPError, ValueError) as exc:
            self.write(f"Failed to add server: {for_display(redact_text(str(exc)))}")
        else:
            self.write("Add server succeeded")

    async def _remove(self, rest: str) -> None:
        words = rest.split()
        if len(words) != 1:
            raise ArgumentError("usage: remove <name>")
        try:
            await self.client.remove(words[0])
        except MCPError as exc:
            self.write(f"Failed to remove server: {for_display(str(exc))}")
        else:
            self.write("Remove server succeeded")

    async def _tools(self, rest: str) -> None:
        words = rest.split()
        if len(words) > 1:
            raise ArgumentError("usage: tools [server]")
        if not words and not self.client.names:
            self.write("No servers connected")
            return
        listing = await self.client.list_tools(words[0] if words else None, refresh=True)
        for server, tools in listing.items():
            if isinstance(tools, MCPError):
                self.write(f"[{server}]: Error: {for_display(str(tools))}")
                continue
            self.write(f"[{server}]:")
            for tool in tools:
                name = for_display(str(tool["name"]))
                description = for_display(_first_line(tool.get("description")))
                self.write(f"  {name}: {description}" if description else f"  {name}")

    async def _call(self, rest: str) -> None:
        words = rest.split(None, 2)
        if len(words) < 2:
            raise ArgumentError("usage: call <server> <tool|method> [json_args]")
        server, name = words[0], words[1]
        arguments = parse_json_args(words[2] if len(words) == 3 else "")
        if "/" in name:
            self.write(f"Result: {await self.client.request(server, name, arguments)!r}")
            return
        # A progress token, so a tool that reports progress can show it while it runs.
        token = f"shell-{next(self._progress_tokens)}"
        result = await self.client.get(server).call_tool(
            name, arguments, meta={"progressToken": token})
        for line in tool_result_lines(result):
            self.write(line)

    async def _broadcast(self, rest: str) -> None:
        words = rest.split(None, 1)
        if not words:
            raise ArgumentError("usage: broadcast <tool> [json_args]")
        name = words[0]
        arguments = parse_json_args(words[1] if len(words) == 2 else "")
        if not self.client.names:
            self.write("Error: no servers connected")
            return
        if "/" in name:
            broadcast = await self.client.broadcast_request(name, arguments)
        else:
            broadcast = await self.client.broadcast(name, arguments)
        for outcome in broadcast.outcomes:
            response = outcome.response(broadcast.id)
            if response is not None and "error" in response:
                # The seed's form (repr escapes control characters), cut like any error line.
                self.write(f"[{outcome.server}] {clip(repr(response))}")
            elif response is not None:
                self.write(f"[{outcome.server}] {response!r}")
            else:
                self.write(f"[{outcome.server}] Error: {for_display(str(outcome.error))}")

    async def _ping(self, rest: str) -> None:
        words = rest.split()
        if len(words) > 1:
            raise ArgumentError("usage: ping [server]")
        if not words and not self.client.names:
            self.write("Error: no servers connected")
            return
        for outcome in await self.client.ping(words[0] if words else None):
            if outcome.error is None:
                self.write(f"[{outcome.server}] pong in {outcome.seconds * 1000:.1f} ms")
            else:
                self.write(f"[{outcome.server}] Error: {for_display(str(outcome.error))}")

    async def _send(self, rest: str) -> None:
        words = rest.split(None, 2)
        if len(words) < 2:
            raise ArgumentError("usage: send <server> <method> [json_params]")
        server, method = words[0], words[1]
        params = parse_json_args(words[2]) if len(words) == 3 else None
        result = await self.client.request(server, method, params)
        self.write(f"Result: {result!r}")
