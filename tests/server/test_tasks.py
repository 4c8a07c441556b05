"""The tasks extension (``io.modelcontextprotocol/tasks``) over real sockets.

Stateless 2026-07-28 HTTP is where most clients meet it; a 2026-07-28 WebSocket or stdio
connection has a session, and its tasks belong to it. The handshake era has no tasks. The
hostile cases: forged and foreign task ids, another session's task, floods past the caps,
malformed answers, expiry.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from mcp_multi.server.app import RunningServer, start_server
from mcp_multi.server.settings import ServerSettings

from ..conftest import StartServer
from .wire import (
    MCP_ACCEPT,
    RawPeer,
    StdioPeer,
    connect,
    enveloped,
    mirrored_headers,
    read_event,
    stdio_args,
)

EXT = "io.modelcontextprotocol/tasks"
TASKS = {"extensions": {EXT: {}}}
ASKABLE = {**TASKS, "elicitation": {}}
CAPS = "io.modelcontextprotocol/clientCapabilities"
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
TERMINAL = {"completed", "failed", "cancelled"}


class Stateless:
    """A raw 2026-07-28 Streamable HTTP client: one POST per request, headers mirrored."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http, self.url, self.ids = http, url, 0

    async def call(self, method: str, params: dict[str, Any] | None = None, *,
                   caps: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
                   drop: tuple[str, ...] = ()) -> tuple[int, dict[str, Any]]:
        """The HTTP status and the JSON-RPC response of one request (``caps``: the client
        capabilities declared; ``headers`` add or replace; ``drop`` leaves some out)."""
        self.ids += 1
        body = {"jsonrpc": "2.0", "id": self.ids, "method": method,
                "params": enveloped(params, **{CAPS: caps if caps is not None else ASKABLE})}
        sent = {"Accept": MCP_ACCEPT, "Content-Type": "application/json",
                **mirrored_headers(body), **(headers or {})}
        for name in drop:
            sent.pop(name, None)
        async with self.http.post(self.url, data=orjson.dumps(body), headers=sent) as resp:
            assert resp.content_type == "application/json", resp.content_type
            return resp.status, orjson.loads(await resp.read())

    async def result(self, method: str, params: dict[str, Any] | None = None,
                     **kwargs: Any) -> dict[str, Any]:
        status, reply = await self.call(method, params, **kwargs)
        assert status == 200 and "result" in reply, reply
        return reply["result"]  # type: ignore[no-any-return]

    async def error(self, method: str, params: dict[str, Any] | None = None,
                    **kwargs: Any) -> tuple[int, dict[str, Any]]:
        status, reply = await self.call(method, params, **kwargs)
        assert "error" in reply, reply
        return status, reply["error"]

    async def start(self, tool: str, arguments: dict[str, Any] | None = None,
                    **kwargs: Any) -> str:
        created = await self.result("tools/call", {"name": tool, "arguments": arguments or {}},
                                    **kwargs)
        assert created["resultType"] == "task", created
        return created["taskId"]  # type: ignore[no-any-return]

    async def wait(self, task_id: str, until: set[str] = TERMINAL) -> dict[str, Any]:
        """Poll ``tasks/get`` until the task's status is one of ``until``."""
        async with asyncio.timeout(10):
            while True:
                task = await self.result("tasks/get", {"taskId": task_id})
                if task["status"] in until:
                    return task
                await asyncio.sleep(0.05)


@pytest.fixture
async def server(start_mcp_server: StartServer) -> RunningServer:
    return await start_mcp_server(name="test-server", profile="conformance")


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[Stateless]:
    async with aiohttp.ClientSession() as http:
        yield Stateless(http, server.base_url + "/mcp")


def runner(server: RunningServer) -> Any:
    return server.state.dispatcher.context.tasks


async def eventually(check: Any, timeout: float = 5.0) -> None:
    """Wait (bounded) until ``check()`` holds: the runner has no event to wait on for the
    end of work it cancelled, so this looks every few milliseconds."""
    async with asyncio.timeout(timeout):
        while True:
            if check():
                return
            await asyncio.sleep(0.02)


# ------------------------------------------------------------------ negotiation


async def test_discover_declares_the_extension_only_where_a_tool_can_be_a_task(
        client: Stateless, start_mcp_server: StartServer) -> None:
    caps = (await client.result("server/discover"))["capabilities"]
    assert caps["extensions"] == {EXT: {}} and "tasks" not in caps
    tools = {t["name"]: t for t in (await client.result("tools/list"))["tools"]}
    assert tools["slow_compute"]["execution"] == {"taskSupport": "optional"}
    assert tools["failing_job"]["execution"] == {"taskSupport": "required"}
    assert "execution" not in tools["greet"]
    plain = await start_mcp_server(name="plain")  # the seed's five tools: no task at all
    async with aiohttp.ClientSession() as http:
        bare = Stateless(http, plain.base_url + "/mcp")
        assert "extensions" not in (await bare.result("server/discover"))["capabilities"]


async def test_a_client_without_the_extension_gets_no_task(client: Stateless) -> None:
    sync = await client.result("tools/call", {"name": "slow_compute",
                                              "arguments": {"seconds": 0}}, caps={})
    assert sync["resultType"] == "complete" and "taskId" not in sync
    assert sync["content"][0]["text"].startswith("Computed job")
    status, err = await client.error("tools/call", {"name": "failing_job", "arguments": {}},
                                     caps={})
    assert status == 400 and err["code"] == -32021
    assert err["data"] == {"requiredCapabilities": {"extensions": {EXT: {}}}}
    for method, params in (("tasks/get", {"taskId": "x"}), ("tasks/cancel", {"taskId": "x"}),
                           ("tasks/update", {"taskId": "x", "inputResponses": {}})):
        status, err = await client.error(method, params, caps={})
        assert status == 400 and err["code"] == -32021, method


async def test_removed_methods_and_the_legacy_task_param(client: Stateless) -> None:
    for method in ("tasks/result", "tasks/list"):
        status, err = await client.error(method, {"taskId": "x"})
        assert status == 404 and err["code"] == -32601
    # A 2025-11-25 client's `task` hint neither errs nor makes a task of a sync-only tool.
    greeting = await client.result("tools/call", {"name": "greet", "arguments": {"name": "A"},
                                                  "task": {"ttl": 1000}})
    assert greeting["resultType"] == "complete" and greeting["content"][0]["text"] == "Hello, A!"


# ------------------------------------------------------------------ the life of a task


async def test_create_poll_complete(client: Stateless) -> None:
    created = await client.result("tools/call", {"name": "slow_compute",
                                                 "arguments": {"seconds": 0.3, "label": "L"}})
    assert created["resultType"] == "task" and created["status"] == "working"
    assert not {"task", "result", "error", "inputRequests", "requestState", "ttl",
                "pollInterval"} & set(created)
    assert ISO.match(created["createdAt"]) and ISO.match(created["lastUpdatedAt"])
    assert isinstance(created["ttlMs"], int) and created["ttlMs"] > 0
    assert isinstance(created["pollIntervalMs"], int) and created["pollIntervalMs"] > 0
    assert len(created["taskId"]) >= 40  # 256 random bits: nobody guesses one
    first = await client.result("tasks/get", {"taskId": created["taskId"]})
    assert first["taskId"] == created["taskId"] and first["resultType"] == "complete"
    assert first["status"] == "working" and "result" not in first
    done = await client.wait(created["taskId"])
    assert done["status"] == "completed" and "requestState" not in done
    assert done["result"]["content"][0]["text"] == "Computed L in 0.3s"
    assert done["result"]["structuredContent"] == {"label": "L", "seconds": 0.3}
    assert "_meta" not in done["result"]


async def test_tool_errors_complete_and_protocol_errors_fail(client: Stateless) -> None:
    tool_error = await client.wait(await client.start("failing_job"))
    assert tool_error["status"] == "completed" and tool_error["result"]["isError"] is True
    failed = await client.wait(await client.start("protocol_error_job"))
    assert failed["status"] == "failed" and "result" not in failed
    assert failed["error"]["code"] == -32603 and "backend" in failed["error"]["message"]


async def test_cancel_settles_cancelled_and_is_idempotent(client: Stateless,
                                                          server: RunningServer) -> None:
    task_id = await client.start("slow_compute", {"seconds": 60})
    ack = await client.result("tasks/cancel", {"taskId": task_id})
    assert ack["resultType"] == "complete"
    assert not {"taskId", "status", "result", "error", "inputRequests"} & set(ack)
    assert (await client.result("tasks/get", {"taskId": task_id}))["status"] == "cancelled"
    await eventually(lambda: runner(server).running == 0)  # the work really stopped
    again = await client.result("tasks/cancel", {"taskId": task_id})
    assert again["resultType"] == "complete"
    done = await client.wait(await client.start("slow_compute", {"seconds": 0}))
    await client.result("tasks/cancel", {"taskId": done["taskId"]})
    assert (await client.result("tasks/get", {"taskId": done["taskId"]}))["status"] == \
        "completed"


async def test_a_closed_response_stream_does_not_stop_the_task(client: Stateless) -> None:
    # The CreateTaskResult ends the POST; the work goes on without it.
    task_id = await client.start("slow_compute", {"seconds": 0.2})
    assert (await client.wait(task_id))["status"] == "completed"


# ------------------------------------------------------------------ input


async def test_a_task_waits_for_input_and_resumes(client: Stateless) -> None:
    task_id = await client.start("confirm_delete", {"filename": "a.txt"})
    waiting = await client.wait(task_id, {"input_required", *TERMINAL})
    assert waiting["status"] == "input_required"
    [(key, request)] = waiting["inputRequests"].items()
    assert request["method"] == "elicitation/create"
    assert "a.txt" in request["params"]["message"]
    # An answer that is no elicitation result is refused; unknown keys are ignored.
    status, err = await client.error("tasks/update", {"taskId": task_id,
                                                      "inputResponses": {key: {"x": 1}}})
    assert status == 400 and err["code"] == -32602
    ack = await client.result("tasks/update", {"taskId": task_id,
                                               "inputResponses": {"nope": {"action": "accept"}}})
    assert ack["resultType"] == "complete" and "status" not in ack
    ack = await client.result("tasks/update", {"taskId": task_id, "inputResponses": {
        key: {"action": "accept", "content": {"confirm": True}}}})
    done = await client.wait(task_id)
    assert done["status"] == "completed" and done["result"]["content"][0]["text"].startswith(
        "Deleted a.txt")
    # The key was answered: answering it again changes nothing.
    await client.result("tasks/update", {"taskId": task_id, "inputResponses": {
        key: {"action": "decline"}}})
    assert (await client.result("tasks/get", {"taskId": task_id}))["status"] == "completed"
    # A client that cannot answer an elicitation is not asked: the task fails with -32021.
    mute = await client.wait(await client.start("confirm_delete", {"filename": "b"},
                                                caps=TASKS))
    assert mute["status"] == "failed" and mute["error"]["code"] == -32021
    assert "elicitation" in mute["error"]["data"]["requiredCapabilities"]


async def test_partial_answers_keep_the_task_waiting(client: Stateless) -> None:
    task_id = await client.start("multi_input")
    async with asyncio.timeout(5):  # the two questions are asked one after the other
        while True:
            task = await client.wait(task_id, {"input_required"})
            if len(task["inputRequests"]) == 2:
                break
            await asyncio.sleep(0.05)
    first, second = task["inputRequests"]
    await client.result("tasks/update", {"taskId": task_id, "inputResponses": {
        first: {"action": "accept", "content": {"name": "Ada", "confirm": True}}}})
    after = await client.result("tasks/get", {"taskId": task_id})
    assert after["status"] == "input_required" and list(after["inputRequests"]) == [second]
    await client.result("tasks/update", {"taskId": task_id, "inputResponses": {
        second: {"action": "accept", "content": {"name": "Ada", "confirm": True}}}})
    done = await client.wait(task_id)
    assert done["result"]["content"][0]["text"] == "Got name=Ada, confirm=True"


async def test_input_required_then_task(client: Stateless) -> None:
    """A required-task tool that asks first: an input_required round, then the task."""
    round1 = await client.result("tools/call", {"name": "test_tool_with_task", "arguments": {}},
                                 caps=ASKABLE)
    assert round1["resultType"] == "input_required" and "taskId" not in round1
    [key] = round1["inputRequests"]
    round2 = await client.result("tools/call", {
        "name": "test_tool_with_task", "arguments": {}, "requestState": round1["requestState"],
        "inputResponses": {key: {"action": "accept", "content": {"name": "Alice"}}},
    }, caps=ASKABLE)
    assert round2["resultType"] == "task"
    assert "requestState" not in round2 and "inputRequests" not in round2
    done = await client.wait(round2["taskId"])
    assert "Alice" in done["result"]["content"][0]["text"]


# ------------------------------------------------------------------ headers


async def test_task_methods_mirror_the_task_id_in_mcp_name(client: Stateless) -> None:
    task_id = await client.start("slow_compute", {"seconds": 30})
    status, err = await client.error("tasks/get", {"taskId": task_id}, drop=("Mcp-Name",))
    assert status == 400 and err["code"] == -32020
    status, err = await client.error("tasks/cancel", {"taskId": task_id},
                                     headers={"Mcp-Name": "another-task"})
    assert status == 400 and err["code"] == -32020
    status, err = await client.error("tools/call", {"name": "greet",
                                                    "arguments": {"name": "x"}},
                                     headers={"Mcp-Method": "tasks/get"})
    assert status == 400 and err["code"] == -32020
    # The header check ran first: the task was not cancelled.
    assert (await client.result("tasks/get", {"taskId": task_id}))["status"] == "working"
    await client.result("tasks/cancel", {"taskId": task_id})


# ------------------------------------------------------------------ hostile input


async def test_forged_and_malformed_task_ids(client: Stateless) -> None:
    real = await client.start("slow_compute", {"seconds": 0})
    forged = real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")
    for bad in (forged, "", "x" * 5000, "../../etc/passwd", "\u202e\x1b[2J"):
        encoded = "=?base64?" + base64.b64encode(bad.encode()).decode() + "?="
        status, err = await client.error("tasks/get", {"taskId": bad},
                                         headers={"Mcp-Name": encoded})
        assert status == 400 and err["code"] == -32602, bad
        assert "\x1b" not in err["message"] and len(err["message"]) < 300
    status, err = await client.error("tasks/get", {"taskId": None}, drop=("Mcp-Name",))
    assert status == 400 and err["code"] == -32602
    for bad_id in (42, ["x"], {"a": 1}):  # no header can mirror these: refused either way
        status, err = await client.error("tasks/get", {"taskId": bad_id},
                                         headers={"Mcp-Name": "42"})
        assert status == 400 and err["code"] in (-32020, -32602)
    status, err = await client.error("tasks/update", {"taskId": real, "inputResponses": [1]})
    assert status == 400 and err["code"] == -32602
    status, err = await client.error("tasks/cancel", {"taskId": forged})
    assert err["code"] == -32602


async def test_flood_past_the_per_client_cap(start_mcp_server: StartServer) -> None:
    server = await start_mcp_server(profile="conformance", max_tasks_per_client=3,
                                    max_tasks=5)
    async with aiohttp.ClientSession() as http:
        client = Stateless(http, server.base_url + "/mcp")
        held = [await client.start("slow_compute", {"seconds": 60}) for _ in range(3)]
        status, err = await client.error("tools/call", {"name": "slow_compute",
                                                        "arguments": {"seconds": 60}})
        assert status == 400 and err["code"] == -32600 and "Too many tasks" in err["message"]
        # A session of its own is another client (until the server's total is reached).
        peers = [await connect("websocket", server) for _ in range(2)]
        try:
            results = []
            for peer in peers:
                reply = await peer.modern_request(
                    "tools/call", {"name": "slow_compute", "arguments": {"seconds": 60}},
                    **{CAPS: TASKS})
                results.append(reply)
            assert results[0]["result"]["resultType"] == "task"
            assert results[1]["result"]["resultType"] == "task"  # 5 tasks: the server's cap
            third = await peers[0].modern_request(
                "tools/call", {"name": "slow_compute", "arguments": {"seconds": 60}}, id=2,
                **{CAPS: TASKS})
            assert third["error"]["code"] == -32600
            assert "server holds 5" in third["error"]["message"]
            # Cancelled tasks still count until they expire: the cap bounds what is kept.
            await client.result("tasks/cancel", {"taskId": held[0]})
            status, err = await client.error("tools/call", {"name": "slow_compute",
                                                            "arguments": {"seconds": 60}})
            assert err["code"] == -32600
        finally:
            for peer in peers:
                await peer.close()
        # Their sessions ended: their tasks are gone, and their work stopped.
        await eventually(lambda: runner(server).running == 2)


async def test_tasks_expire_after_their_ttl(start_mcp_server: StartServer) -> None:
    server = await start_mcp_server(profile="conformance", task_ttl=1.0,
                                    max_tasks_per_client=2)
    async with aiohttp.ClientSession() as http:
        client = Stateless(http, server.base_url + "/mcp")
        created = await client.result("tools/call", {"name": "slow_compute",
                                                     "arguments": {"seconds": 60}})
        assert created["ttlMs"] == 1000
        quick = await client.start("slow_compute", {"seconds": 0})
        assert (await client.wait(quick))["status"] == "completed"
        await asyncio.sleep(1.2)
        for task_id in (created["taskId"], quick):
            status, err = await client.error("tasks/get", {"taskId": task_id})
            assert status == 400 and err["code"] == -32602
        await eventually(lambda: runner(server).running == 0)
        # Expired tasks no longer count: the client may start new ones.
        await client.start("slow_compute", {"seconds": 0})
        await client.start("slow_compute", {"seconds": 0})


# ------------------------------------------------------------------ sessions and eras


async def test_a_sessions_tasks_are_its_own(server: RunningServer, client: Stateless) -> None:
    a = await connect("websocket", server)
    b = await connect("websocket", server)
    try:
        created = (await a.modern_request("tools/call", {
            "name": "slow_compute", "arguments": {"seconds": 30}}, **{CAPS: TASKS}))["result"]
        task_id = created["taskId"]
        mine = await a.modern_request("tasks/get", {"taskId": task_id}, id=2, **{CAPS: TASKS})
        assert mine["result"]["status"] == "working"
        for peer in (b,):
            theirs = await peer.modern_request("tasks/cancel", {"taskId": task_id},
                                               **{CAPS: TASKS})
            assert theirs["error"]["code"] == -32602
        # The stateless scope does not see a session's task.
        status, err = await client.error("tasks/get", {"taskId": task_id})
        assert status == 400 and err["code"] == -32602
        still = await a.modern_request("tasks/get", {"taskId": task_id}, id=3, **{CAPS: TASKS})
        assert still["result"]["status"] == "working"
        # ...and a stateless client's task is no session's.
        loose = await client.start("slow_compute", {"seconds": 30})
        other = await a.modern_request("tasks/get", {"taskId": loose}, id=4, **{CAPS: TASKS})
        assert other["error"]["code"] == -32602
        await client.result("tasks/cancel", {"taskId": loose})
    finally:
        await a.close()
        await b.close()
    # The session ended: nobody can read its task any more, so its work is stopped.
    await eventually(lambda: runner(server).running == 0)


async def ws_or_stdio(transport: str, server: RunningServer) -> RawPeer:
    if transport == "stdio":
        return await StdioPeer.spawn(*stdio_args(server), "--profile", "conformance")
    return await connect(transport, server)


@pytest.mark.parametrize("transport", ["websocket", "stdio", "sse"])
async def test_tasks_over_stream_transports(transport: str, server: RunningServer) -> None:
    peer = await ws_or_stdio(transport, server)
    try:
        created = (await peer.modern_request("tools/call", {
            "name": "confirm_delete", "arguments": {"filename": "b.txt"}},
            **{CAPS: ASKABLE}))["result"]
        task_id = created["taskId"]

        async def poll(until: set[str]) -> dict[str, Any]:
            async with asyncio.timeout(10):
                while True:
                    task = (await peer.modern_request("tasks/get", {"taskId": task_id},
                                                      **{CAPS: TASKS}))["result"]
                    if task["status"] in until:
                        return task  # type: ignore[no-any-return]
                    await asyncio.sleep(0.05)

        task = await poll({"input_required"})
        [key] = task["inputRequests"]
        ack = await peer.modern_request("tasks/update", {"taskId": task_id, "inputResponses": {
            key: {"action": "decline"}}}, **{CAPS: TASKS})
        assert ack["result"]["resultType"] == "complete"
        task = await poll(TERMINAL)
        assert task["status"] == "completed"
        assert task["result"]["content"][0]["text"] == "Kept b.txt"
    finally:
        await peer.close()


async def test_the_handshake_era_has_no_tasks(server: RunningServer) -> None:
    peer = await connect("websocket", server)
    try:
        await peer.initialize()
        missing = await peer.request("tasks/get", {"taskId": "x"}, id=1)
        assert missing["error"]["code"] == -32601
        sync = await peer.request("tools/call", {"name": "slow_compute",
                                                 "arguments": {"seconds": 0}}, id=2)
        assert sync["result"]["content"][0]["text"].startswith("Computed")
        assert "resultType" not in sync["result"]
        required = await peer.request("tools/call", {"name": "failing_job", "arguments": {}},
                                      id=3)
        assert required["error"]["code"] == -32021
        assert runner(server).running == 0
    finally:
        await peer.close()


async def test_shutdown_stops_running_tasks(tmp_path: Path) -> None:
    server = await start_server(ServerSettings(port=0, root=tmp_path, profile="conformance"))
    try:
        async with aiohttp.ClientSession() as http:
            client = Stateless(http, server.base_url + "/mcp")
            await client.start("slow_compute", {"seconds": 60})
        tasks = runner(server)
        assert tasks.running == 1
    finally:
        async with asyncio.timeout(5):
            await server.close()
    await eventually(lambda: tasks.running == 0)


# ------------------------------------------------------------------ status notifications


async def test_status_notifications_on_the_listen_stream(client: Stateless) -> None:
    task_id = await client.start("confirm_delete", {"filename": "n.txt"})
    other = await client.start("slow_compute", {"seconds": 30})
    body = {"jsonrpc": "2.0", "id": 99, "method": "subscriptions/listen", "params": enveloped(
        {"notifications": {"taskIds": [task_id, "forged-id"]}}, **{CAPS: ASKABLE})}
    headers = {"Accept": MCP_ACCEPT, "Content-Type": "application/json",
               **mirrored_headers(body)}
    async with client.http.post(client.url, data=orjson.dumps(body), headers=headers) as resp:
        assert resp.content_type == "text/event-stream"

        async def next_message() -> dict[str, Any]:
            while True:
                event = await read_event(resp.content)
                assert event is not None
                if event.data:
                    return orjson.loads(event.data)  # type: ignore[no-any-return]

        ack = await next_message()
        assert ack["method"] == "notifications/subscriptions/acknowledged"
        assert ack["params"]["notifications"] == {"taskIds": [task_id]}
        waiting = await client.wait(task_id, {"input_required"})
        [key] = waiting["inputRequests"]
        await client.result("tasks/update", {"taskId": task_id, "inputResponses": {
            key: {"action": "accept", "content": {"confirm": False}}}})
        await client.result("tasks/cancel", {"taskId": other})  # not listened to
        seen = []
        async with asyncio.timeout(5):
            while not seen or seen[-1]["params"]["status"] != "completed":
                note = await next_message()
                assert note["method"] == "notifications/tasks"
                assert note["params"]["taskId"] == task_id
                seen.append(note)
        assert seen[-1]["params"]["result"]["content"][0]["text"] == "Kept n.txt"
    status, err = await client.error("subscriptions/listen", {
        "notifications": {"taskIds": [task_id]}}, caps={})
    assert status == 400 and err["code"] == -32021
    status, err = await client.error("subscriptions/listen", {
        "notifications": {"taskIds": ["x"] * 1000}})
    assert status == 400 and err["code"] == -32602
