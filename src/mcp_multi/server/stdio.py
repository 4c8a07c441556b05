"""MCP over stdio: the server reads newline-delimited JSON-RPC on stdin, writes it on stdout.

This is how a client that spawns its servers (Claude Desktop, our ``mcp-client``, the
official SDKs) talks to ``mcp-server --stdio``. Each line is one message; nothing but MCP
messages ever reaches stdout (logs go to stderr). Requests run concurrently, as on every
stream transport (see :meth:`Dispatcher.receive`); the first request decides the era.

When stdin ends the server finishes the requests still running (for at most
``DRAIN_SECONDS``; a ``subscriptions/listen`` never finishes by itself) and exits, as the
specification asks: closing stdin is how a client shuts a stdio server down. A line longer
than the message limit is skipped and answered with an error; the session lives on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import BinaryIO

from ..protocol.errors import InvalidRequest
from ..protocol.jsonrpc import dumps, error_response
from .dispatcher import Dispatcher, build_dispatcher
from .session import Outgoing, ServerSession
from .settings import ServerSettings

__all__ = ["DRAIN_SECONDS", "serve_lines", "serve_stdio"]

logger = logging.getLogger(__name__)

DRAIN_SECONDS = 10.0

WriteFn = Callable[[bytes], Awaitable[None]]


async def serve_lines(dispatcher: Dispatcher, reader: asyncio.StreamReader,
                      write: WriteFn) -> None:
    """Serve one client over a byte stream of JSON lines until ``reader`` ends.

    ``reader`` must have been made with a ``limit`` above the message size limit; ``write``
    writes one whole line (and waits for room).
    """
    async def send(message: Outgoing) -> None:
        await write(dumps(message) + b"\n")

    session = ServerSession("stdio", send)
    dispatcher.stats.opened("stdio")
    skipped = 0  # bytes of an oversized line skipped so far
    try:
        while True:
            try:
                line = await reader.readuntil(b"\n")
            except asyncio.IncompleteReadError as exc:
                line = exc.partial
                if not line:
                    break
            except asyncio.LimitOverrunError as exc:
                await reader.readexactly(exc.consumed)
                skipped += exc.consumed
                continue
            if skipped:
                size, skipped = skipped + len(line), 0
                limit = dispatcher.settings.max_message_size
                await send(error_response(None, InvalidRequest(
                    f"Message too large: {size} bytes exceeds the limit of {limit} bytes")))
                continue
            if line.strip():
                await dispatcher.receive(session, line)
    finally:
        running = list(session.inflight.values())
        if running:
            await asyncio.wait(running, timeout=DRAIN_SECONDS)
        session.close()
        dispatcher.stats.closed("stdio")


async def _feed_from_file(reader: asyncio.StreamReader, stdin: BinaryIO) -> None:
    loop = asyncio.get_running_loop()
    while chunk := await loop.run_in_executor(None, stdin.read1, 65536):  # type: ignore[attr-defined]
        reader.feed_data(chunk)
    reader.feed_eof()


async def _stdout_writer(stdout: BinaryIO) -> WriteFn:
    loop = asyncio.get_running_loop()
    try:
        transport, protocol = await loop.connect_write_pipe(
            asyncio.streams.FlowControlMixin, stdout)
    except ValueError:  # a regular file
        async def write_file(data: bytes) -> None:
            stdout.write(data)
            stdout.flush()

        return write_file
    writer = asyncio.StreamWriter(transport, protocol, None, loop)

    async def write_pipe(data: bytes) -> None:
        writer.write(data)
        await writer.drain()

    return write_pipe


async def serve_stdio(settings: ServerSettings, stdin: BinaryIO | None = None,
                      stdout: BinaryIO | None = None) -> None:
    """Serve MCP on this process's stdin and stdout until stdin ends."""
    dispatcher = build_dispatcher(settings, ("stdio",), {"stdio": "stdin/stdout"})
    # Duplicate the descriptors so closing our pipe transports leaves sys.std* intact.
    stdin = stdin or os.fdopen(os.dup(sys.stdin.fileno()), "rb")
    stdout = stdout or os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    reader = asyncio.StreamReader(limit=settings.max_message_size + 2)
    feeder: asyncio.Task[None] | None = None
    try:
        await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), stdin)
    except ValueError:  # a regular file, not a pipe: read it in a thread
        feeder = asyncio.create_task(_feed_from_file(reader, stdin))
    write = await _stdout_writer(stdout)
    logger.info("%s serving MCP on stdio (tools: %s)", settings.name,
                ", ".join(dispatcher.registry.names))
    try:
        await serve_lines(dispatcher, reader, write)
    finally:
        if feeder is not None:
            feeder.cancel()
