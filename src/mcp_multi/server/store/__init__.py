"""Where sessions live: in this process (:class:`MemoryStore`) or shared by many instances
through Redis (:class:`RedisStore`), behind one interface (:class:`SessionStore`).

:func:`open_store` turns the ``--session-store`` setting into a store. The Redis store, and
the ``redis`` package with it, is imported only when a Redis URL is given (``RedisStore``
is looked up lazily), so that a server without a shared store never loads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import Delivery, Inbox, Journal, SessionRecord, SessionStore, StoreUnavailable
from .memory import MemoryStore
from .wire import printable, public_url

if TYPE_CHECKING:
    from .redis_store import RedisStore

__all__ = ["Delivery", "Inbox", "Journal", "MemoryStore", "RedisStore", "SessionRecord",
           "SessionStore", "StoreUnavailable", "open_store"]

SCHEMES = ("redis", "rediss", "unix")


def open_store(url: str | None) -> SessionStore:
    """The store named by ``url``: None for this process only, a ``redis://``,
    ``rediss://`` or ``unix://`` URL for Redis. Nothing is connected until ``start``.

    Raises:
        ValueError: ``url`` is not a URL of a store we know (a one-line message).
    """
    if url is None:
        return MemoryStore()
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in SCHEMES or not rest:
        shown = printable(public_url(url))
        raise ValueError(f"--session-store: {shown} is not a redis://HOST:PORT/DB, rediss:// "
                         "or unix:// URL")
    from .redis_store import RedisStore
    return RedisStore(url)


def __getattr__(name: str) -> Any:
    if name == "RedisStore":
        from .redis_store import RedisStore
        return RedisStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
