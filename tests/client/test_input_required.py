"""A 2026-07-28 ``input_required`` result the client cannot satisfy is shown as incomplete,
never as ``Result:``.

When the handlers cannot answer (none given) or the server keeps asking, the library
raises; the shell, broadcast and test mode each show it as a failure naming what the server
asked for; conformance mode counts it as an answer (the server did answer), shown as
incomplete.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from mcp_multi.client.multi import MultiServerMCPClient
from mcp_multi.client.testmode import run_checks

from ..transport.http_script import Recorded, StartHTTPScript
from .test_shell import run_client, shell_lines

DISCOVERED = {"resultType": "complete", "supportedVersions": ["2026-07-28"],
              "capabilities": {"tools": {}},
              "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "asker", "version": "1"}}}
TOOLS = {"resultType": "complete",
         "tools": [{"name": "ask", "inputSchema": {"type": "object"}}]}
INPUT_REQUIRED = {
    "resultType": "input_required",
    "inputRequests": {"confirm": {"method": "elicitation/create",
                                  "params": {"message": "Sure?", "requestedSchema": {
                                      "type": "object", "properties": {}}}}},
    "requestState": "opaque",
}


async def asker(request: web.Request, recorded: Recorded) -> web.StreamResponse:
    """A 2026-07-28 endpoint whose every tool call needs input (an elicitation)."""
    result: dict[str, Any] = {
        "server/discover": DISCOVERED, "tools/list": TOOLS,
    }.get(recorded.rpc_method or "", INPUT_REQUIRED)
    return web.json_response({"jsonrpc": "2.0", "id": recorded.body["id"], "result": result})


async def test_input_required_is_a_failure_naming_what_was_asked(
        start_http_script: StartHTTPScript) -> None:
    script = await start_http_script()
    script.post = asker
    async with MultiServerMCPClient(timeout=10) as client:
        await client.add("s", script.url)
        lines = await shell_lines(client, "call s ask {}\nbroadcast ask {}\n")
        assert lines[0].startswith("Error: ") and "elicitation/create" in lines[0], lines
        assert lines[1].startswith("[s] Error: ") and "elicitation/create" in lines[1], lines
        report = await run_checks(client)
    call = next(r for r in report.results if r.check == "call ask")
    assert call.status == "FAIL" and "elicitation/create" in call.detail


async def test_conformance_mode_counts_input_required_as_an_answer(
        start_http_script: StartHTTPScript) -> None:
    script = await start_http_script()
    script.post = asker
    code, out, err = await run_client(["--mode", "conformance", script.url], "")
    assert code == 0, out + err
    assert ("call ask {}: incomplete: conformance: tools/call still needs input after 8 "
            "rounds (elicitation/create)") in out.splitlines(), out
