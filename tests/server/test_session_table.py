"""The session table's admission rule, synchronously (the endpoints' use of it is proved over
sockets in tests/attack/test_sessions.py)."""

from __future__ import annotations

import pytest

from mcp_multi.server.session import ServerSession
from mcp_multi.server.session_table import SessionTable, default_share


class Seated:
    """A session seated in ``table`` whose busy flag and evictions the test controls."""

    def __init__(self, table: SessionTable[ServerSession], address: str = "10.0.0.1", *,
                 settled: bool = True) -> None:
        self.session = ServerSession("test")
        self.busy = False
        self.evicted: list[str] = []
        assert table.admit(address) is None
        table.add(self.session, address, busy=lambda: self.busy,
                  evict=self.evicted.append, settled=lambda: settled)


def table(limit: int, per_client: int | None = None, *, idle: float = 600.0,
          grace: float = 10.0) -> SessionTable[ServerSession]:
    return SessionTable("test", limit, per_client, idle_timeout=idle, handshake_grace=grace)


@pytest.mark.parametrize("limit, share", [(1, 1), (2, 2), (4, 3), (20, 15), (1000, 750)])
def test_default_share_leaves_room_for_others(limit: int, share: int) -> None:
    assert default_share(limit) == share
    assert table(limit).per_client == share


def test_full_table_evicts_the_least_recently_used_idle_session() -> None:
    t = table(3, 3)
    a, b, c = Seated(t), Seated(t), Seated(t)
    t.touch(a.session.id)  # b is the least recently used now
    assert t.admit("10.0.0.2") is None
    assert b.evicted and not a.evicted and not c.evicted
    assert b.session.id not in t and len(t) == 2 and t.evicted == 1


def test_busy_sessions_keep_their_seats() -> None:
    t = table(2, 2)
    a, b = Seated(t), Seated(t)
    a.busy = True
    assert t.admit("10.0.0.2") is None and b.evicted and not a.evicted
    Seated(t, "10.0.0.2").busy = True
    refusal = t.admit("10.0.0.3")
    assert refusal is not None and "busy" in refusal and len(t) == 2


def test_an_address_past_its_share_is_refused_and_others_are_not() -> None:
    t = table(10, 2)
    Seated(t), Seated(t)
    refusal = t.admit("10.0.0.1")
    assert refusal is not None and "share" in refusal
    assert t.admit("10.0.0.2") is None
    assert t.held_by("10.0.0.1") == 2 and t.held_by("10.0.0.2") == 0


def test_own_half_open_sessions_give_way_to_a_newcomer_of_that_address() -> None:
    t = table(10, 2, grace=0.0)
    settled, half_open = Seated(t), Seated(t, settled=False)
    assert t.admit("10.0.0.1") is None
    assert half_open.evicted == ["handshake never finished"] and not settled.evicted


def test_idle_sessions_past_the_timeout_are_ended_when_the_table_is_full() -> None:
    t = table(2, 2, idle=0.0)
    a, b = Seated(t), Seated(t, "10.0.0.2")
    assert t.admit("10.0.0.3") is None
    assert a.evicted == ["idle"] and b.evicted == ["idle"] and not t


def test_remove_frees_the_address_share() -> None:
    t = table(4, 1)
    a = Seated(t)
    assert t.admit("10.0.0.1") is not None
    assert t.remove(a.session.id) is a.session and t.remove(a.session.id) is None
    assert t.admit("10.0.0.1") is None and not a.evicted
