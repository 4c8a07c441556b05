"""The server session's lifecycle table, event by event (no event loop, no sockets)."""

from __future__ import annotations

import itertools

import pytest

from mcp_multi.protocol.errors import (
    INVALID_REQUEST,
    UNSUPPORTED_PROTOCOL_VERSION,
    JSONRPCError,
)
from mcp_multi.protocol.server_state import (
    STEADY_HANDSHAKE,
    STEADY_MODERN,
    ServerLifecycle,
    SessionEvent,
    SessionState,
)

S, E = SessionState, SessionEvent

# Written out by hand from the specification, not read from the module: every legal step.
LEGAL = {
    (S.NEW, E.HANDSHAKE_REQUEST): S.AWAITING_INITIALIZE,
    (S.NEW, E.MODERN_REQUEST): S.MODERN,
    (S.NEW, E.CLOSE): S.CLOSED,
    (S.AWAITING_INITIALIZE, E.HANDSHAKE_REQUEST): S.AWAITING_INITIALIZE,
    (S.AWAITING_INITIALIZE, E.INITIALIZE): S.INITIALIZING,
    (S.AWAITING_INITIALIZE, E.PING): S.AWAITING_INITIALIZE,
    (S.AWAITING_INITIALIZE, E.CLOSE): S.CLOSED,
    (S.INITIALIZING, E.HANDSHAKE_REQUEST): S.INITIALIZING,
    (S.INITIALIZING, E.INITIALIZED): S.READY,
    (S.INITIALIZING, E.PING): S.INITIALIZING,
    (S.INITIALIZING, E.REQUEST): S.INITIALIZING,
    (S.INITIALIZING, E.CLOSE): S.CLOSED,
    (S.READY, E.HANDSHAKE_REQUEST): S.READY,
    (S.READY, E.PING): S.READY,
    (S.READY, E.REQUEST): S.READY,
    (S.READY, E.CLOSE): S.CLOSED,
    (S.MODERN, E.MODERN_REQUEST): S.MODERN,
    (S.MODERN, E.CLOSE): S.CLOSED,
    (S.CLOSED, E.CLOSE): S.CLOSED,
}
ILLEGAL = [pair for pair in itertools.product(S, E) if pair not in LEGAL]


def machine(state: SessionState, version: str | None = "2025-06-18") -> ServerLifecycle:
    lifecycle = ServerLifecycle(state)
    lifecycle.protocol_version = version
    return lifecycle


@pytest.mark.parametrize("pair", list(LEGAL), ids=lambda p: f"{p[0].name}+{p[1].name}")
def test_legal_events_move_the_session(pair: tuple[SessionState, SessionEvent]) -> None:
    state, event = pair
    lifecycle = machine(state)
    assert lifecycle.process(event, protocol_version="2025-11-25") is LEGAL[pair]
    assert lifecycle.state is LEGAL[pair]


@pytest.mark.parametrize("pair", ILLEGAL, ids=lambda p: f"{p[0].name}+{p[1].name}")
def test_every_illegal_event_is_refused_and_changes_nothing(
        pair: tuple[SessionState, SessionEvent]) -> None:
    state, event = pair
    lifecycle = machine(state)
    with pytest.raises(JSONRPCError) as info:
        lifecycle.process(event, "some/method", protocol_version="2025-11-25")
    assert info.value.code in (INVALID_REQUEST, UNSUPPORTED_PROTOCOL_VERSION)
    assert info.value.message  # a sentence, never empty
    assert lifecycle.state is state and lifecycle.protocol_version == "2025-06-18"


def test_the_steady_states_are_those_a_request_leaves_alone() -> None:
    # The dispatcher skips a request's events in these states: they must be exactly the
    # states that the hand-written table keeps through every event of such a request.
    assert STEADY_HANDSHAKE == {state for state in S if all(
        LEGAL.get((state, event)) is state
        for event in (E.HANDSHAKE_REQUEST, E.PING, E.REQUEST))} == {S.INITIALIZING, S.READY}
    assert {S.MODERN} == STEADY_MODERN


def test_initialized_first_does_not_open_the_gate() -> None:
    """Defect 1: a client that sends notifications/initialized before initialize is still
    refused every request but initialize and ping."""
    lifecycle = ServerLifecycle()
    with pytest.raises(JSONRPCError):
        lifecycle.process(E.INITIALIZED, "notifications/initialized")
    assert lifecycle.process(E.HANDSHAKE_REQUEST) is S.AWAITING_INITIALIZE
    with pytest.raises(JSONRPCError):
        lifecycle.process(E.INITIALIZED, "notifications/initialized")
    with pytest.raises(JSONRPCError) as info:
        lifecycle.process(E.REQUEST, "tools/call")
    assert info.value.code == INVALID_REQUEST
    assert info.value.message == ("Invalid Request: tools/call before initialize; "
                                  "send initialize first")
    assert lifecycle.process(E.PING) is S.AWAITING_INITIALIZE
    assert lifecycle.era == "handshake"  # a refused request has chosen the era all the same


def test_the_handshake_settles_the_version_and_era() -> None:
    lifecycle = ServerLifecycle()
    assert lifecycle.era is None and lifecycle.protocol_version is None
    lifecycle.process(E.HANDSHAKE_REQUEST, "initialize")
    lifecycle.process(E.INITIALIZE, "initialize", protocol_version="2025-03-26")
    assert (lifecycle.era, lifecycle.protocol_version) == ("handshake", "2025-03-26")
    with pytest.raises(JSONRPCError, match="already initialized"):
        lifecycle.process(E.INITIALIZE, "initialize", protocol_version="2025-11-25")
    assert lifecycle.protocol_version == "2025-03-26"
    lifecycle.process(E.INITIALIZED)
    assert lifecycle.state is S.READY
    with pytest.raises(JSONRPCError, match="handshake era"):
        lifecycle.process(E.MODERN_REQUEST, "tools/list")
    lifecycle.process(E.CLOSE)
    assert lifecycle.era is None and lifecycle.protocol_version == "2025-03-26"


def test_a_modern_session_refuses_initialize_naming_what_it_serves() -> None:
    lifecycle = ServerLifecycle()
    lifecycle.process(E.MODERN_REQUEST, "server/discover")
    assert lifecycle.era == "modern"
    with pytest.raises(JSONRPCError) as info:
        lifecycle.process(E.INITIALIZE, "initialize", protocol_version="2025-11-25")
    assert info.value.code == UNSUPPORTED_PROTOCOL_VERSION
    assert info.value.data == {"supported": ["2026-07-28"], "requested": "2025-11-25"}


def test_initialize_needs_the_negotiated_version() -> None:
    with pytest.raises(ValueError):
        ServerLifecycle(S.AWAITING_INITIALIZE).process(E.INITIALIZE)
