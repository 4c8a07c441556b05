"""The one hook between the HTTP transports and authorization."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

__all__ = ["RequestAuth"]


class RequestAuth(Protocol):
    """What a transport asks of the client's authorization, request by request.

    A transport calls :meth:`headers` before every HTTP request it makes to the MCP server
    (the Streamable HTTP ``POST``/``GET``/``DELETE``, the SSE ``GET`` and its ``POST``s, the
    WebSocket upgrade) and adds what it returns; after a response it calls :meth:`observe`;
    after a 401 or 403 it calls :meth:`refused` and, when that returns ``True``, sends the
    same request again (the hook bounds its own retries: a step-up that keeps failing ends
    in ``False``, never a loop).
    """

    async def headers(self, method: str, url: str) -> dict[str, str]:
        """The ``Authorization`` header (and a ``DPoP`` proof) for this request; ``{}`` when
        the client has no token yet (the first request learns whether one is needed)."""
        ...

    def observe(self, method: str, url: str, status: int,
                headers: Mapping[str, str]) -> None:
        """See a response's headers (a fresh ``DPoP-Nonce``, say)."""
        ...

    async def refused(self, method: str, url: str, status: int,
                      headers: Mapping[str, str]) -> bool:
        """React to a 401/403 (its ``WWW-Authenticate``): discover, register, authorize,
        refresh or step up. ``True``: retry the request; ``False``: give up (the transport
        reports the refusal as it does today)."""
        ...

    async def settle(self) -> bool:
        """Wait for an authorization still under way (a person at the browser outlasting the
        request that started it); whether one was under way and it succeeded, so that what
        gave up on it may try again."""
        ...
