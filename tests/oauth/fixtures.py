"""Fixtures of the test authorization server, registered for every test in tests/conftest.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .authorization_server import OAuthServer

StartOAuthServer = Callable[..., OAuthServer]

__all__ = ["StartOAuthServer", "oauth_server", "start_oauth_server"]


@pytest.fixture
def start_oauth_server() -> Iterator[StartOAuthServer]:
    """Start any number of authorization servers (keyword settings of ``OAuthServer``)."""
    running: list[OAuthServer] = []

    def start(**settings: Any) -> OAuthServer:
        server = OAuthServer(**settings).start()
        running.append(server)
        return server

    yield start
    for server in running:
        server.stop()


@pytest.fixture
def oauth_server(start_oauth_server: StartOAuthServer) -> OAuthServer:
    """One authorization server with the default settings."""
    return start_oauth_server()
