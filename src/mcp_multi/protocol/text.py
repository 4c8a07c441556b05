"""Text a peer sent, made safe to show: control characters escaped, length bounded.

Whatever a server (or a client) sends is hostile until shown otherwise: a tool name, a
description or an error message may hold ESC sequences that retitle, clear or recolour a
terminal, bidirectional overrides that reorder what a person reads, or run to megabytes.
:func:`printable` escapes every character that is not printable as itself (as ``repr`` would,
without the quotes), :func:`clip` cuts a long text and says how much it cut, and
:func:`for_display` does both. The CLI shows peer text only through them.
"""

from __future__ import annotations

__all__ = ["DISPLAY_LIMIT", "clip", "for_display", "printable"]

# Characters of one peer-supplied text shown in one line of output, by default.
DISPLAY_LIMIT = 2000


def _escape(ch: str) -> str:
    code = ord(ch)
    if ch == "\n":
        return "\\n"
    if ch == "\r":
        return "\\r"
    if ch == "\t":
        return "\\t"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every character that is not printable as itself escaped.

    Escaped are the C0 and C1 controls (ESC among them), DEL, format characters such as the
    bidirectional overrides, line and paragraph separators, surrogates and unassigned code
    points; a space stays a space. With ``keep_newlines``, ``\\n`` stays a line break (for
    multi-line text that is shown as lines).
    """
    if text.isprintable():
        return text
    return "".join(
        ch if ch.isprintable() or (keep_newlines and ch == "\n") else _escape(ch)
        for ch in text
    )


def clip(text: str, limit: int = DISPLAY_LIMIT) -> str:
    """``text`` cut to about ``limit`` characters, saying how many were cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters]"


def for_display(text: str, limit: int = DISPLAY_LIMIT, *, keep_newlines: bool = False) -> str:
    """``text`` clipped to ``limit`` characters, then escaped: safe on one terminal line."""
    return printable(clip(text, limit), keep_newlines=keep_newlines)
