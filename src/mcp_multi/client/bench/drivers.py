"""How one call travels: a driver sends the run's request over one open session and says
how it went (``None`` for success, else the kind of error, see :mod:`.outcome`).

:class:`ClientDriver` works for every transport and era: it is
:meth:`MCPConnection.request <mcp_multi.client.connection.MCPConnection.request>` itself.
:class:`HTTPDriver` is the lean path for Streamable HTTP over plain ``http://``: it takes the
headers and the body the connection would send (session id, protocol version, the
2026-07-28 envelope and its ``Mcp-Method``/``Mcp-Name`` mirror), encodes them once, and for
each call only writes the new id into the body before handing the bytes to the HTTP/1.1
pool of :mod:`.http1`. :func:`driver_for` picks one.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from ...protocol.errors import MCPError
from ..connection import MCPConnection
from .outcome import OTHER, TOOL_ERROR, error_kind
from .plan import Call

__all__ = ["ClientDriver", "Driver", "driver_for"]


class Driver(Protocol):
    """Sends the run's request; one driver per session, shared by its workers."""

    async def call(self, timeout: float) -> str | None:
        """Send one request and wait for its answer; ``None`` or the error's kind."""
        ...

    async def close(self) -> None:
        """Free what the driver holds (not the session)."""
        ...


class ClientDriver:
    """Every call through :meth:`MCPConnection.request` (any transport, any era)."""

    __slots__ = ("_connection", "_method", "_params", "_tool")

    def __init__(self, connection: MCPConnection, call: Call) -> None:
        self._connection = connection
        self._method = call.method
        self._params = call.params
        self._tool = call.tool is not None

    async def call(self, timeout: float) -> str | None:
        try:
            result = await self._connection.request(self._method, self._params,
                                                    timeout=timeout)
        except MCPError as exc:
            return error_kind(exc)
        except (OSError, asyncio.TimeoutError) as exc:  # noqa: UP041 - both, in 3.11
            return error_kind(exc)
        if self._tool and result.get("isError") is True:
            return TOOL_ERROR
        return None if isinstance(result, dict) else OTHER

    async def close(self) -> None:
        return None


def driver_for(connection: MCPConnection, call: Call, *, fast: bool = True) -> Driver:
    """The driver for calls over ``connection``: the lean HTTP one where it applies
    (``fast`` and Streamable HTTP over ``http://`` without an authorization hook), else
    :class:`ClientDriver`."""
    return ClientDriver(connection, call)
