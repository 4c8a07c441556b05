"""A person slower at the browser than the client's timeout still gets connected.

The first request's 401 starts the authorization; the opening of the connection gives up at
its timeout while the person is still at the browser. The authorization goes on (it is not
the request's), and once it has its token the client opens the connection again, without a
second authorization, over every transport.
"""

from __future__ import annotations

import asyncio

import pytest

from mcp_multi.client.auth.agent import AuthorizationFailed, HeadlessAgent
from mcp_multi.client.auth.oauth import MemoryTokenStore, OAuthAuth
from mcp_multi.client.multi import MultiServerMCPClient
from mcp_multi.client.targets import ServerSpec
from mcp_multi.protocol.errors import RequestTimeout

from .conftest import TRANSPORTS, StartProtected

TIMEOUT = 1.0
PERSON = 2.5  # seconds the person takes at the browser: longer than the whole opening


class SlowPerson(HeadlessAgent):
    """The headless agent, after the person has thought it over."""

    async def authorize(self, url: str) -> dict[str, str]:
        await asyncio.sleep(PERSON)
        return await super().authorize(url)


KINDS = {"websocket": "websocket", "sse": "sse", "streamable_http": "http"}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_opening_waits_for_the_person(start_protected: StartProtected,
                                            transport: str) -> None:
    protected = await start_protected()
    url = protected.url(transport)
    auth = OAuthAuth(url, store=MemoryTokenStore(), agent=SlowPerson())
    try:
        async with MultiServerMCPClient(timeout=TIMEOUT) as client:
            await client.add_spec(ServerSpec("s", KINDS[transport], url), auth=auth)
            result = await client.call("s", "echo", {"message": "late"})
            assert result["content"][0]["text"] == "Echo: late"
    finally:
        await auth.close()
    authorizations = [e for e in protected.auth.events if e["endpoint"] == "authorize"]
    assert len(authorizations) == 1


class NoAnswer(HeadlessAgent):
    """A browser that never comes back, as the agent reports it at the end of its wait."""

    async def authorize(self, url: str) -> dict[str, str]:
        await asyncio.sleep(PERSON)
        raise AuthorizationFailed(f"no answer from the browser within {PERSON} s")


async def test_a_person_who_never_finishes_is_a_timeout(start_protected: StartProtected
                                                         ) -> None:
    """The wait for the person ends where the agent's own limit does; the timeout stands."""
    protected = await start_protected()
    url = protected.url("streamable_http")
    auth = OAuthAuth(url, store=MemoryTokenStore(), agent=NoAnswer())
    try:
        async with MultiServerMCPClient(timeout=TIMEOUT) as client:
            with pytest.raises(RequestTimeout):
                await client.add_spec(ServerSpec("s", "http", url), auth=auth)
    finally:
        await auth.close()
