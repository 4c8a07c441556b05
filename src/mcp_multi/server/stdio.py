"""MCP over stdio: the server reads newline-delimited JSON-RPC on stdin, writes it on stdout.

This is how a client that spawns its servers (Claude Desktop, our ``mcp-client``, the
official SDKs) talks to ``mcp-server --stdio``. Each line is one message; nothing but MCP
messages ever reaches stdout (logs go to stderr). Requests run concurrently, as on every
stream transport (see :meth:`Dispatcher.receive`); the first request decides the era.

When stdin ends the server finishes the requests still running (for at most
``DRAIN_SECONDS``; a ``subscriptions/listen`` never finishes by itself) and exits, as the
specification asks: closing stdin is how a client shuts a stdio server down.

Lines are cut by the protocol's :class:`~mcp_multi.protocol.framing.LineFramer`, the one the
client's stdio transport uses too: a line longer than the message limit is answered with an
error as soon as it passes the limit, skipped up to its end without being kept, and the session
lives on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import BinaryIO

from ..protocol.errors import InvalidRequest
from ..protocol.framing import Line, LineEvent, LineFramer, LineTooLong
from ..protocol.jsonrpc import dumps, error_response
from .dispatcher import Dispatcher, build_dispatcher
from .session import Outgoing, ServerSession
from .settings import ServerSettings

__all__ = ["DRAIN_SECONDS", "ReadFn", "serve_lines", "serve_stdio"]

logger = logging.getLogger(__name__)

DRAIN_SECONDS = 10.0
CHUNK = 64 * 1024  # bytes read from stdin at a time

ReadFn = Callable[[], Awaitable[bytes]]
WriteFn = Callable[[bytes], Awaitable[None]]


async def serve_lines(dispatcher: Dispatcher, read: ReadFn, write: WriteFn) -> None:
    """Serve one client over a byte stream of JSON lines until ``read`` gives ``b""``.

    ``read`` gives the next bytes of the stream, any amount; ``write`` writes one whole line
    (and waits for room). At most one message of the size limit is held of a line.
    """
    async def send(message: Outgoing) -> None:
        await write(dumps(message) + b"\n")

    session = ServerSession("stdio", send)
    dispatcher.stats.opened("stdio")
    framer = LineFramer(dispatcher.settings.max_message_size)
    try:
        while chunk := await read():
            for event in framer.feed(chunk):
                await _handle(dispatcher, session, event)
        for event in framer.end():
            await _handle(dispatcher, session, event)
    finally:
        if session.asks is not None:  # no answer can come any more: do not wait for one
            session.asks.fail_all("stdin ended before the client answered")
        running = list(session.inflight.values())
        if running:
            await asyncio.wait(running, timeout=DRAIN_SECONDS)
        session.close()
        dispatcher.stats.closed("stdio")


async def _handle(dispatcher: Dispatcher, session: ServerSession, event: LineEvent) -> None:
    if isinstance(event, Line):
        await dispatcher.receive(session, event.data)
    elif isinstance(event, LineTooLong):
        # Told at once, not when (if ever) the line ends; the rest of it is skipped.
        limit = dispatcher.settings.max_message_size
        await session.send(error_response(None, InvalidRequest(
            f"Message too large: a line exceeds the limit of {limit} bytes "
            "(skipped up to its end)")))
    else:
        logger.debug("skipped a line of %d bytes", event.size)


async def _stdin_reader(stdin: BinaryIO) -> ReadFn:
    """A :data:`ReadFn` of ``stdin``: a pipe or terminal read by the loop, a file in a thread."""
    loop = asyncio.get_running_loop()
    # The reader holds at most about two chunks before the pipe is paused.
    reader = asyncio.StreamReader(limit=CHUNK)
    try:
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), stdin)
    except ValueError:  # a regular file, not a pipe
        fd = stdin.fileno()

        async def read_file() -> bytes:
            return await loop.run_in_executor(None, os.read, fd, CHUNK)

        return read_file

    async def read_pipe() -> bytes:
        return await reader.read(CHUNK)

    return read_pipe


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
    read = await _stdin_reader(stdin)
    write = await _stdout_writer(stdout)
    logger.info("%s serving MCP on stdio (tools: %s)", settings.name,
                ", ".join(dispatcher.registry.names))
    dispatcher.context.permissions.reload_on_hangup()
    await serve_lines(dispatcher, read, write)
