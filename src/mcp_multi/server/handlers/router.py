"""What every handler receives, and the table that routes a method to its handler.

A handler is ``async def handler(call: Call) -> dict`` returning the request's result (the
dispatcher wraps it in the response, and stamps it in the modern era) or raising a
:class:`~mcp_multi.protocol.errors.JSONRPCError`. It registers once, naming its method, the
eras it serves and, for a cacheable modern result, its freshness hint::

    @route(m.TOOLS_LIST, HANDSHAKE, MODERN, cache=CacheHint(300_000))
    async def tools_list(call: Call) -> dict[str, Any]: ...

A new method is that: one handler, one registration, in the module of its area.

A handler that needs its client (sampling, elicitation, roots) awaits ``call.ask(method,
params)``; :mod:`mcp_multi.server.asking` says how that travels in each era.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ...protocol.envelope import CacheHint, Envelope
from ...protocol.errors import InvalidParams
from ...protocol.input_required import RequestStateCodec, missing_capabilities
from ...protocol.jsonrpc import RequestId
from ...protocol.versions import HANDSHAKE, MODERN, Era
from ..asking import Asking, Questions, RoundAsking, StreamAsking
from ..auth.admin import Permissions
from ..auth.policy import Access
from ..notifier import Notifier
from ..prompts import PromptRegistry
from ..resources import Resources, ServerStats
from ..session import SendFn, ServerSession
from ..settings import ServerSettings
from ..tasks import TaskRunner
from ..tools import ToolRegistry

__all__ = ["ROUTER", "Call", "Handler", "Route", "Router", "ServerContext", "page", "private",
           "route", "visible_page"]

Params = dict[str, Any]
T = TypeVar("T")


@dataclass(slots=True, frozen=True)
class ServerContext:
    """What the handlers of one server share: its settings, tools, resources, prompts,
    counters, the notifier that reaches its other sessions, its tasks, the codec of the
    ``requestState`` it issues (a random secret per server), and what each caller may use
    (``permissions``: no policy unless ``--policy`` loaded one)."""

    settings: ServerSettings
    registry: ToolRegistry
    resources: Resources
    stats: ServerStats
    server_info: dict[str, str] = field(default_factory=dict)
    prompts: PromptRegistry = field(default_factory=PromptRegistry)
    notifier: Notifier = field(default_factory=Notifier)
    state_codec: RequestStateCodec = field(default_factory=RequestStateCodec.random)
    permissions: Permissions = field(default_factory=Permissions)
    tasks: TaskRunner = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tasks", TaskRunner(self.settings))


@dataclass(slots=True)
class Call:
    """One request being served: what every handler receives.

    Attributes:
        server: the server's shared context.
        session: the client's session (a throw-away one for a stateless HTTP request).
        params: the request's params (``{}`` when absent).
        notify: where request-scoped notifications (progress, log messages) go.
        request_id: the JSON-RPC id.
        envelope: the modern ``_meta`` envelope; ``None`` in the handshake era.
        method: the request's method (what a 2026-07-28 ``requestState`` is bound to).
    """

    server: ServerContext
    session: ServerSession
    params: Params
    notify: SendFn
    request_id: RequestId
    envelope: Envelope | None = None
    method: str = ""
    # How this request asks its client: made at its first ask (most requests never ask).
    asking: Asking | None = field(default=None, init=False, repr=False)
    _asked: int = field(default=0, init=False, repr=False)

    @property
    def modern(self) -> bool:
        return self.envelope is not None

    @property
    def log_level(self) -> str | None:
        """The least severe level the client wants log messages at; None for none."""
        if self.envelope is not None:
            return self.envelope.log_level
        return self.session.log_level

    @property
    def client_capabilities(self) -> dict[str, Any]:
        """What the client declared: in this request's envelope (2026-07-28), else in its
        session's ``initialize``."""
        if self.envelope is not None:
            return self.envelope.client_capabilities
        return self.session.client_capabilities

    def can_ask(self, method: str, params: Mapping[str, Any] | None = None) -> bool:
        """Whether the client declared what asking ``method`` (with ``params``) needs."""
        return missing_capabilities(method, params or {}, self.client_capabilities) is None

    async def ask(self, method: str, params: dict[str, Any], *,
                  key: str | None = None) -> dict[str, Any]:
        """Ask the client ``method`` (``sampling/createMessage``, ``elicitation/create``,
        ``roots/list``) and return its result.

        ``key`` names the question within this request (2026-07-28 ``inputRequests`` key);
        by default it is derived from the order of the asks.

        Raises:
            MissingRequiredClientCapability: the client did not declare what it needs.
            AskFailed: the client refused, did not answer in time, or went away.
            InvalidParams: (2026-07-28) its ``inputResponses`` or ``requestState`` are bad.
        """
        if key is None:
            self._asked += 1
            key = f"{method.partition('/')[0]}-{self._asked}"
        answers = await self.ask_all({key: (method, params)})
        return answers[key]

    async def ask_all(self, questions: Questions) -> dict[str, dict[str, Any]]:
        """Ask several questions at once (``{key: (method, params)}``); their answers by key.

        In the handshake era they go out together and are awaited together; in 2026-07-28 one
        ``input_required`` round carries all those not answered yet. Raises as :meth:`ask`.
        """
        asking = self.asking
        if asking is None:
            asking = self.asking = (RoundAsking(self, self.server.state_codec)
                                    if self.envelope is not None else StreamAsking(self))
        return await asking.ask_all(questions)


Handler = Callable[[Call], Awaitable[dict[str, Any]]]
# Whether a request (by its params) is answered at once; see :attr:`Route.at_once`.
AtOnce = Callable[["ServerContext", Params], bool]


def _never(_server: ServerContext, _params: Params) -> bool:
    return False


def _always(_server: ServerContext, _params: Params) -> bool:
    return True


@dataclass(slots=True, frozen=True)
class Route:
    """A registered handler, the freshness hint of its modern result (if cacheable), and
    whether it answers a request at once (never awaits anything that waits: no I/O, no
    asking the client), which lets a transport serve it without a task of its own."""

    handler: Handler
    cache: CacheHint | None = None
    at_once: AtOnce = _never


class Router:
    """Handlers by era and method name."""

    def __init__(self) -> None:
        self._routes: dict[Era, dict[str, Route]] = {HANDSHAKE: {}, MODERN: {}}

    def route(self, method: str, *eras: Era, cache: CacheHint | None = None,
              at_once: AtOnce | bool = False) -> Callable[[Handler], Handler]:
        """Decorator: register the handler of ``method`` in ``eras`` (both when none given).
        ``at_once``: whether it answers without waiting on anything, always (True) or as
        a function of the server and the request's params says.

        Raises:
            ValueError: ``method`` already has a handler in one of ``eras``.
        """
        def register(handler: Handler) -> Handler:
            for era in eras or (HANDSHAKE, MODERN):
                if method in self._routes[era]:
                    raise ValueError(f"{method} already has a handler in the {era} era")
                quick = at_once if callable(at_once) else _always if at_once else _never
                self._routes[era][method] = Route(handler, cache, quick)
            return handler

        return register

    def find(self, era: Era, method: str) -> Route | None:
        """The route of ``method`` in ``era``; ``None`` when it has none."""
        return self._routes[era].get(method)

    def methods(self, era: Era) -> list[str]:
        """The methods served in ``era``, in registration order."""
        return list(self._routes[era])


# The server's routes: the handler modules register into it when the package is imported.
ROUTER = Router()
route = ROUTER.route


def page(items: Sequence[T], params: Params, kind: str, size: int) -> tuple[Sequence[T], Params]:
    """One page of a list result, and the fields that go with it (``nextCursor`` when more
    follow).

    The cursor is opaque to clients: the list's ``kind`` and the offset of the page, base64
    encoded. A cursor that is not one we issue for ``kind`` (another list's, a forged or
    truncated one, an offset past the end) is invalid params. The first page of a list that
    fits is ``items`` itself, not a copy (``tools/list`` is asked often).

    Raises:
        InvalidParams: a bad cursor.
    """
    cursor = params.get("cursor")
    start = 0 if cursor is None else _offset(cursor, kind, len(items))
    if start == 0 and len(items) <= size:
        return items, {}
    end = start + size
    more: Params = {"nextCursor": _cursor(kind, end)} if end < len(items) else {}
    return items[start:end], more


Listing = list[dict[str, Any]]


def visible_page(call: Call, listing: Listing, key: str,
                 keep: Callable[[Access, Listing], Listing]) -> Params:
    """One page of a list result under ``key`` (``tools``, ``resources``,
    ``resourceTemplates``, ``prompts``; also the kind of its cursors), holding only the
    entries the caller's policy lets it see (``keep``, e.g. ``Access.tools``); without a
    policy, the whole listing, paged."""
    access = call.server.permissions.access(call.session.principal)
    if access is not None:
        listing = keep(access, listing)
    items, more = page(listing, call.params, key, call.server.settings.page_size)
    return private({key: items, **more}, call, access)


def private(result: Params, call: Call, access: object | None) -> Params:
    """``result``, marked for this caller's eyes only (``cacheScope: private``) when a policy
    chose what it holds (``access``) and the result is a modern one, which may be cached."""
    if access is not None and call.modern:
        result["cacheScope"] = "private"
    return result


def _cursor(kind: str, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{offset}".encode()).decode().rstrip("=")


def _offset(cursor: Any, kind: str, length: int) -> int:
    bad = InvalidParams(f"Invalid params: not a {kind} cursor this server issued",
                        {"cursor": cursor[:100] if isinstance(cursor, str) else None})
    if not isinstance(cursor, str) or not 0 < len(cursor) <= 64:
        raise bad
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise bad from None
    named, _, number = text.partition(":")
    if named != kind or not number.isdigit() or not 0 < int(number) <= length:
        raise bad
    return int(number)
