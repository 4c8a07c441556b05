"""Client transports: one module per transport behind :class:`ClientTransport`.

Each transport class names itself (``kind``) and the path a server serves it at, so a
``host:port`` target becomes a URL without the caller knowing the transport's details.
A new transport is one module plus one :func:`register_transport` call here.

========== ======================= ==========================================================
kind       module                  reaches
========== ======================= ==========================================================
websocket  :mod:`.websocket`       ``ws://host:port/ws`` (our server; one message per frame)
sse        :mod:`.sse`             ``http://host:port/sse`` (legacy HTTP+SSE, 2024-11-05)
http       :mod:`.streamable_http` ``http://host:port/mcp`` (Streamable HTTP, 2025-03-26 on)
stdio      :mod:`.stdio`           ``stdio:COMMAND ARGS`` (a child process)
========== ======================= ==========================================================
"""

from __future__ import annotations

from typing import Any

from .base import DEFAULT_CONNECT_TIMEOUT, ClientTransport, map_transport_errors
from .sse import SSETransport
from .stdio import StdioTransport, parse_stdio_url, stdio_url
from .streamable_http import StreamableHTTPTransport
from .websocket import WebSocketTransport

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "TRANSPORTS",
    "ClientTransport",
    "SSETransport",
    "StdioTransport",
    "StreamableHTTPTransport",
    "WebSocketTransport",
    "create_transport",
    "map_transport_errors",
    "parse_stdio_url",
    "register_transport",
    "stdio_url",
    "transport_names",
]

TRANSPORTS: dict[str, type[ClientTransport]] = {}


def register_transport(cls: type[ClientTransport]) -> type[ClientTransport]:
    """Make a transport class available under its ``kind`` (usable as a decorator)."""
    TRANSPORTS[cls.kind] = cls
    return cls


def transport_names() -> list[str]:
    """The kinds of transport available, in registration order."""
    return list(TRANSPORTS)


def create_transport(kind: str, url: str, **options: Any) -> ClientTransport:
    """A transport of ``kind`` to ``url``; ``options`` go to its constructor.

    Raises:
        ValueError: no transport of that kind exists.
    """
    try:
        cls = TRANSPORTS[kind]
    except KeyError:
        raise ValueError(
            f"unknown transport {kind!r} (choose from {', '.join(TRANSPORTS)})"
        ) from None
    return cls(url, **options)


register_transport(WebSocketTransport)
register_transport(SSETransport)
register_transport(StreamableHTTPTransport)
register_transport(StdioTransport)
