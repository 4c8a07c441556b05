"""Opening a session: which protocol era, and the handshake of that era.

Mixed into :class:`~mcp_multi.client.connection.MCPConnection`. Asked for no version, a
connection probes ``server/discover`` at 2026-07-28 on the transports where both eras live
(Streamable HTTP, stdio) and falls back to the ``initialize`` handshake, as the official SDK
does (the verdicts are pure functions in :mod:`mcp_multi.protocol.lifecycle`); on WebSocket and
legacy SSE it runs the handshake. A version given (``--protocol-version``) is used as it is,
without fallback. Both handshakes declare the connection's client capabilities (its
handlers' kinds and the tasks extension). An HTTP 401 or 403 to the probe is no era
verdict: the server wants credentials. A transport with an authorization
(:mod:`mcp_multi.client.auth`) obtains them and sends the probe again before this layer
sees anything; without one, or when it gives up, the connection fails with what the server
said (:class:`AuthorizationRequired`).

The probe waits at most half the connection's timeout (and :data:`PROBE_TIMEOUT`), so a
silent server leaves the fallback handshake time within the one deadline of ``connect``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..protocol import methods
from ..protocol.envelope import request_meta, with_envelope
from ..protocol.errors import (
    AuthorizationRequired,
    HTTPStatusError,
    JSONRPCError,
    ProtocolError,
    RequestTimeout,
    UnsupportedProtocolVersion,
)
from ..protocol.lifecycle import (
    CLIENT_NAME,
    InitializeResult,
    ProbeVerdict,
    initialize_params,
    judge_discover_error,
    judge_discover_result,
    parse_discover_result,
    parse_initialize_result,
)
from ..protocol.text import for_display
from ..protocol.versions import (
    LATEST_HANDSHAKE_VERSION,
    LATEST_MODERN_VERSION,
    MODERN_VERSIONS,
    is_modern,
)
from ..transport import ClientTransport

__all__ = ["PROBE_TIMEOUT", "SessionOpening"]

logger = logging.getLogger(__name__)

# The longest a server/discover probe waits before taking silence for a handshake-era server.
PROBE_TIMEOUT = 10.0


class SessionOpening:
    """The era probe and the handshakes of :class:`MCPConnection` (a mixin)."""

    name: str
    timeout: float
    transport: ClientTransport
    requested_version: str | None
    _meta: dict[str, Any] | None

    if TYPE_CHECKING:
        async def request(self, method: str, params: dict[str, Any] | None = None, *,
                          timeout: float | None = None) -> dict[str, Any]: ...

        async def notify(self, method: str, params: dict[str, Any] | None = None) -> None: ...

        def client_capabilities(self) -> dict[str, Any]: ...

    async def _open_session(self) -> InitializeResult:
        wanted = self.requested_version
        if wanted is None:
            if self.transport.era_probe:
                return await self._probe()
            return await self._handshake(LATEST_HANDSHAKE_VERSION)
        if is_modern(wanted):
            return self._adopt(parse_discover_result(await self._discover(wanted), wanted))
        return await self._handshake(wanted, forced=True)

    async def _handshake(self, version: str, *, forced: bool = False) -> InitializeResult:
        """``initialize`` asking for ``version``, then ``notifications/initialized``."""
        self._meta = None
        result = await self.request(methods.INITIALIZE, initialize_params(
            __version__, protocol_version=version, capabilities=self.client_capabilities()))
        server = parse_initialize_result(result)
        if forced and server.protocol_version != version:
            raise ProtocolError(f"{self.name}: the server chose protocol "
                                f"{server.protocol_version}, not the {version} asked for")
        self.transport.negotiated(server.protocol_version)
        await self.notify(methods.INITIALIZED)
        return server

    async def _discover(self, version: str, timeout: float | None = None) -> dict[str, Any]:
        meta = request_meta(CLIENT_NAME, __version__, version, self.client_capabilities())
        return await self.request(methods.SERVER_DISCOVER, with_envelope(None, meta),
                                  timeout=timeout)

    def _adopt(self, server: InitializeResult) -> InitializeResult:
        self._meta = request_meta(CLIENT_NAME, __version__, server.protocol_version,
                                  self.client_capabilities())
        self.transport.negotiated(server.protocol_version)
        return server

    async def _probe(self) -> InitializeResult:
        """``server/discover`` first; the handshake when the server is not modern."""
        version = LATEST_MODERN_VERSION
        for attempt in range(2):
            result: dict[str, Any] = {}
            try:
                result = await self._discover(version, min(self.timeout / 2, PROBE_TIMEOUT))
                verdict = judge_discover_result(result, version)
            except JSONRPCError as exc:
                verdict = judge_discover_error(exc, retried=attempt > 0)
                if verdict.action == "fail":
                    raise ProtocolError(f"{self.name}: the server speaks none of our protocol "
                                        f"versions ({exc}: {for_display(str(exc.data), 200)})"
                                        ) from exc
            except RequestTimeout:
                verdict = ProbeVerdict("initialize")  # silence: a handshake-era server
            except HTTPStatusError as exc:
                if isinstance(exc, AuthorizationRequired) or not 400 <= exc.status < 500:
                    raise
                verdict = ProbeVerdict("initialize")
            if verdict.action == "adopt":
                assert verdict.version is not None
                logger.debug("%s: server/discover answered; speaking %s", self.name,
                             verdict.version)
                return self._adopt(parse_discover_result(result, verdict.version))
            if verdict.action == "retry":
                assert verdict.version is not None
                version = verdict.version
                continue
            logger.debug("%s: no 2026-07-28 server; initialize", self.name)
            try:
                return await self._handshake(LATEST_HANDSHAKE_VERSION)
            except UnsupportedProtocolVersion as exc:
                # A probe we gave up on may still have made the server modern: -32022
                # naming a version we speak says so; probe once more at it.
                data = exc.data if isinstance(exc.data, dict) else {}
                mutual = [v for v in MODERN_VERSIONS if v in (data.get("supported") or ())]
                if attempt > 0 or not mutual:
                    raise
                version = mutual[-1]
        raise ProtocolError(f"{self.name}: no protocol version in common with the server")
