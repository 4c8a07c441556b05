"""The event-stream encoder, the WHATWG parser and the endpoint rule, synchronously: no
loop, no sockets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcp_multi.protocol.errors import ProtocolError
from mcp_multi.protocol.sse import (
    KEEPALIVE,
    SSEEvent,
    SSEParser,
    encode_comment,
    encode_event,
    resolve_endpoint,
)


def parse(*chunks: bytes | str) -> list[SSEEvent]:
    parser = SSEParser()
    events: list[SSEEvent] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    return events


def test_endpoint_then_message() -> None:
    stream = (b"event: endpoint\r\ndata: /message?sessionId=abc\r\n\r\n"
              b'event: message\r\ndata: {"jsonrpc":"2.0"}\r\n\r\n')
    assert parse(stream) == [
        SSEEvent("endpoint", "/message?sessionId=abc"),
        SSEEvent("message", '{"jsonrpc":"2.0"}'),
    ]


def test_type_defaults_to_message_and_resets_after_each_event() -> None:
    assert parse("event: ping\ndata: 1\n\ndata: 2\n\n") == [
        SSEEvent("ping", "1"), SSEEvent("message", "2")]


def test_multi_line_data_is_joined_with_lf() -> None:
    assert parse("data: first\ndata: second\ndata\ndata:third\n\n") == [
        SSEEvent("message", "first\nsecond\n\nthird")]


def test_only_one_space_after_the_colon_is_dropped() -> None:
    assert parse("data:  two spaces\n\n") == [SSEEvent("message", " two spaces")]


def test_comments_and_unknown_fields_are_ignored() -> None:
    assert parse(": keepalive\nfoo: bar\n:\ndata: x\n: inside\n\n") == [SSEEvent("message", "x")]


def test_empty_data_dispatches_nothing() -> None:
    assert parse("event: endpoint\n\n\n\nevent: x\nid: 3\n\n") == []


def test_incomplete_event_at_end_is_not_dispatched() -> None:
    assert parse("data: partial\n") == []


@pytest.mark.parametrize("eol", ["\n", "\r", "\r\n"])
def test_every_line_ending(eol: str) -> None:
    text = f"event: a{eol}data: 1{eol}data: 2{eol}{eol}data: 3{eol}{eol}"
    assert parse(text) == [SSEEvent("a", "1\n2"), SSEEvent("message", "3")]


def test_crlf_split_across_chunks_counts_once() -> None:
    # A CR ending one chunk and the LF starting the next are one line ending, not two
    # (two would dispatch the event early, with only the first data line).
    assert parse("data: a\r", "\ndata: b\r\n\r\n") == [SSEEvent("message", "a\nb")]


def test_cr_then_data_in_next_chunk() -> None:
    assert parse("data: a\r", "data: b\r", "\r") == [SSEEvent("message", "a\nb")]


def test_utf8_split_across_chunks_decodes_whole() -> None:
    raw = "data: héllo ✓\n\n".encode()
    split = raw.index("✓".encode()) + 1
    assert parse(raw[:split], raw[split:]) == [SSEEvent("message", "héllo ✓")]


def test_leading_bom_is_dropped() -> None:
    assert parse(b"\xef\xbb\xbfdata: x\n\n") == [SSEEvent("message", "x")]
    assert parse(b"\xef\xbb", b"\xbfdata: x\n\n") == [SSEEvent("message", "x")]


def test_bom_only_at_stream_start() -> None:
    events = parse("data: x\n\n", "\ufeffdata: y\n\n")
    assert events[0] == SSEEvent("message", "x")
    assert len(events) == 1  # "\ufeffdata" is an unknown field name later in the stream


def test_last_event_id_persists_and_nul_is_ignored() -> None:
    parser = SSEParser()
    events = parser.feed("id: 7\ndata: a\n\ndata: b\n\nid: bad\x00id\ndata: c\n\nid\ndata: d\n\n")
    assert [e.id for e in events] == ["7", "7", "7", ""]
    assert parser.last_event_id == ""


def test_retry_only_with_ascii_digits() -> None:
    parser = SSEParser()
    parser.feed("retry: 1500\n")
    assert parser.retry == 1500
    parser.feed("retry: 12a\nretry: -5\nretry: ١٢\n")
    assert parser.retry == 1500


def test_field_without_colon_has_empty_value() -> None:
    assert parse("data\n\n") == [SSEEvent("message", "")]


def test_buffered_counts_the_pending_event() -> None:
    parser = SSEParser()
    parser.feed("data: 12345\ndata: 678")
    assert parser.buffered == len("12345") + len("data: 678")


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",),
                                                 blacklist_characters="\r\n\x00"), max_size=20),
                min_size=1, max_size=5),
       st.sampled_from(["\n", "\r", "\r\n"]),
       st.integers(min_value=1, max_value=7))
def test_any_chunking_gives_the_same_events(lines: list[str], eol: str, size: int) -> None:
    text = "".join(f"data: {line}{eol}" for line in lines) + eol
    data = text.encode()
    whole = parse(data)
    pieces = [data[i:i + size] for i in range(0, len(data), size)]
    assert parse(*pieces) == whole == [SSEEvent("message", "\n".join(lines))]


def test_endpoint_relative_to_stream() -> None:
    assert resolve_endpoint("http://127.0.0.1:8080/sse", "/message?sessionId=a") == \
        "http://127.0.0.1:8080/message?sessionId=a"
    assert resolve_endpoint("http://h:1/mcp/sse", "messages/?session_id=b") == \
        "http://h:1/mcp/messages/?session_id=b"


def test_endpoint_absolute_same_origin_is_accepted() -> None:
    assert resolve_endpoint("http://localhost/sse", " http://LOCALHOST:80/m?x=1 ") == \
        "http://LOCALHOST:80/m?x=1"


@pytest.mark.parametrize("endpoint", [
    "http://evil.example/message",
    "https://127.0.0.1:8080/message",
    "http://127.0.0.1:8081/message",
    "//evil.example/message",
    "",
])
def test_endpoint_on_another_origin_is_refused(endpoint: str) -> None:
    with pytest.raises(ProtocolError):
        resolve_endpoint("http://127.0.0.1:8080/sse", endpoint)


# ------------------------------------------------------------------ encoder


def test_encoded_event_fields() -> None:
    assert encode_event(b'{"a":1}', event="message", id="3-1") == \
        b'event: message\nid: 3-1\ndata: {"a":1}\n\n'
    assert encode_event(b"", id="0-4", retry=1000) == b"id: 0-4\nretry: 1000\ndata: \n\n"
    assert KEEPALIVE == b": keepalive\n\n" and encode_comment("a\nb") == b": a\n: b\n\n"
    assert parse(KEEPALIVE + encode_comment("")) == []


@pytest.mark.parametrize("fields", [{"id": "a\nb"}, {"event": "x\ry"}, {"id": "a\x00"},
                                    {"retry": -1}])
def test_encoder_refuses_what_would_break_the_stream(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        encode_event(b"x", **fields)  # type: ignore[arg-type]


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
               max_size=40),
       st.text(alphabet=st.characters(blacklist_categories=("Cs",),
                                      blacklist_characters="\r\n\x00"), min_size=1, max_size=10))
def test_encoded_events_parse_back(data: str, event_id: str) -> None:
    """Whatever the data holds (line breaks of every kind included), a reader gets it back,
    line breaks normalised to LF as the WHATWG rules make them."""
    expected = "\n".join(data.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    parsed = parse(encode_event(data, event="message", id=event_id) + KEEPALIVE)
    assert parsed == [SSEEvent("message", expected, event_id)]
