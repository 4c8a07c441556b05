"""Logging a hostile peer cannot flood: a few lines per interval, then one summary.

aiohttp logs every request it cannot parse with an ERROR traceback (about 580 bytes for the
62 a peer sent), so anyone who can reach the port can fill the disk without credentials. A
server instance hands aiohttp a :class:`RequestErrorLog` instead of the ``aiohttp.server``
logger: a malformed request becomes one line (what was wrong, from whom, the peer's bytes
escaped and clipped), at most :data:`LINES_PER_INTERVAL` of them per :data:`INTERVAL`
seconds, and the rest are counted and summed up in one line. A failure of the server's own
code still logs its traceback (it is a bug to fix), under the same kind of limit.
:class:`LogThrottle` serves the connection limits too (refusals, accept failures).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, MutableMapping
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web import RequestPayloadError

from ..protocol.text import for_display

__all__ = ["INTERVAL", "LINES_PER_INTERVAL", "LogThrottle", "RequestErrorLog"]

logger = logging.getLogger(__name__)

INTERVAL = 60.0
LINES_PER_INTERVAL = 10
# Characters of a peer's bytes quoted in one line.
_QUOTE_LIMIT = 160


class LogThrottle:
    """At most ``limit`` records per ``interval`` seconds; the rest are counted and reported
    in one summary line when the next interval begins (or on :meth:`flush`).

    Args:
        log: the logger the lines go to.
        what: what a suppressed record is, in the plural (``"malformed HTTP requests"``).
        limit: records let through per interval.
        interval: seconds of one interval.
        clock: a monotonic clock, in seconds.
    """

    def __init__(self, log: logging.Logger, what: str, *, limit: int = LINES_PER_INTERVAL,
                 interval: float = INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._log, self._what = log, what
        self._limit, self._interval, self._clock = limit, interval, clock
        self._started = clock()
        self._count = 0
        self._suppressed = 0

    @property
    def suppressed(self) -> int:
        """Records held back in the current interval."""
        return self._suppressed

    def log(self, level: int, msg: str, *args: Any, exc_info: Any = None) -> None:
        """Log ``msg % args`` at ``level`` unless this interval's share is spent."""
        if not self._log.isEnabledFor(level):
            return
        now = self._clock()
        if now - self._started >= self._interval:
            self.flush()
            self._started, self._count = now, 0
        if self._count < self._limit:
            self._count += 1
            self._log.log(level, msg, *args, exc_info=exc_info)
        else:
            self._suppressed += 1

    def flush(self) -> None:
        """Report what this interval held back, if anything."""
        if self._suppressed:
            elapsed = self._clock() - self._started
            self._log.warning("%d more %s in the last %.0f s (not logged one by one)",
                              self._suppressed, self._what, elapsed)
            self._suppressed = 0


class RequestErrorLog(logging.LoggerAdapter[logging.Logger]):
    """The logger a server gives aiohttp's request handlers (``handler_args['logger']``).

    aiohttp logs ``Error handling request from ADDR`` with the exception attached: when the
    exception says the request was malformed, this logs one INFO line through the
    ``malformed`` throttle; any other exception keeps its traceback, through the
    ``failures`` throttle. Records without an exception pass through unchanged.
    """

    def __init__(self, log: logging.Logger | None = None) -> None:
        super().__init__(log or logger, {})
        self.malformed = LogThrottle(self.logger, "malformed HTTP requests")
        self.failures = LogThrottle(self.logger, "request handler failures")

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]
                ) -> tuple[Any, MutableMapping[str, Any]]:
        return msg, kwargs

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info")
        if exc is True:  # logger.exception() inside an except block
            exc = sys.exc_info()[1]
        if not isinstance(exc, BaseException):
            super().log(level, msg, *args, **kwargs)
            return
        if isinstance(exc, RequestPayloadError) and exc.__cause__ is not None:
            exc = exc.__cause__  # a body aiohttp could not read: its parser says why
        if isinstance(exc, HttpProcessingError):
            # aiohttp's message spreads the offending bytes and a caret over several lines.
            detail = for_display(" ".join(str(exc.message).split()) or type(exc).__name__,
                                 _QUOTE_LIMIT)
            peer = f" from {args[0]}" if args and "from %s" in str(msg) else ""
            self.malformed.log(logging.INFO, "malformed HTTP request%s (%s): %s", peer,
                               exc.code, detail)
        else:
            self.failures.log(logging.ERROR, str(msg), *args, exc_info=exc)

    def flush(self) -> None:
        """Report what both throttles held back."""
        self.malformed.flush()
        self.failures.flush()
