"""The loopback redirect listener, over real sockets: what the browser meets and what the
flow gets back."""

from __future__ import annotations

import asyncio
import io
import logging
import socket
from urllib.parse import urlencode

import aiohttp
import pytest

from mcp_multi.client.auth.loopback import LoopbackAgent, LoopbackError, browser_available

AUTHORIZE = "https://as.example/authorize?" + urlencode(
    {"response_type": "code", "client_id": "c", "state": "st4te", "code_challenge": "x"})


class Lines(list[str]):
    """The agent's status lines; ``waiting`` is set once it waits for the redirect."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = asyncio.Event()

    def write(self, line: str) -> None:
        self.append(line)
        if line.startswith("(waiting"):
            self.waiting.set()


def _agent(lines: Lines, **options: object) -> LoopbackAgent:
    options.setdefault("browser", "never")
    return LoopbackAgent(write=lines.write, **options)  # type: ignore[arg-type]


async def _get(url: str, method: str = "GET") -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.request(method, url) as response:
        return response.status, await response.text()


async def _waiting(lines: Lines) -> None:
    """Until the agent has printed the URL (it then waits for the redirect)."""
    await asyncio.wait_for(lines.waiting.wait(), 5)


async def test_one_callback_with_the_right_state_is_the_answer() -> None:
    lines = Lines()
    agent = _agent(lines, label="api")
    redirect = await agent.start()
    try:
        assert redirect.startswith("http://127.0.0.1:") and redirect.endswith("/callback")
        task = asyncio.create_task(agent.authorize(AUTHORIZE))
        await _waiting(lines)
        assert any(AUTHORIZE in line for line in lines)  # printed whole, for copying
        assert "api" in lines[0]
        status, page = await _get(redirect + "?code=SECRETCODE&state=st4te&iss=https%3A%2F%2Fas")
        assert status == 200 and "go back to the terminal" in page
        assert "SECRETCODE" not in page
        assert await task == {"code": "SECRETCODE", "state": "st4te", "iss": "https://as"}
        # Exactly one: the next redirect finds nobody waiting.
        status, page = await _get(redirect + "?code=again&state=st4te")
        assert status == 410
    finally:
        await agent.close()
    assert not any("SECRETCODE" in line for line in lines)


async def test_a_foreign_state_is_refused_and_waiting_goes_on() -> None:
    lines = Lines()
    agent = _agent(lines)
    redirect = await agent.start()
    try:
        task = asyncio.create_task(agent.authorize(AUTHORIZE))
        await _waiting(lines)
        status, page = await _get(redirect + "?code=evil&state=forged")
        assert status == 400 and "does not belong" in page
        status, _ = await _get(redirect + "?code=evil")  # no state at all
        assert status == 400
        assert not task.done()
        status, _ = await _get(redirect + "?code=good&state=st4te")
        assert status == 200
        assert (await task)["code"] == "good"
    finally:
        await agent.close()


async def test_an_error_redirect_is_returned_and_shown_escaped() -> None:
    lines = Lines()
    agent = _agent(lines)
    redirect = await agent.start()
    try:
        task = asyncio.create_task(agent.authorize(AUTHORIZE))
        await _waiting(lines)
        status, page = await _get(redirect + "?" + urlencode(
            {"error": "access_denied<script>", "state": "st4te"}))
        assert status == 200 and "access_denied&lt;script&gt;" in page
        assert "<script>" not in page
        assert (await task)["error"] == "access_denied<script>"
    finally:
        await agent.close()


async def test_other_paths_methods_and_malformed_queries_are_refused() -> None:
    lines = Lines()
    agent = _agent(lines)
    redirect = await agent.start()
    try:
        task = asyncio.create_task(agent.authorize(AUTHORIZE))
        await _waiting(lines)
        assert (await _get(redirect.replace("/callback", "/other?state=st4te")))[0] == 404
        assert (await _get(redirect + "?state=st4te", "POST"))[0] == 405
        assert (await _get(redirect + "?state=st4te&state=st4te&code=a"))[0] == 400
        assert not task.done()
        task.cancel()
    finally:
        await agent.close()


async def test_no_redirect_in_time_is_a_clear_error() -> None:
    agent = _agent(Lines(), wait=0.2)
    await agent.start()
    try:
        with pytest.raises(LoopbackError, match=r"no authorization came back within 0.2 s"):
            await agent.authorize(AUTHORIZE)
    finally:
        await agent.close()


async def test_a_fixed_port_is_used_and_a_busy_one_is_a_clear_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(LoopbackError, match=f"cannot listen on 127.0.0.1:{port}"):
            await _agent(Lines(), port=port).start()
    agent = _agent(Lines(), port=port)
    try:
        assert await agent.start() == f"http://127.0.0.1:{port}/callback"
    finally:
        await agent.close()
    with pytest.raises(aiohttp.ClientConnectionError):  # closed: nothing listens any more
        await _get(f"http://127.0.0.1:{port}/callback")


async def test_the_request_line_is_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    lines = Lines()
    agent = _agent(lines)
    redirect = await agent.start()
    try:
        task = asyncio.create_task(agent.authorize(AUTHORIZE))
        await _waiting(lines)
        await _get(redirect + "?code=LOGGEDCODE&state=st4te")
        await task
    finally:
        await agent.close()
    assert "LOGGEDCODE" not in caplog.text


async def test_the_printed_url_is_escaped() -> None:
    lines = Lines()
    agent = _agent(lines, wait=0.05)
    await agent.start()
    try:
        with pytest.raises(LoopbackError):
            await agent.authorize("https://as.example/authorize?state=s&x=\x1b[2J")
    finally:
        await agent.close()
    assert not any("\x1b" in line for line in lines)
    assert any("\\x1b[2J" in line for line in lines)


def test_no_browser_where_stdout_is_not_a_terminal() -> None:
    assert browser_available(io.StringIO()) is False
