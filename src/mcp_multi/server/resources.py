"""The server's resources ``server://info`` and ``server://stats``, and their counters."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import psutil

from .. import __version__
from ..protocol.errors import JSONRPCError
from .settings import ServerSettings
from .tools import ToolRegistry

__all__ = ["RESOURCE_NOT_FOUND", "ResourceNotFound", "Resources", "ServerStats"]

# MCP's code for an unknown resource URI (handshake-era revisions).
RESOURCE_NOT_FOUND = -32002


class ResourceNotFound(JSONRPCError):
    code = RESOURCE_NOT_FOUND

    def __init__(self, uri: str) -> None:
        super().__init__(f"Resource not found: {uri}", {"uri": uri})


@dataclass(slots=True)
class ServerStats:
    """Live counters, updated by the endpoints and the dispatcher."""

    started: float = field(default_factory=time.time)
    connections: int = 0
    sessions_total: int = 0
    requests: int = 0
    calls_served: int = 0
    errors: int = 0
    by_transport: dict[str, int] = field(default_factory=dict)

    def opened(self, transport: str) -> None:
        self.connections += 1
        self.sessions_total += 1
        self.by_transport[transport] = self.by_transport.get(transport, 0) + 1

    def closed(self, transport: str) -> None:
        self.connections -= 1
        self.by_transport[transport] = self.by_transport.get(transport, 1) - 1


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


def _label(value: str) -> str:
    """A Prometheus label value: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Resources:
    """Lists and reads the server's resources."""

    def __init__(self, settings: ServerSettings, registry: ToolRegistry, stats: ServerStats,
                 transports: tuple[str, ...], endpoints: dict[str, str]) -> None:
        self._settings = settings
        self._registry = registry
        self._stats = stats
        self._transports = list(transports)
        self._endpoints = endpoints
        self._process = psutil.Process(os.getpid())
        self._process.cpu_percent(None)  # prime: the first reading is always 0.0

    def list_resources(self) -> list[dict[str, Any]]:
        return _LISTING

    def read(self, uri: str) -> dict[str, Any]:
        """The ``resources/read`` result for ``uri``; raises :class:`ResourceNotFound`."""
        if uri == "server://info":
            body = self.info()
        elif uri == "server://stats":
            body = self.stats()
        else:
            raise ResourceNotFound(uri)
        text = orjson.dumps(body, option=orjson.OPT_INDENT_2).decode()
        return {"contents": [{"uri": uri, "mimeType": "application/json", "text": text}]}

    def info(self) -> dict[str, Any]:
        s = self._settings
        return {
            "name": s.name,
            "version": __version__,
            "tools": self._registry.names,
            "transports": self._transports,
            "endpoints": self._endpoints,
            "uptime_seconds": round(time.time() - self._stats.started, 3),
        }

    def metrics(self) -> str:
        """The counters in the Prometheus text exposition format, for ``GET /metrics``."""
        st = self._stats
        server = f'server="{_label(self._settings.name)}"'
        lines: list[str] = []

        def metric(name: str, kind: str, help_text: str,
                   samples: list[tuple[str, float]]) -> None:
            lines.extend((f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"))
            lines.extend(f"{name}{{{server}{labels}}} {value!r}" for labels, value in samples)

        metric("mcp_connections", "gauge", "Open MCP sessions, by transport.",
               [(f',transport="{_label(t)}"', n) for t, n in sorted(st.by_transport.items())])
        metric("mcp_sessions_total", "counter", "MCP sessions opened.",
               [("", st.sessions_total)])
        metric("mcp_requests_total", "counter", "JSON-RPC requests served.",
               [("", st.requests)])
        metric("mcp_tool_calls_total", "counter", "tools/call requests that reached a tool.",
               [("", st.calls_served)])
        metric("mcp_errors_total", "counter", "JSON-RPC error responses sent.",
               [("", st.errors)])
        metric("mcp_uptime_seconds", "gauge", "Seconds since the server started.",
               [("", round(time.time() - st.started, 3))])
        metric("process_resident_memory_bytes", "gauge", "Resident memory of the server.",
               [("", self._process.memory_info().rss)])
        return "\n".join(lines) + "\n"

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
