"""Server-Sent Events: the one encoder every server endpoint writes with, and a pure parser
that follows the WHATWG HTML "event stream" rules.

Encoding: :func:`encode_event` writes one event (``event``, ``id``, ``retry`` fields, then the
data, one ``data:`` line per line of it, then the blank line that dispatches it);
:func:`encode_comment` writes a comment line, which every reader ignores: :data:`KEEPALIVE` is
the one sent after :data:`KEEPALIVE_SECONDS` of silence so that proxies and clients do not take
a quiet stream for a dead one. :data:`RESPONSE_HEADERS` are the headers of every event-stream
response (no caching, no proxy buffering).

Theory of operation: a transport feeds :meth:`SSEParser.feed` whatever bytes the network
gave it, in chunks of any size, and gets back the events those bytes completed. The parser
keeps the partial line and the partial event between calls, so a line ending split across
two chunks (a ``CR`` at the end of one, the ``LF`` at the start of the next) counts once and a
multi-byte UTF-8 character split across chunks decodes whole.

The rules, from https://html.spec.whatwg.org/multipage/server-sent-events.html:

- the stream is UTF-8; one leading byte-order mark is dropped;
- lines end in ``CRLF``, ``LF`` or ``CR``;
- an empty line dispatches the event being built; a line starting with ``:`` is a comment;
- ``field: value`` (one space after the colon is dropped) or a bare ``field`` (empty value);
- ``data`` appends the value and a ``LF`` to the data buffer; ``event`` sets the type;
  ``id`` sets the last event id unless the value holds ``NUL``; ``retry`` sets the
  reconnection time when the value is all ASCII digits; any other field is ignored;
- on dispatch an empty data buffer dispatches nothing; the data loses its final ``LF``; the
  type defaults to ``message``; the last event id persists across events;
- an event not finished by an empty line when the stream ends is discarded.

:func:`resolve_endpoint` is the rule of the legacy HTTP+SSE transport (protocol 2024-11-05):
the ``endpoint`` event names where to POST, relative to the stream's URL, on the same origin.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from .errors import ProtocolError
from .wire import SSE_TYPE

__all__ = [
    "KEEPALIVE",
    "KEEPALIVE_SECONDS",
    "RESPONSE_HEADERS",
    "SSEEvent",
    "SSEParser",
    "encode_comment",
    "encode_event",
    "resolve_endpoint",
]

_EOL = re.compile(r"\r\n|\r|\n")
_EOL_BYTES = re.compile(rb"\r\n|\r|\n")

# Seconds of silence after which a stream gets a keep-alive comment.
KEEPALIVE_SECONDS = 15.0
# Headers of every text/event-stream response: never cached, never held back by a proxy.
RESPONSE_HEADERS = {
    "Content-Type": SSE_TYPE,
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",
}


def _field(name: str, value: str) -> bytes:
    if "\r" in value or "\n" in value or "\x00" in value:
        raise ValueError(f"SSE {name} must be one line without NUL: {value!r}")
    return f"{name}: {value}\n".encode()


def encode_event(data: bytes | str, *, event: str | None = None, id: str | None = None,
                 retry: int | None = None) -> bytes:
    """One event, ready for the wire.

    Args:
        data: the payload (a JSON-RPC message, usually); each of its lines becomes a
            ``data:`` line, so a reader joins them back into the same text. Empty data
            still writes one empty ``data:`` line (a priming event has nothing else).
        event: the event type; omitted, readers take ``message``.
        id: the event id a client sends back as ``Last-Event-ID``.
        retry: the reconnection delay to advise, in milliseconds.

    Raises:
        ValueError: ``event`` or ``id`` spans lines or holds ``NUL``, or ``retry`` < 0.
    """
    raw = data.encode() if isinstance(data, str) else data
    head = b""
    if event is not None:
        head += _field("event", event)
    if id is not None:
        head += _field("id", id)
    if retry is not None:
        if retry < 0:
            raise ValueError(f"SSE retry must not be negative: {retry}")
        head += b"retry: %d\n" % retry
    if b"\n" in raw or b"\r" in raw:
        raw = b"\ndata: ".join(_EOL_BYTES.split(raw))
    return head + b"data: " + raw + b"\n\n"


def encode_comment(text: str = "") -> bytes:
    """A comment line (and the blank line that flushes it through line-buffered readers)."""
    return b"".join(b":" + (b" " + line.encode() if line else b"") + b"\n"
                    for line in _EOL.split(text)) + b"\n"


# The comment a quiet stream gets every KEEPALIVE_SECONDS.
KEEPALIVE = encode_comment("keepalive")
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event.

    Attributes:
        event: the event type (``message`` unless the stream named another).
        data: the data lines joined with ``LF``.
        id: the stream's last event id when the event was dispatched (``""`` if none).
    """

    event: str
    data: str
    id: str = ""


class SSEParser:
    """Incremental event-stream parser: bytes in, :class:`SSEEvent` out.

    Attributes:
        last_event_id: the last ``id`` seen, to send as ``Last-Event-ID`` on reconnection.
        retry: the reconnection time in milliseconds the server asked for, if any.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._started = False
        self._skip_lf = False
        self._data: list[str] = []
        self._event_type = ""
        self.last_event_id = ""
        self.retry: int | None = None

    @property
    def buffered(self) -> int:
        """Characters held for the event being built (to bound memory against a bad server)."""
        return len(self._buffer) + sum(len(part) for part in self._data)

    def feed(self, chunk: bytes | str) -> list[SSEEvent]:
        """Parse the next chunk of the stream; return the events it completed, in order."""
        text = self._decoder.decode(chunk) if isinstance(chunk, bytes) else chunk
        if not text:
            return []
        if self._skip_lf:
            # The previous chunk ended in CR: an LF starting this one belongs to that CRLF.
            self._skip_lf = False
            if text[0] == "\n":
                text = text[1:]
        if not self._started:
            self._started = True
            if text.startswith("\ufeff"):
                text = text[1:]
        buffer = self._buffer + text if self._buffer else text
        events: list[SSEEvent] = []
        pos = 0
        end = len(buffer)
        while pos < end:
            match = _EOL.search(buffer, pos)
            if match is None:
                break
            if match.end() == end and match.group() == "\r":
                self._skip_lf = True
            event = self._process_line(buffer[pos:match.start()])
            if event is not None:
                events.append(event)
            pos = match.end()
        self._buffer = buffer[pos:]
        return events

    def _process_line(self, line: str) -> SSEEvent | None:
        if not line:
            return self._dispatch()
        if line[0] == ":":
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event_type = value
        elif name == "id":
            if "\x00" not in value:
                self.last_event_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value)
        return None

    def _dispatch(self) -> SSEEvent | None:
        data, event_type = self._data, self._event_type
        self._data, self._event_type = [], ""
        if not data:
            return None
        return SSEEvent(event_type or "message", "\n".join(data), self.last_event_id)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        raise ProtocolError(f"bad port in URL {url!r}") from None
    return scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme)


def resolve_endpoint(stream_url: str, endpoint: str) -> str:
    """The absolute URL to POST messages to, from the data of an ``endpoint`` event.

    Args:
        stream_url: the URL the SSE stream was opened at.
        endpoint: the event's data, usually a path such as ``/message?sessionId=abc``.

    Raises:
        ProtocolError: the endpoint is empty or on another origin than the stream (a server
            must not send our messages elsewhere).
    """
    endpoint = endpoint.strip()
    if not endpoint:
        raise ProtocolError("the SSE endpoint event is empty")
    url = urljoin(stream_url, endpoint)
    if _origin(url) != _origin(stream_url):
        raise ProtocolError(f"refusing SSE endpoint {url!r}: not the origin of {stream_url!r}")
    return url
