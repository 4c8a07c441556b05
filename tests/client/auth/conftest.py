"""The fake authorization + MCP server of the client's OAuth tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from .fake_oauth import FakeOAuth, start_fake_oauth


@pytest.fixture
async def fake_oauth() -> AsyncIterator[FakeOAuth]:
    state, runner = await start_fake_oauth()
    try:
        yield state
    finally:
        await runner.cleanup()
