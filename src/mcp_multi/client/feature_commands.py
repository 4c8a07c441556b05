"""The shell's commands for the rest of MCP: resources, templates, prompts, completions,
subscriptions, the log level and tasks.

Mixed into :class:`~.commands.Shell`. Every command goes through the generic
:meth:`MultiServerMCPClient.request <mcp_multi.client.multi.MultiServerMCPClient.request>`,
so it works with any server that speaks the method. A list command without a server name
asks every server at once (each under its own timeout, as ``tools`` does) and prints each
server's part under ``[name]:``. A server that does not offer a feature (its capabilities
lack it, or it answers -32601) gets one line saying so, never a traceback.

``complete`` names what it completes with a prefix: ``prompt:NAME`` for a prompt's
argument, ``resource:URI_TEMPLATE`` for a variable of a resource template (e.g.
``complete docs resource:file:///{path} path READ``).

``subscribe`` uses ``resources/subscribe`` in the handshake era; in 2026-07-28, which has no
such method, it opens a ``subscriptions/listen`` stream for the server's subscribed URIs
(reopened with the new set on each change) and waits for the server's acknowledgement.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..protocol import methods
from ..protocol.errors import MCPError, MethodNotFound
from ..protocol.tasks import declares_tasks
from ..protocol.text import for_display
from .arguments import ArgumentError, parse_json_args
from .connection import MCPConnection
from .multi import MultiServerMCPClient
from .notices import Notices
from .rendering import prompt_lines, resource_contents_lines

__all__ = [
    "FEATURE_COMMANDS",
    "FEATURE_HELP",
    "FeatureCommands",
    "NotOffered",
    "parse_reference",
]

FEATURE_COMMANDS = ("resources", "templates", "read", "prompts", "prompt", "complete",
                    "subscribe", "unsubscribe", "loglevel", "tasks")

FEATURE_HELP = """\
  resources [server]                       list resources of all servers, or of one
  templates [server]                       list resource templates
  read <server> <uri>                      read a resource
  prompts [server]                         list prompts
  prompt <server> <name> [json_args]       get a prompt, e.g. prompt s greet {"name": "Ada"}
  complete <server> <ref> <arg> [value]    complete an argument; ref is prompt:NAME or
                                           resource:URI_TEMPLATE (resource:file:///{path})
  subscribe <server> <uri>                 get notified when a resource changes
  unsubscribe <server> <uri>               stop those notifications
  loglevel <server> <level>                set the server's log level (debug ... emergency)
  tasks [server]                           list the server's tasks"""

MAX_PAGES = 100


class NotOffered(Exception):
    """The server does not offer the feature (the message names it)."""


def parse_reference(text: str) -> dict[str, str]:
    """The ``ref`` of ``completion/complete`` from ``prompt:NAME`` or ``resource:URI``.

    Raises:
        ArgumentError: neither form.
    """
    kind, _, value = text.partition(":")
    if kind == "prompt" and value:
        return {"type": "ref/prompt", "name": value}
    if kind == "resource" and value:
        return {"type": "ref/resource", "uri": value}
    raise ArgumentError(f"bad reference {text!r}: use prompt:NAME or resource:URI_TEMPLATE")


def _offers(connection: MCPConnection, feature: str) -> bool:
    server = connection.server
    if server is None:
        return False
    if feature == "tasks":
        return "tasks" in server.capabilities or declares_tasks(server.capabilities)
    return server.has_capability(feature)


async def _list_pages(connection: MCPConnection, method: str, key: str) -> list[dict[str, Any]]:
    """Every item of a paginated list (at most :data:`MAX_PAGES` pages)."""
    return await connection.list_all(method, key, max_pages=MAX_PAGES)


def _shown(item: dict[str, Any], key: str, limit: int = 500) -> str:
    return for_display(str(item.get(key, "")), limit)


def _first_line(text: object) -> str:
    lines = str(text or "").strip().splitlines()
    return for_display(lines[0].strip()) if lines else ""


def _resource_line(item: dict[str, Any], key: str) -> str:
    line = f"  {_shown(item, key)}"
    name = item.get("title") or item.get("name")
    if name:
        line += f": {for_display(str(name), 200)}"
    if item.get("mimeType"):
        line += f" ({_shown(item, 'mimeType', 100)})"
    description = _first_line(item.get("description"))
    return f"{line} - {description}" if description else line


def _prompt_line(item: dict[str, Any]) -> str:
    arguments = item.get("arguments")
    names = [
        _shown(arg, "name", 100) + ("" if arg.get("required") else "?")
        for arg in (arguments if isinstance(arguments, list) else ()) if isinstance(arg, dict)
    ]
    line = f"  {_shown(item, 'name', 200)}({', '.join(names)})"
    description = _first_line(item.get("description"))
    return f"{line}: {description}" if description else line


def _task_line(item: dict[str, Any]) -> str:
    line = f"  {_shown(item, 'taskId', 200)} {_shown(item, 'status', 40)}"
    message = item.get("statusMessage")
    return f"{line}: {for_display(str(message), 300)}" if message else line


class FeatureCommands:
    """The commands of this module (a mixin of :class:`~.commands.Shell`)."""

    client: MultiServerMCPClient
    notices: Notices
    _listeners: dict[str, asyncio.Task[None]]
    _subscribed: dict[str, set[str]]
    seen: dict[tuple[str, str], list[str]]
    """What the last listings showed, for tab completion: ``(kind, server)`` -> names, kind
    ``prompt``, ``resource`` or ``template``."""

    if TYPE_CHECKING:
        def write(self, text: str) -> None: ...

    def feature_handlers(self) -> dict[str, Callable[[str], Awaitable[None]]]:
        return {
            "resources": self._resources, "templates": self._templates, "read": self._read,
            "prompts": self._prompts, "prompt": self._prompt, "complete": self._complete,
            "subscribe": self._subscribe, "unsubscribe": self._unsubscribe,
            "loglevel": self._loglevel, "tasks": self._tasks,
        }

    # -- lists -------------------------------------------------------------------------

    def _remember(self, kind: str, server: str, items: list[dict[str, Any]], key: str) -> None:
        # Only what can be typed as one word is offered (no spaces, no control characters).
        self.seen[(kind, server)] = [
            str(item[key]) for item in items[:1000]
            if isinstance(item.get(key), str) and str(item[key]).isprintable()
            and not any(ch.isspace() for ch in str(item[key]))]

    async def _each_server(
        self, rest: str, usage: str, feature: str, what: str,
        lines: Callable[[MCPConnection], Awaitable[list[str]]],
    ) -> None:
        """Run ``lines`` on one server or on all at once; print each server's part."""
        words = rest.split()
        if len(words) > 1:
            raise ArgumentError(f"usage: {usage}")
        if not words and not self.client.names:
            self.write("No servers connected")
            return
        chosen = [self.client.get(words[0])] if words else list(
            self.client.connections.values())

        async def one(connection: MCPConnection) -> list[str]:
            if not _offers(connection, feature):
                return [f"[{connection.name}]: no {what} (the server does not offer them)"]
            try:
                return [f"[{connection.name}]:", *await lines(connection)]
            except MethodNotFound:
                return [f"[{connection.name}]: no {what} (the server does not offer them)"]
            except MCPError as exc:
                return [f"[{connection.name}]: Error: {for_display(str(exc))}"]

        for part in await asyncio.gather(*(one(c) for c in chosen)):
            for line in part:
                self.write(line)

    async def _resources(self, rest: str) -> None:
        async def lines(connection: MCPConnection) -> list[str]:
            items = await _list_pages(connection, methods.RESOURCES_LIST, "resources")
            self._remember("resource", connection.name, items, "uri")
            return [_resource_line(item, "uri") for item in items] or ["  (none)"]
        await self._each_server(rest, "resources [server]", "resources", "resources", lines)

    async def _templates(self, rest: str) -> None:
        async def lines(connection: MCPConnection) -> list[str]:
            items = await _list_pages(connection, methods.RESOURCES_TEMPLATES_LIST,
                                      "resourceTemplates")
            self._remember("template", connection.name, items, "uriTemplate")
            return [_resource_line(item, "uriTemplate") for item in items] or ["  (none)"]
        await self._each_server(rest, "templates [server]", "resources", "resource templates",
                                lines)

    async def _prompts(self, rest: str) -> None:
        async def lines(connection: MCPConnection) -> list[str]:
            items = await _list_pages(connection, methods.PROMPTS_LIST, "prompts")
            self._remember("prompt", connection.name, items, "name")
            return [_prompt_line(item) for item in items] or ["  (none)"]
        await self._each_server(rest, "prompts [server]", "prompts", "prompts", lines)

    async def _tasks(self, rest: str) -> None:
        async def lines(connection: MCPConnection) -> list[str]:
            items = await _list_pages(connection, methods.TASKS_LIST, "tasks")
            return [_task_line(item) for item in items] or ["  (none)"]
        await self._each_server(rest, "tasks [server]", "tasks", "tasks", lines)

    # -- one server --------------------------------------------------------------------

    def _offered(self, server: str, feature: str, what: str) -> MCPConnection:
        connection = self.client.get(server)
        if not _offers(connection, feature):
            raise NotOffered(f"[{server}]: no {what} (the server does not offer them)")
        return connection

    async def _read(self, rest: str) -> None:
        words = rest.split()
        if len(words) != 2:
            raise ArgumentError("usage: read <server> <uri>")
        server, uri = words
        self._offered(server, "resources", "resources")
        result = await self.client.request(server, methods.RESOURCES_READ, {"uri": uri})
        self.write(f"[{server}] {for_display(uri, 500)}:")
        for line in resource_contents_lines(result):
            self.write(line)

    async def _prompt(self, rest: str) -> None:
        words = rest.split(None, 2)
        if len(words) < 2:
            raise ArgumentError("usage: prompt <server> <name> [json_args]")
        server, name = words[0], words[1]
        arguments = parse_json_args(words[2] if len(words) == 3 else "")
        # Prompt arguments are strings; a number typed as JSON is meant as its text.
        arguments = {k: v if isinstance(v, str) else json.dumps(v) for k, v in arguments.items()}
        self._offered(server, "prompts", "prompts")
        params: dict[str, Any] = {"name": name}
        if arguments:
            params["arguments"] = arguments
        result = await self.client.request(server, methods.PROMPTS_GET, params)
        self.write(f"[{server}] prompt {for_display(name, 200)}:")
        for line in prompt_lines(result):
            self.write(line)

    async def _complete(self, rest: str) -> None:
        words = rest.split(None, 3)
        if len(words) < 3:
            raise ArgumentError("usage: complete <server> <prompt:NAME|resource:URI_TEMPLATE> "
                              "<argument> [value]")
        server, ref, argument = words[0], parse_reference(words[1]), words[2]
        value = words[3] if len(words) == 4 else ""
        self._offered(server, "completions", "completions")
        result = await self.client.request(server, methods.COMPLETION_COMPLETE, {
            "ref": ref, "argument": {"name": argument, "value": value}})
        completion = result.get("completion")
        if not isinstance(completion, dict) or not isinstance(completion.get("values"), list):
            raise MCPError("completion/complete answered without completion values")
        values = completion["values"]
        self.write(f"[{server}]:")
        for item in values[:100]:
            self.write(f"  {for_display(str(item), 300)}")
        total, more = completion.get("total"), completion.get("hasMore")
        if not values:
            self.write("  (no completions)")
        if len(values) > 100 or total is not None or more:
            shown = min(len(values), 100)
            summary = f"  ({shown} shown"
            if isinstance(total, int):
                summary += f" of {total}"
            self.write(summary + (", more available)" if more else ")"))

    async def _loglevel(self, rest: str) -> None:
        words = rest.split()
        if len(words) != 2:
            raise ArgumentError("usage: loglevel <server> <level>")
        server, level = words[0], words[1].lower()
        if level not in methods.LOG_LEVELS:
            raise ArgumentError(f"unknown level {for_display(level, 40)!r}: use one of "
                              f"{', '.join(methods.LOG_LEVELS)}")
        connection = self._offered(server, "logging", "log messages")
        if connection.era == "modern":
            raise NotOffered(f"[{server}]: 2026-07-28 has no logging/setLevel "
                             "(the level travels with each request)")
        await self.client.request(server, methods.LOGGING_SET_LEVEL, {"level": level})
        self.write(f"[{server}] log level set to {level}")

    # -- subscriptions -----------------------------------------------------------------

    async def _subscribe(self, rest: str) -> None:
        server, uri = self._subscription_words(rest, "subscribe")
        connection = self._offered(server, "resources", "resource subscriptions")
        subscribed = self._subscribed.setdefault(server, set())
        if connection.era == "modern":
            await self._listen(connection, subscribed | {uri})
        else:
            resources = connection.server.capabilities.get("resources") if \
                connection.server else None
            if not (isinstance(resources, dict) and resources.get("subscribe")):
                raise NotOffered(f"[{server}]: no resource subscriptions "
                                 "(the server does not offer them)")
            await self.client.request(server, methods.RESOURCES_SUBSCRIBE, {"uri": uri})
        subscribed.add(uri)
        self.write(f"[{server}] subscribed to {for_display(uri, 500)}")

    async def _unsubscribe(self, rest: str) -> None:
        server, uri = self._subscription_words(rest, "unsubscribe")
        connection = self.client.get(server)
        subscribed = self._subscribed.get(server, set())
        if connection.era == "modern":
            if uri not in subscribed:
                raise ArgumentError(f"not subscribed to {for_display(uri, 500)} on {server}")
            await self._listen(connection, subscribed - {uri})
        else:
            self._offered(server, "resources", "resource subscriptions")
            await self.client.request(server, methods.RESOURCES_UNSUBSCRIBE, {"uri": uri})
        subscribed.discard(uri)
        self.write(f"[{server}] unsubscribed from {for_display(uri, 500)}")

    @staticmethod
    def _subscription_words(rest: str, command: str) -> tuple[str, str]:
        words = rest.split()
        if len(words) != 2:
            raise ArgumentError(f"usage: {command} <server> <uri>")
        return words[0], words[1]

    async def _listen(self, connection: MCPConnection, uris: set[str]) -> None:
        """(Re)open the server's ``subscriptions/listen`` stream for ``uris``; close it when
        none is left. Returns once the server has acknowledged the new stream."""
        old = self._listeners.pop(connection.name, None)
        if old is not None:
            old.cancel()
            await asyncio.gather(old, return_exceptions=True)
        if not uris:
            return
        params = {"notifications": {"resourceSubscriptions": sorted(uris)}}
        acknowledged = asyncio.ensure_future(self.notices.wait_for(
            lambda server, note: server == connection.name
            and note.method == methods.SUBSCRIPTIONS_ACKNOWLEDGED, connection.timeout))
        stream = asyncio.ensure_future(
            connection.request(methods.SUBSCRIPTIONS_LISTEN, params, timeout=math.inf))
        done, _ = await asyncio.wait({acknowledged, stream},
                                     return_when=asyncio.FIRST_COMPLETED)
        if stream in done:  # the server refused (or ended) the stream at once
            acknowledged.cancel()
            await asyncio.gather(acknowledged, return_exceptions=True)
            stream.result()
            raise MCPError("the server ended the subscription stream at once")
        try:
            acknowledged.result()
        except TimeoutError:
            stream.cancel()
            await asyncio.gather(stream, return_exceptions=True)
            raise MCPError(f"{connection.name}: subscriptions/listen was not acknowledged "
                           f"within {connection.timeout:g}s") from None
        self._listeners[connection.name] = asyncio.ensure_future(self._hold(connection, stream))

    async def _hold(self, connection: MCPConnection, stream: asyncio.Future[Any]) -> None:
        """Keep a listen stream; say so when the server ends it."""
        try:
            await stream
        except asyncio.CancelledError:
            stream.cancel()
            raise
        except MCPError as exc:
            self.notices.line(f"[{connection.name}] subscription stream ended: "
                              f"{for_display(str(exc))}")
        else:
            self.notices.line(f"[{connection.name}] subscription stream ended")
        self._subscribed.pop(connection.name, None)
        self._listeners.pop(connection.name, None)

    async def close_subscriptions(self) -> None:
        """Stop every ``subscriptions/listen`` stream (the shell is ending)."""
        listeners, self._listeners = list(self._listeners.values()), {}
        for task in listeners:
            task.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)
