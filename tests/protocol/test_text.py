"""Peer text made safe to show."""

from mcp_multi.protocol.text import clip, for_display, printable


def test_printable_escapes_terminal_controls() -> None:
    hostile = "ok\x1b]0;owned\x07\x1b[2J\u202etxt\x9b31m"
    shown = printable(hostile)
    assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown
    assert "\x9b" not in shown
    assert shown == "ok\\x1b]0;owned\\x07\\x1b[2J\\u202etxt\\x9b31m"


def test_printable_keeps_plain_text_and_optionally_newlines() -> None:
    assert printable("héllo wörld 2+2") == "héllo wörld 2+2"
    assert printable("a\nb") == "a\\nb"
    assert printable("a\nb\x1b", keep_newlines=True) == "a\nb\\x1b"


def test_clip_says_how_much_it_cut() -> None:
    assert clip("abc", 5) == "abc"
    assert clip("x" * 100_000, 10) == "x" * 10 + "… [99990 more characters]"


def test_for_display_clips_before_escaping() -> None:
    shown = for_display("\x1b" * 50, 4)
    assert shown.startswith("\\x1b" * 4) and shown.endswith("[46 more characters]")
