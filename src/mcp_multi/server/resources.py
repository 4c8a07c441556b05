"""The server's resources ``server://info`` and ``server://stats``, and their counters.

``RESOURCE_NOT_FOUND`` and ``ResourceNotFound`` live in :mod:`mcp_multi.protocol.errors` with
every other code; they are re-exported here for the callers that look for them beside
the resources. The Prometheus rendering of the counters is :mod:`mcp_multi.server.metrics`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import psutil

from .. import __version__
from ..protocol.errors import RESOURCE_NOT_FOUND, ResourceNotFound
from .settings import ServerSettings
from .tools import ToolRegistry

__all__ = ["RESOURCE_NOT_FOUND", "ResourceNotFound", "Resources", "ServerStats"]

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
            raise ResourceNotFound.for_uri(uri)
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
