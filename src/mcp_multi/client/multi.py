"""Many named MCP servers at once: add and remove at run time, route calls, broadcast.

Each server is one :class:`MCPConnection` over its own transport, so WebSocket, SSE,
Streamable HTTP and stdio servers mix freely. :meth:`MultiServerMCPClient.broadcast` runs
on every server concurrently, each call under its own timeout, and collects a result or an
error per server: a dead or slow server never holds back or breaks the others.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..protocol.errors import JSONRPCError, MCPError, RequestTimeout
from ..transport import create_transport
from .answering import ClientHandlers, roots_handler
from .connection import DEFAULT_TIMEOUT, FrameHook, MCPConnection, NotificationHook
from .targets import ServerSpec, resolve_target, valid_name

if TYPE_CHECKING:
    from .auth.hook import RequestAuth

# Which authorization a server's requests go through (``None``: none), asked once per
# connection opened.
AuthFactory = Callable[[ServerSpec], "RequestAuth | None"]

__all__ = [
    "AuthFactory",
    "BroadcastOutcome",
    "BroadcastResult",
    "MultiServerMCPClient",
    "ServerExists",
    "ServerNotFound",
]

logger = logging.getLogger(__name__)


class ServerNotFound(MCPError):
    """No server of that name is connected."""

    def __init__(self, name: str, known: Iterable[str] = ()) -> None:
        names = ", ".join(known)
        super().__init__(f"Unknown server: {name}" + (f" (connected: {names})" if names else ""))
        self.name = name


class ServerExists(MCPError):
    """A server of that name is already connected."""

    def __init__(self, name: str) -> None:
        super().__init__(f"A server named {name!r} is already connected")
        self.name = name


@dataclass(frozen=True, slots=True)
class BroadcastOutcome:
    """One server's part of a broadcast: its result, or the error it ended in."""

    server: str
    result: dict[str, Any] | None
    error: MCPError | None
    seconds: float

    @property
    def ok(self) -> bool:
        return self.error is None

    def response(self, request_id: int) -> dict[str, Any] | None:
        """This outcome as a JSON-RPC response to ``request_id``.

        ``None`` when the server gave no JSON-RPC answer (timeout, lost connection).
        """
        if self.result is not None:
            return {"jsonrpc": "2.0", "id": request_id, "result": self.result}
        if isinstance(self.error, JSONRPCError):
            return {"jsonrpc": "2.0", "id": request_id, "error": self.error.to_error()}
        return None


@dataclass(frozen=True, slots=True)
class BroadcastResult:
    """A whole broadcast: its number in this client (``id``) and one outcome per server.

    Each server's request carries that connection's own JSON-RPC id on the wire; ``id``
    numbers the broadcast as one request made to all servers (1 for the first).
    """

    id: int
    outcomes: list[BroadcastOutcome]

    @property
    def ok(self) -> bool:
        return all(outcome.ok for outcome in self.outcomes)


class MultiServerMCPClient:
    """Named connections to many MCP servers.

    Args:
        timeout: default seconds per request on every connection.
        on_frame: hook shown every JSON-RPC frame of every server (``--trace``).
        on_notification: hook shown every notification of every server.
        transport_options: extra keyword arguments for every transport's constructor.
        headers: HTTP headers for every remote server (a server's own headers win).
        protocol_version: the protocol version every connection speaks (``None``: each
            picks its era, see :class:`MCPConnection`).
        handlers: what answers servers' sampling, elicitation and roots requests
            (:mod:`mcp_multi.client.answering`); :attr:`handlers` may be replaced at run
            time, and every connection reads the new ones at its next server request.
    """

    def __init__(
        self,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        on_frame: FrameHook | None = None,
        on_notification: NotificationHook | None = None,
        transport_options: dict[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        protocol_version: str | None = None,
        handlers: ClientHandlers | None = None,
        auth_for: AuthFactory | None = None,
    ) -> None:
        self.timeout = timeout
        self.auth_for = auth_for
        self.headers = dict(headers or {})
        self.protocol_version = protocol_version
        self._on_frame = on_frame
        self._on_notification = on_notification
        self._transport_options = transport_options or {}
        self._connections: dict[str, MCPConnection] = {}
        self._broadcast_ids = itertools.count(1)
        self._handlers = handlers

    @property
    def handlers(self) -> ClientHandlers | None:
        """What answers servers' requests (sampling, elicitation, roots)."""
        return self._handlers

    @handlers.setter
    def handlers(self, handlers: ClientHandlers | None) -> None:
        self._handlers = handlers
        for connection in self._connections.values():
            connection.handlers = handlers

    async def set_roots(self, directories: Sequence[str | Path]) -> None:
        """Offer ``directories`` as the roots from now on, and tell every connected server
        whose session declared roots that they changed (``notifications/roots/list_changed``).

        Raises:
            ValueError: one of them is not a directory.
        """
        current = self._handlers or ClientHandlers()
        self.handlers = replace(current, roots=roots_handler(directories))

        async def tell(connection: MCPConnection) -> None:
            try:
                await connection.roots_changed()
            except MCPError as exc:
                logger.info("%s: could not send roots/list_changed: %s", connection.name, exc)

        await asyncio.gather(*(tell(c) for c in self._connections.values() if c.is_open))

    # -- servers -----------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        """Server names in the order they were added."""
        return list(self._connections)

    @property
    def connections(self) -> dict[str, MCPConnection]:
        return dict(self._connections)

    def get(self, name: str) -> MCPConnection:
        """The connection named ``name``.

        Raises:
            ServerNotFound: no such server.
        """
        try:
            return self._connections[name]
        except KeyError:
            raise ServerNotFound(name, self._connections) from None

    def __contains__(self, name: object) -> bool:
        return name in self._connections

    def __len__(self) -> int:
        return len(self._connections)

    async def add(self, name: str, target: str, transport: str | None = None) -> MCPConnection:
        """Connect to a server and add it under ``name``.

        Args:
            name: the server's name in this client.
            target: ``host:port``, a URL or ``stdio:COMMAND ARGS`` (see
                :mod:`mcp_multi.client.targets`).
            transport: ``websocket`` (default for ``host:port``), ``sse``, ``http`` or
                ``stdio``.

        Raises:
            ValueError: bad name, target or transport.
            ServerExists: an open server already has that name.
            TransportError, ProtocolError, JSONRPCError: connecting or the handshake failed.
        """
        kind, url = resolve_target(target, transport)
        return await self.add_spec(ServerSpec(name, kind, url))

    async def add_spec(self, spec: ServerSpec, *,
                       auth: RequestAuth | None = None) -> MCPConnection:
        """Connect to the server ``spec`` describes and add it (see :meth:`add`); ``auth``
        authorizes its HTTP requests (default: what :attr:`auth_for` gives)."""
        connection = await self._open(spec, auth)
        await self._admit(connection)
        return connection

    async def add_all(self, specs: Iterable[ServerSpec]) -> dict[str, MCPError | ValueError]:
        """Connect to several servers concurrently; servers keep the order of ``specs``.

        Each server goes the way :meth:`add_spec` goes; only the order of admission waits
        until every connect has ended.

        Returns:
            The error of each server that could not be added (empty when all were).
        """
        specs = list(specs)

        async def attempt(spec: ServerSpec) -> MCPConnection | MCPError | ValueError:
            try:
                return await self._open(spec)
            except (MCPError, ValueError) as exc:
                return exc

        outcomes = await asyncio.gather(*(attempt(spec) for spec in specs))
        errors: dict[str, MCPError | ValueError] = {}
        for spec, outcome in zip(specs, outcomes, strict=True):
            try:
                if not isinstance(outcome, MCPConnection):
                    raise outcome
                await self._admit(outcome)
            except (MCPError, ValueError) as exc:
                errors[spec.name] = exc
        return errors

    async def _open(self, spec: ServerSpec, auth: RequestAuth | None = None) -> MCPConnection:
        """A new, connected connection for ``spec``, not yet added."""
        self._check_free(spec.name)
        if auth is None and self.auth_for is not None and spec.transport != "stdio":
            auth = self.auth_for(spec)
        connection = self._new_connection(spec, auth)
        try:
            await connection.connect()
        except RequestTimeout:
            # A person still at the browser when the opening ran out of time: once they are
            # done (the user agent bounds that wait), open again with the token they got.
            if auth is None or not await auth.settle():
                raise
            connection = self._new_connection(spec, auth)
            await connection.connect()
        return connection

    async def _admit(self, connection: MCPConnection) -> None:
        """Add a connected ``connection``, unless its name was taken while it connected."""
        try:
            self._check_free(connection.name)
        except ServerExists:
            await connection.close()
            raise
        # A closed connection of the same name (its server went away) is replaced in place.
        old = self._connections.get(connection.name)
        self._connections[connection.name] = connection
        if old is not None:
            await old.close()

    def _check_free(self, name: str) -> None:
        if not valid_name(name):
            raise ValueError(f"bad server name {name!r}: use letters, digits, _ - .")
        old = self._connections.get(name)
        if old is not None and old.is_open:
            raise ServerExists(name)

    def _new_connection(self, spec: ServerSpec,
                        auth: RequestAuth | None = None) -> MCPConnection:
        """A connection for ``spec``, not yet connected; ``auth`` (what :meth:`_open` chose)
        authorizes its HTTP requests."""
        options = dict(self._transport_options)
        if spec.transport == "stdio":
            options.update(env=dict(spec.env), cwd=spec.cwd, server_name=spec.name)
        else:
            options["headers"] = {**self.headers, **spec.headers}
            if auth is not None:
                options["auth"] = auth
        return MCPConnection(
            spec.name,
            create_transport(spec.transport, spec.url, **options),
            timeout=self.timeout,
            on_frame=self._on_frame,
            on_notification=self._on_notification,
            protocol_version=self.protocol_version,
            handlers=self._handlers,
        )

    async def remove(self, name: str) -> None:
        """Disconnect the server ``name`` and forget it.

        Raises:
            ServerNotFound: no such server.
        """
        connection = self.get(name)
        del self._connections[name]
        await connection.close()

    async def close(self) -> None:
        """Disconnect every server."""
        connections = list(self._connections.values())
        self._connections.clear()
        await asyncio.gather(*(c.close() for c in connections), return_exceptions=True)

    async def __aenter__(self) -> MultiServerMCPClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- calls -------------------------------------------------------------------------

    async def call(
        self,
        server: str,
        tool: str,
        arguments: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Call ``tool`` on ``server`` and return the result (see :meth:`MCPConnection.call_tool`).

        Raises:
            ServerNotFound: no such server.
            JSONRPCError, RequestTimeout, ConnectionClosed: as the connection raises them.
        """
        return await self.get(server).call_tool(tool, arguments, timeout=timeout)

    async def request(
        self,
        server: str,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Send any method (``resources/read``, ``ping``, ...) to ``server``; return its result."""
        return await self.get(server).request(method, params, timeout=timeout)

    async def list_tools(
        self, server: str | None = None, *, refresh: bool = False
    ) -> dict[str, list[dict[str, Any]] | MCPError]:
        """The tools of one server, or of all concurrently: a list or the error per server.

        Raises:
            ServerNotFound: ``server`` is given and unknown.
        """
        names = [self.get(server).name] if server is not None else self.names

        async def one(name: str) -> list[dict[str, Any]] | MCPError:
            try:
                return await self._connections[name].list_tools(refresh=refresh)
            except MCPError as exc:
                return exc

        results = await asyncio.gather(*(one(name) for name in names))
        return dict(zip(names, results, strict=True))

    async def broadcast(
        self,
        tool: str,
        arguments: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> BroadcastResult:
        """Call ``tool`` on every server at once, each under its own ``timeout``.

        Never raises for a server's failure: every server gets an outcome.
        """
        return await self._broadcast(
            lambda c: c.call_tool(tool, arguments, timeout=timeout)
        )

    async def broadcast_request(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> BroadcastResult:
        """Send ``method`` to every server at once (see :meth:`broadcast`)."""
        return await self._broadcast(lambda c: c.request(method, params, timeout=timeout))

    async def ping(
        self, server: str | None = None, *, timeout: float | None = None
    ) -> list[BroadcastOutcome]:
        """Ping one server, or every server at once; each outcome holds its round-trip time.

        Never raises for a server's failure (see :meth:`broadcast`).

        Raises:
            ServerNotFound: ``server`` is given and unknown.
        """
        chosen = [self.get(server)] if server is not None else list(self._connections.values())

        async def ping(connection: MCPConnection) -> dict[str, Any]:
            await connection.ping(timeout=timeout)
            return {}

        return await self._each(chosen, ping)

    async def _broadcast(
        self, send: Callable[[MCPConnection], Awaitable[dict[str, Any]]]
    ) -> BroadcastResult:
        broadcast_id = next(self._broadcast_ids)
        outcomes = await self._each(list(self._connections.values()), send)
        return BroadcastResult(broadcast_id, outcomes)

    async def _each(
        self,
        connections: list[MCPConnection],
        send: Callable[[MCPConnection], Awaitable[dict[str, Any]]],
    ) -> list[BroadcastOutcome]:
        """``send`` to each connection concurrently; one timed outcome per connection."""

        async def one(connection: MCPConnection) -> BroadcastOutcome:
            start = time.perf_counter()
            result: dict[str, Any] | None = None
            error: MCPError | None = None
            try:
                result = await send(connection)
            except MCPError as exc:
                error = exc
            except Exception as exc:  # one server's surprise must not break the broadcast
                logger.exception("%s: broadcast failed", connection.name)
                error = MCPError(f"{type(exc).__name__}: {exc}")
            return BroadcastOutcome(connection.name, result, error, time.perf_counter() - start)

        return list(await asyncio.gather(*(one(c) for c in connections)))
