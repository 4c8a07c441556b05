"""The frames deliveries travel in, and the checks of what becomes part of a Redis key."""

from __future__ import annotations

import pytest

from mcp_multi.server.store import Delivery
from mcp_multi.server.store.wire import (
    check_key,
    check_session_id,
    decode_delivery,
    encode_delivery,
    printable,
    public_url,
)


def test_a_delivery_round_trips_with_its_sender() -> None:
    body = b'{"jsonrpc":"2.0","id":1,"result":{"text":"a\\nb"}}\n'
    delivery = Delivery("9f2c", "message", body)
    frame = encode_delivery(delivery, "0123456789ab")
    assert frame == b"message 9f2c 0123456789ab\n" + body
    assert decode_delivery(frame) == (delivery, "0123456789ab")
    assert decode_delivery(b"close s 0123456789ab\n") == (Delivery("s", "close", b""),
                                                          "0123456789ab")


@pytest.mark.parametrize("frame", [
    b"", b"message s1 0123456789ab", b"message s1\n", b"message  s1 0123456789ab\n",
    b"message s1 0123456789AB\n", b"MESSAGE s1 0123456789ab\n", b"message s:1 0123456789ab\n",
    b"message s1 0123456789ab \n", b"message " + b"s" * 300 + b" 0123456789ab\n",
    b"m\xffssage s1 0123456789ab\n", b"x" * 1000 + b"\n",
])
def test_malformed_frames_are_refused(frame: bytes) -> None:
    with pytest.raises(ValueError):
        decode_delivery(frame)


def test_nothing_unframeable_is_sent() -> None:
    with pytest.raises(ValueError):
        encode_delivery(Delivery("a b", "message", b""), "0123456789ab")
    with pytest.raises(ValueError):
        encode_delivery(Delivery("s1", "two words", b""), "0123456789ab")


def test_ids_that_could_forge_another_key_are_refused() -> None:
    assert check_session_id("a1b2") == "a1b2"
    assert check_key("0") == "0"
    for bad in ("", "a:b", "a b", "a\n", "é", "x" * 257):
        with pytest.raises(ValueError):
            check_session_id(bad)
    for bad in ("", "0:n", "a b", "x" * 65):
        with pytest.raises(ValueError):
            check_key(bad)


def test_printable_is_one_bounded_line() -> None:
    assert printable(b"a\nb\x00") == "a\\nb\\x00"
    assert printable(b"x" * 100, 10) == "x" * 10 + "..."
    assert printable("a\nb") == "a\\nb"


def test_public_url_masks_the_password() -> None:
    assert public_url("redis://h:1/0") == "redis://h:1/0"
    assert public_url("redis://:pw@h:1/0") == "redis://:***@h:1/0"
    assert public_url("rediss://user:pw@h:1/0") == "rediss://user:***@h:1/0"
    assert public_url("unix://:pw@/run/redis.sock?db=1") == "unix://:***@/run/redis.sock?db=1"
