"""The client connection's state machine: every allowed move, every refused one."""

from __future__ import annotations

import pytest

from mcp_multi.protocol.client_state import (
    TRANSITIONS,
    ClientEvent,
    ClientLifecycle,
    ClientState,
)
from mcp_multi.protocol.errors import ProtocolError

S, E = ClientState, ClientEvent


def at(state: ClientState) -> ClientLifecycle:
    """A lifecycle brought to ``state`` by allowed events only."""
    path = {S.NEW: [], S.OPENING: [E.CONNECT], S.OPEN: [E.CONNECT, E.OPENED],
            S.RENEWING: [E.CONNECT, E.OPENED, E.EXPIRED], S.CLOSED: [E.CLOSE]}
    lifecycle = ClientLifecycle()
    for event in path[state]:
        lifecycle.process(event)
    assert lifecycle.state is state
    return lifecycle


def test_a_connection_lives_new_opening_open_renewing_open_closed() -> None:
    lifecycle = ClientLifecycle()
    assert (lifecycle.state, lifecycle.reason) == (S.NEW, None)
    steps = [(E.CONNECT, S.OPENING), (E.OPENED, S.OPEN), (E.EXPIRED, S.RENEWING),
             (E.EXPIRED, S.RENEWING), (E.OPENED, S.OPEN), (E.CLOSE, S.CLOSED)]
    for event, state in steps:
        assert lifecycle.process(event, "gone") is state
    assert lifecycle.closed and lifecycle.reason == "gone"


@pytest.mark.parametrize("state", list(ClientState))
def test_close_is_allowed_from_every_state_and_keeps_the_first_reason(
        state: ClientState) -> None:
    lifecycle = at(state)
    first = lifecycle.reason
    assert lifecycle.close("server gone") is (state is not S.CLOSED)
    assert lifecycle.close("closed by the client") is False
    assert lifecycle.closed
    assert lifecycle.reason == (first or "server gone")


REFUSED = [(state, event) for state in ClientState for event in ClientEvent
           if event not in TRANSITIONS[state]]


@pytest.mark.parametrize(("state", "event"), REFUSED)
def test_every_other_move_is_refused_and_changes_nothing(state: ClientState,
                                                         event: ClientEvent) -> None:
    lifecycle = at(state)
    with pytest.raises(ProtocolError, match=f"'{event.value}' is not allowed on a connection "
                                            f"that is {state.value}"):
        lifecycle.process(event)
    assert lifecycle.state is state


def test_the_table_names_every_state_and_only_known_ones() -> None:
    assert set(TRANSITIONS) == set(ClientState)
    assert all(isinstance(target, ClientState)
               for moves in TRANSITIONS.values() for target in moves.values())
    assert set(TRANSITIONS[S.CLOSED].values()) == {S.CLOSED}  # nothing leaves CLOSED
    assert len(REFUSED) == 10
