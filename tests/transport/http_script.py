"""A scripted Streamable HTTP endpoint on a real loopback socket, for behaviours to provoke.

Each test sets the handlers of ``POST``, ``GET`` and ``DELETE`` on ``/mcp``; every request is
recorded (method, headers, decoded body) and a test waits for one with
:meth:`HTTPScript.wait_for` (a condition with a timeout, no sleeps). :func:`sse` writes an
event stream in small pieces, as a real network would deliver it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web

TIMEOUT = 10.0

Handler = Callable[[web.Request, "Recorded"], Awaitable[web.StreamResponse]]


@dataclass
class Recorded:
    """One HTTP request the endpoint received."""

    method: str
    headers: dict[str, str]
    body: Any = None
    at: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def rpc_method(self) -> str | None:
        return self.body.get("method") if isinstance(self.body, dict) else None


async def not_allowed(request: web.Request, recorded: Recorded) -> web.StreamResponse:
    return web.Response(status=405)


async def accepted(request: web.Request, recorded: Recorded) -> web.StreamResponse:
    return web.Response(status=202)


def json_reply(result: dict[str, Any], recorded: Recorded, *, status: int = 200,
               headers: dict[str, str] | None = None) -> web.Response:
    body = {"jsonrpc": "2.0", "id": recorded.body.get("id"), "result": result}
    return web.Response(status=status, body=orjson.dumps(body), headers=headers,
                        content_type="application/json")


async def sse(request: web.Request, chunks: list[bytes], *, end: bool = True,
              headers: dict[str, str] | None = None) -> web.StreamResponse:
    """Answer with an event stream made of ``chunks``, each written in 5-byte pieces."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", **(headers or {})})
    await response.prepare(request)
    for chunk in chunks:
        for start in range(0, len(chunk), 5):
            await response.write(chunk[start:start + 5])
    if end:
        await response.write_eof()
    return response


def event(message: dict[str, Any] | None = None, *, event_id: str | None = None,
          retry: int | None = None) -> bytes:
    """One SSE event: an optional id and retry, and the message (or empty data: priming)."""
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if retry is not None:
        lines.append(f"retry: {retry}")
    lines.append("data: " + (orjson.dumps(message).decode() if message is not None else ""))
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class HTTPScript:
    """``/mcp`` with handlers the test chooses; ``url`` is where to point a transport."""

    def __init__(self) -> None:
        self.post: Handler = accepted
        self.get: Handler = not_allowed
        self.delete: Handler = accepted
        self.requests: list[Recorded] = []
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    async def start(self) -> HTTPScript:
        app = web.Application()
        app.router.add_route("*", "/mcp", self._handle)
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        recorded = Recorded(request.method, {k.lower(): v for k, v in request.headers.items()},
                            orjson.loads(raw) if raw else None,
                            asyncio.get_running_loop().time())
        async with self._changed:
            self.requests.append(recorded)
            self._changed.notify_all()
        handler = {"POST": self.post, "GET": self.get, "DELETE": self.delete}.get(request.method)
        if handler is None:
            return web.Response(status=405)
        return await handler(request, recorded)

    async def wait_for(self, predicate: Callable[[Recorded], bool],
                       timeout: float = TIMEOUT) -> Recorded:
        """The first recorded request matching ``predicate``, waiting for it if need be."""
        async with asyncio.timeout(timeout), self._changed:
            while True:
                for recorded in self.requests:
                    if predicate(recorded):
                        return recorded
                await self._changed.wait()

    def of(self, method: str, rpc_method: str | None = None) -> list[Recorded]:
        return [r for r in self.requests if r.method == method
                and (rpc_method is None or r.rpc_method == rpc_method)]


StartHTTPScript = Callable[[], Awaitable[HTTPScript]]


@pytest.fixture
async def start_http_script() -> AsyncIterator[StartHTTPScript]:
    """Start scripted endpoints on 127.0.0.1:0; all are closed after the test."""
    running: list[HTTPScript] = []

    async def start() -> HTTPScript:
        script = await HTTPScript().start()
        running.append(script)
        return script

    yield start
    for script in running:
        await script.close()
