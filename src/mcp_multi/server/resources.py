"""The server's resources and resource templates, and the counters ``server://stats`` shows.

Every server has ``server://info`` and ``server://stats`` and the template
``server://tools/{name}`` (a tool's ``tools/list`` entry, for a client or a person to read
one tool's schema without the whole list); a profile adds its own resources and templates
(:mod:`mcp_multi.server.profiles`).

A template is an RFC 6570 level-1 URI template: literal text and ``{name}`` variables, each
standing for one non-empty run of characters other than ``/``, ``?`` and ``#``,
percent-decoded when read. A ``resources/read`` of a URI no resource has is tried against
each template in turn; the first that matches reads it with the variables' values.

``RESOURCE_NOT_FOUND`` and ``ResourceNotFound`` live in :mod:`mcp_multi.protocol.errors` with
every other code; they are re-exported here for the callers that look for them beside
the resources. The Prometheus rendering of the counters is :mod:`mcp_multi.server.metrics`.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import orjson
import psutil

from .. import __version__
from ..protocol.errors import RESOURCE_NOT_FOUND, InvalidParams, ResourceNotFound
from ..protocol.text import clip
from .settings import ServerSettings
from .tools import DisabledToolError, ToolRegistry, UnknownToolError

__all__ = [
    "MAX_COMPLETIONS",
    "RESOURCE_NOT_FOUND",
    "TOOL_TEMPLATE",
    "Completer",
    "Resource",
    "ResourceNotFound",
    "ResourceTemplate",
    "Resources",
    "ServerStats",
    "UriTemplate",
    "complete_from",
    "no_template",
    "not_found",
    "tool_not_found",
]

# Values one ``completion/complete`` answer holds at most (the specification's limit).
MAX_COMPLETIONS = 100
# Characters of a client's URI or value an error message quotes.
SHOWN = 200

# The template every server has: one tool's ``tools/list`` entry.
TOOL_TEMPLATE = "server://tools/{name}"

Completer = Callable[[str, Mapping[str, str]], list[str]]
"""(the value typed so far, the other arguments already chosen) -> candidate values."""


def complete_from(choices: Iterable[str]) -> Completer:
    """A completer offering the ``choices`` that start with the value typed (case-insensitive)."""
    fixed = tuple(choices)

    def complete(value: str, context: Mapping[str, str]) -> list[str]:
        low = value.lower()
        return [c for c in fixed if c.lower().startswith(low)]

    return complete

@dataclass(slots=True)
class ServerStats:
    """Live counters, updated by the endpoints and the dispatcher."""

    started: float = field(default_factory=time.time)
    connections: int = 0
    sessions_total: int = 0
    requests: int = 0
    calls_served: int = 0
    errors: int = 0
    # Legacy SSE POSTs (``/message``) this instance accepted, whichever instance's session
    # they were for: where a load balancer sent them.
    posts_accepted: int = 0
    by_transport: dict[str, int] = field(default_factory=dict)

    def opened(self, transport: str) -> None:
        self.connections += 1
        self.sessions_total += 1
        self.by_transport[transport] = self.by_transport.get(transport, 0) + 1

    def closed(self, transport: str) -> None:
        self.connections -= 1
        self.by_transport[transport] = self.by_transport.get(transport, 1) - 1


_BUILT_IN = ("server://info", "server://stats")

_LISTING = [
    {
        "uri": "server://info",
        "name": "server-info",
        "title": "Server information",
        "description": "Server name, version, enabled tools, transports and endpoints, uptime",
        "mimeType": "application/json",
    },
    {
        "uri": "server://stats",
        "name": "server-stats",
        "title": "Server statistics",
        "description": "CPU, memory, connections and calls served",
        "mimeType": "application/json",
    },
]


Reader = Callable[[], dict[str, Any]]
"""() -> one ``contents`` item without its ``uri``: ``mimeType`` and ``text`` or ``blob``."""

TemplateReader = Callable[[Mapping[str, str]], dict[str, Any]]
"""(the template's variables) -> one ``contents`` item without its ``uri``.

Raises :class:`ResourceNotFound` when the values name nothing."""


@dataclass(frozen=True, slots=True)
class Resource:
    """A resource a profile adds: its listing entry and how to read it."""

    uri: str
    name: str
    description: str
    read: Reader
    mime_type: str | None = None
    title: str | None = None

    def to_wire(self) -> dict[str, Any]:
        """The resource's entry in a ``resources/list`` result."""
        return _entry({"uri": self.uri}, self.name, self.description, self.title,
                      self.mime_type)


def _entry(entry: dict[str, Any], name: str, description: str, title: str | None,
           mime_type: str | None) -> dict[str, Any]:
    """A listing entry: what names it (``uri`` or ``uriTemplate``), then the common fields."""
    entry.update(name=name, description=description)
    if title:
        entry["title"] = title
    if mime_type:
        entry["mimeType"] = mime_type
    return entry


_VARIABLE = re.compile(r"\{([A-Za-z0-9_]+)\}")


class UriTemplate:
    """An RFC 6570 level-1 URI template, matched against URIs.

    Raises:
        ValueError: the template uses an operator or names a variable twice.
    """

    __slots__ = ("_pattern", "template", "variables")

    def __init__(self, template: str) -> None:
        self.template = template
        parts: list[str] = []
        names: list[str] = []
        at = 0
        for match in _VARIABLE.finditer(template):
            parts.append(re.escape(template[at:match.start()]))
            name = match.group(1)
            if name in names:
                raise ValueError(f"{template}: variable {name} appears twice")
            names.append(name)
            parts.append(f"(?P<{name}>[^/?#]+)")
            at = match.end()
        literal = _VARIABLE.sub("", template)
        if "{" in literal or "}" in literal:
            raise ValueError(f"{template}: only level-1 {{name}} variables are supported")
        parts.append(re.escape(template[at:]))
        self.variables: tuple[str, ...] = tuple(names)
        self._pattern = re.compile("".join(parts))

    def match(self, uri: str) -> dict[str, str] | None:
        """The variables' values (percent-decoded) if ``uri`` fits the template, else None."""
        found = self._pattern.fullmatch(uri)
        if found is None:
            return None
        return {name: unquote(value) for name, value in found.groupdict().items()}


@dataclass(frozen=True, slots=True)
class ResourceTemplate:
    """A family of resources named by a URI template, and how to read and complete them."""

    uri_template: str
    name: str
    description: str
    read: TemplateReader
    mime_type: str | None = None
    title: str | None = None
    complete: Mapping[str, Completer] = field(default_factory=dict)
    matcher: UriTemplate = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "matcher", UriTemplate(self.uri_template))
        unknown = set(self.complete) - set(self.matcher.variables)
        if unknown:
            raise ValueError(f"{self.uri_template}: no variable {', '.join(sorted(unknown))}")

    def to_wire(self) -> dict[str, Any]:
        """The template's entry in a ``resources/templates/list`` result."""
        return _entry({"uriTemplate": self.uri_template}, self.name, self.description,
                      self.title, self.mime_type)


def not_found(uri: str) -> ResourceNotFound:
    """The error of a ``resources/read`` of a URI the server does not have."""
    return ResourceNotFound(f"Resource not found: {clip(uri, SHOWN)}", {"uri": uri})


def tool_not_found(name: str) -> ResourceNotFound:
    """The error of reading :data:`TOOL_TEMPLATE` for a tool not enabled here."""
    uri = f"server://tools/{name}"
    return ResourceNotFound(f"Resource not found: {clip(uri, SHOWN)} (no tool "
                            f"{clip(name, SHOWN)} is enabled here)", {"uri": uri})


def no_template(uri_template: str) -> InvalidParams:
    """The error of completing a variable of a template the server does not have."""
    return InvalidParams(f"Invalid params: no resource template {clip(uri_template, SHOWN)}",
                         {"uri": uri_template})


def _json_item(body: Any) -> dict[str, Any]:
    return {"mimeType": "application/json",
            "text": orjson.dumps(body, option=orjson.OPT_INDENT_2).decode()}


class Resources:
    """Lists, reads and completes the server's resources and resource templates.

    ``extra`` and ``templates`` are a profile's; a URI or template that one of ours (or
    another of the profile's) already has is refused with ``ValueError``.
    """

    def __init__(self, settings: ServerSettings, registry: ToolRegistry, stats: ServerStats,
                 transports: tuple[str, ...], endpoints: dict[str, str],
                 extra: Iterable[Resource] = (),
                 templates: Iterable[ResourceTemplate] = ()) -> None:
        self._settings = settings
        self._registry = registry
        self._stats = stats
        self._transports = list(transports)
        self._endpoints = endpoints
        self._process = psutil.Process(os.getpid())
        self._process.cpu_percent(None)  # prime: the first reading is always 0.0
        self._extra: dict[str, Resource] = {}
        for resource in extra:
            if resource.uri in self._extra or resource.uri in _BUILT_IN:
                raise ValueError(f"resource {resource.uri} is defined twice")
            self._extra[resource.uri] = resource
        self._listing = _LISTING + [r.to_wire() for r in self._extra.values()]
        self._templates: dict[str, ResourceTemplate] = {}
        for template in (self._tool_template(), *templates):
            if template.uri_template in self._templates:
                raise ValueError(f"resource template {template.uri_template} is defined twice")
            self._templates[template.uri_template] = template
        self._template_listing = [t.to_wire() for t in self._templates.values()]

    def list_resources(self) -> list[dict[str, Any]]:
        return self._listing

    def list_templates(self) -> list[dict[str, Any]]:
        return self._template_listing

    def read(self, uri: str, tool_shown: Callable[[str], bool] | None = None
             ) -> dict[str, Any]:
        """The ``resources/read`` result for ``uri``; raises :class:`ResourceNotFound`.
        ``tool_shown`` says which tools ``server://info`` names (all enabled by default)."""
        if uri == "server://info":
            item = _json_item(self.info(tool_shown))
        elif uri == "server://stats":
            item = _json_item(self.stats())
        elif uri in self._extra:
            item = self._extra[uri].read()
        else:
            item = self._read_templated(uri)
        return {"contents": [{"uri": uri, **item}]}

    def _read_templated(self, uri: str) -> dict[str, Any]:
        found = self.template_of(uri)
        if found is None:
            raise not_found(uri)
        template, values = found
        return template.read(values)

    def template_of(self, uri: str) -> tuple[ResourceTemplate, dict[str, str]] | None:
        """The template that serves ``uri`` (and its variables' values), if one does."""
        if uri in _BUILT_IN or uri in self._extra:
            return None
        for template in self._templates.values():
            values = template.matcher.match(uri)
            if values is not None:
                return template, values
        return None

    def complete(self, uri_template: str, variable: str, value: str,
                 context: Mapping[str, str]) -> list[str]:
        """Candidate values of ``variable`` of the template ``uri_template``.

        Raises:
            InvalidParams: no such template, or it has no such variable.
        """
        template = self._templates.get(uri_template)
        if template is None:
            raise no_template(uri_template)
        if variable not in template.matcher.variables:
            raise InvalidParams(
                f"Invalid params: template {uri_template} has no variable "
                f"{clip(variable, SHOWN)}; its variables: {', '.join(template.matcher.variables)}")
        completer = template.complete.get(variable)
        return completer(value, context) if completer is not None else []

    def _tool_template(self) -> ResourceTemplate:
        registry = self._registry

        def read(values: Mapping[str, str]) -> dict[str, Any]:
            name = values["name"]
            try:
                registry.get(name)
            except (UnknownToolError, DisabledToolError):
                raise tool_not_found(name) from None
            entry = next(t for t in registry.list_tools() if t["name"] == name)
            return _json_item(entry)

        def names(value: str, context: Mapping[str, str]) -> list[str]:
            return complete_from(registry.names)(value, context)

        return ResourceTemplate(
            uri_template=TOOL_TEMPLATE, name="server-tool", title="One tool",
            description="The tools/list entry of one enabled tool: its description, input "
                        "schema and annotations",
            mime_type="application/json", read=read, complete={"name": names},
        )

    def info(self, tool_shown: Callable[[str], bool] | None = None) -> dict[str, Any]:
        s = self._settings
        tools = self._registry.names
        return {
            "name": s.name,
            "version": __version__,
            "tools": tools if tool_shown is None else [t for t in tools if tool_shown(t)],
            "transports": self._transports,
            "endpoints": self._endpoints,
            "uptime_seconds": round(time.time() - self._stats.started, 3),
        }

    def resident_memory(self) -> int:
        """Resident memory of the server process, in bytes."""
        return int(self._process.memory_info().rss)

    def stats(self) -> dict[str, Any]:
        st = self._stats
        mem = self._process.memory_info()
        return {
            "cpu_percent": self._process.cpu_percent(None),
            "memory_rss_bytes": mem.rss,
            "system_cpu_percent": psutil.cpu_percent(None),
            "system_memory_percent": psutil.virtual_memory().percent,
            "connections": st.connections,
            "connections_by_transport": dict(st.by_transport),
            "sessions_total": st.sessions_total,
            "requests": st.requests,
            "calls_served": st.calls_served,
            "errors": st.errors,
            "uptime_seconds": round(time.time() - st.started, 3),
        }
