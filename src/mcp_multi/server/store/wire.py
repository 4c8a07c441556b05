"""What the store puts on the wire, and what it accepts back: plain functions, no I/O.

Theory of operation: instances hand each other :class:`~.base.Delivery` objects through
Redis pub/sub. A delivery travels as one frame of bytes, a header line then the body
untouched (a JSON-RPC frame is never decoded and re-encoded on the way)::

    b"<kind> <session id> <sender instance>\\n" + body

The sender is in every frame (direct and broadcast alike) so that an instance can skip its
own broadcasts, which Redis hands back to every subscriber including the publisher.

Whatever comes out of Redis is untrusted: anyone who can reach the server can publish.
:func:`decode_delivery` refuses a frame whose header is not exactly three well-formed tokens,
and :func:`printable` turns any bytes into a short, escaped string fit for one log line.
The identifiers that become parts of Redis keys or frame headers are checked here too
(:func:`check_session_id`, :func:`check_key`), so that no id can forge another's key.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from .base import Delivery

__all__ = ["check_key", "check_session_id", "decode_delivery", "encode_delivery", "printable",
           "public_url", "valid_session_id"]

# A session id: printable ASCII with no space and no colon (the colon separates the parts of
# a Redis key), bounded.
_SESSION_ID = re.compile(r"[!-9;-~]{1,256}")
_SESSION_ID_B = re.compile(rb"[!-9;-~]{1,256}")
# A journal's key within its session: no colon either, so ``<key>`` never looks like
# ``<key>:n`` (the journal's counter).
_KEY = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_KIND_B = re.compile(rb"[a-z][a-z0-9_\-]{0,31}")
_INSTANCE_B = re.compile(rb"[0-9a-f]{12}")
# The longest header line decode_delivery looks for.
_MAX_HEADER = 400


def check_session_id(session_id: str) -> str:
    """Return ``session_id`` if it may name a session in the store, else raise ValueError."""
    if not _SESSION_ID.fullmatch(session_id):
        raise ValueError(f"not a session id the store accepts: {printable(session_id)}")
    return session_id


def valid_session_id(session_id: str) -> bool:
    return _SESSION_ID.fullmatch(session_id) is not None


def check_key(key: str) -> str:
    """Return ``key`` if it may name a journal of a session, else raise ValueError."""
    if not _KEY.fullmatch(key):
        raise ValueError(f"not a journal key the store accepts: {printable(key)}")
    return key


def encode_delivery(delivery: Delivery, sender: str) -> bytes:
    """The frame carrying ``delivery`` from instance ``sender``."""
    if not _KIND_B.fullmatch(delivery.kind.encode("ascii", "replace")):
        raise ValueError(f"not a delivery kind: {printable(delivery.kind)}")
    check_session_id(delivery.session_id)
    header = f"{delivery.kind} {delivery.session_id} {sender}\n".encode("ascii")
    return header + delivery.body


def decode_delivery(frame: bytes) -> tuple[Delivery, str]:
    """The delivery in ``frame`` and the instance that sent it; ValueError if malformed."""
    end = frame.find(b"\n", 0, _MAX_HEADER)
    if end < 0:
        raise ValueError("no header line")
    parts = frame[:end].split(b" ")
    if len(parts) != 3:
        raise ValueError("the header is not <kind> <session> <sender>")
    kind, session_id, sender = parts
    if not _KIND_B.fullmatch(kind):
        raise ValueError("bad kind")
    if not _SESSION_ID_B.fullmatch(session_id):
        raise ValueError("bad session id")
    if not _INSTANCE_B.fullmatch(sender):
        raise ValueError("bad sender")
    delivery = Delivery(session_id.decode("ascii"), kind.decode("ascii"), frame[end + 1:])
    return delivery, sender.decode("ascii")


def printable(data: bytes | str, limit: int = 80) -> str:
    """``data`` as one short line: escaped, cut at ``limit`` characters (with a mark)."""
    if isinstance(data, bytes):
        text = repr(data[:limit])[2:-1]
    else:
        text = data[:limit].encode("unicode_escape").decode("ascii")
    return text + ("..." if len(data) > limit else "")


def public_url(url: str) -> str:
    """``url`` fit for a log line or an error message: any password replaced by ``***``."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.netloc.rpartition("@")[2]
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
    except ValueError:
        return "<unparsable URL>"
