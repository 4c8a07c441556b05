"""The server's event loop choice: uvloop where installed, MCP_EVENT_LOOP to pick by hand."""

from __future__ import annotations

import asyncio
import importlib.util
import logging

import pytest

from mcp_multi import eventloop

HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None


async def _running_loop_name() -> str:
    return eventloop.loop_name(asyncio.get_running_loop())


def test_asyncio_is_the_escape_hatch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(eventloop.EVENT_LOOP_ENV, "asyncio")
    assert eventloop.loop_factory() is None
    assert eventloop.run(_running_loop_name()) == "asyncio"


@pytest.mark.parametrize("choice", ["auto", "", "uvloop", " UVLOOP "])
def test_uvloop_by_default_where_installed(choice: str) -> None:
    expected = "uvloop" if HAS_UVLOOP else "asyncio"
    assert eventloop.run(_running_loop_name(), choice) == expected


def test_an_unknown_choice_is_warned_about_and_taken_as_auto(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=eventloop.__name__):
        factory = eventloop.loop_factory("trio")
    assert (factory is not None) == HAS_UVLOOP
    assert "MCP_EVENT_LOOP='trio'" in caplog.text
