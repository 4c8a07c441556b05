"""The stdio line framer, synchronously: whole lines out of any chunking, never more than the
limit held, and a too-long line reported at once and skipped to its end."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcp_multi.protocol.framing import Line, LineEvent, LineFramer, LineSkipped, LineTooLong


def frame(*chunks: bytes, max_line: int = 10, end: bool = True) -> list[LineEvent]:
    framer = LineFramer(max_line)
    events: list[LineEvent] = []
    for chunk in chunks:
        events.extend(framer.feed(chunk))
        assert framer.buffered <= max_line
    if end:
        events.extend(framer.end())
    return events


def test_lines_keep_their_newline_and_blank_lines_give_nothing() -> None:
    assert frame(b'{"a":1}\n\n  \r\n{"b":2}\n') == [Line(b'{"a":1}\n'), Line(b'{"b":2}\n')]


def test_a_line_split_over_chunks_comes_out_whole() -> None:
    assert frame(b'{"a"', b":", b"1}", b"\n") == [Line(b'{"a":1}\n')]
    assert frame(b"x", b"\ny\n") == [Line(b"x\n"), Line(b"y\n")]


def test_the_last_line_without_newline_comes_at_the_end() -> None:
    assert frame(b"one\ntwo", end=False) == [Line(b"one\n")]
    assert frame(b"one\ntwo") == [Line(b"one\n"), Line(b"two")]
    assert frame(b"one\n  ") == [Line(b"one\n")]


def test_the_limit_counts_the_line_without_its_newline() -> None:
    assert frame(b"0123456789\n") == [Line(b"0123456789\n")]
    assert frame(b"0123456789A\n") == [LineTooLong(11, 10), LineSkipped(11, 10)]


def test_a_too_long_line_is_reported_as_soon_as_it_passes_the_limit() -> None:
    framer = LineFramer(10)
    assert framer.feed(b"12345") == []
    assert framer.feed(b"6789012") == [LineTooLong(12, 10)]
    assert framer.buffered == 0
    assert framer.feed(b"x" * 1000) == []  # counted, not kept
    assert framer.buffered == 0
    assert framer.feed(b"yy\nok\n") == [LineSkipped(1014, 10), Line(b"ok\n")]


def test_a_too_long_line_cut_by_the_end_of_the_stream() -> None:
    assert frame(b"z" * 30) == [LineTooLong(30, 10), LineSkipped(30, 10)]


def test_the_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_line"):
        LineFramer(0)


lines = st.lists(st.binary(max_size=25).filter(lambda b: b"\n" not in b), max_size=12)


@given(lines, st.lists(st.integers(1, 40), max_size=30), st.booleans())
def test_any_chunking_gives_the_events_of_the_whole(
        parts: list[bytes], cuts: list[int], final_newline: bool) -> None:
    stream = b"\n".join(parts) + (b"\n" if final_newline and parts else b"")
    chunks, at = [], 0
    for cut in cuts:
        chunks.append(stream[at:at + cut])
        at += cut
    chunks.append(stream[at:])
    events = frame(*chunks, max_line=12)
    # How much of a too-long line had come when it was reported depends on the chunks.
    assert all(e.seen > 12 for e in events if isinstance(e, LineTooLong))
    assert [_same_for_any_chunking(e) for e in events] == [
        _same_for_any_chunking(e) for e in frame(stream, max_line=12)]


def _same_for_any_chunking(event: LineEvent) -> LineEvent:
    return LineTooLong(0, event.limit) if isinstance(event, LineTooLong) else event


@given(lines)
def test_each_line_is_kept_or_reported_by_its_length(parts: list[bytes]) -> None:
    expected: list[LineEvent] = []
    for part in parts:
        if len(part) > 12:
            expected += [LineTooLong(len(part), 12), LineSkipped(len(part), 12)]
        elif part.strip():
            expected.append(Line(part + b"\n"))
    assert frame(b"".join(p + b"\n" for p in parts), max_line=12) == expected
