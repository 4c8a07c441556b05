"""The cluster harness itself, and what holds through nginx with or without a session store:
round robin reaches every instance, WebSocket sessions (one connection, one instance) and
stateless 2026-07-28 requests work, a killed instance is routed around and comes back."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import aiohttp
import orjson
import pytest

from mcp_multi.client.multi import MultiServerMCPClient

from .conftest import StartCluster
from .harness import NGINX_TEMPLATE, landed_on, render_nginx_conf, require_binary

MODERN = "2026-07-28"


def _modern_call(request_id: int, message: str) -> dict[str, object]:
    """A stateless ``tools/call`` of ``echo`` at 2026-07-28 (no session, any instance)."""
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"message": message},
                       "_meta": {"io.modelcontextprotocol/protocolVersion": MODERN,
                                 "io.modelcontextprotocol/clientCapabilities": {},
                                 "io.modelcontextprotocol/clientInfo":
                                     {"name": "cluster-test", "version": "1"}}}}


def _modern_headers() -> dict[str, str]:
    return {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/call", "Mcp-Name": "echo"}


def test_nginx_template_is_valid(tmp_path: Path) -> None:
    """deploy/nginx.conf, filled in, passes ``nginx -t``; a placeholder left over is refused."""
    nginx = require_binary("nginx")
    conf = tmp_path / "nginx.conf"
    conf.write_text(render_nginx_conf(NGINX_TEMPLATE.read_text(), run_dir=tmp_path,
                                      listen="127.0.0.1:1",
                                      upstreams=["127.0.0.1:2", "127.0.0.1:3"]))
    checked = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(conf), "-g",
                              "user root;"], capture_output=True, text=True, timeout=30,
                             check=False)
    assert checked.returncode == 0, checked.stderr
    with pytest.raises(ValueError, match="@OTHER@"):
        render_nginx_conf("@OTHER@", run_dir=tmp_path, listen="", upstreams=[])


async def test_round_robin_reaches_every_instance(start_cluster: StartCluster) -> None:
    cluster = await start_cluster(3)
    async with aiohttp.ClientSession() as http:
        names = []
        for _ in range(6):
            async with http.get(f"{cluster.url}/healthz") as resp:
                assert resp.status == 200
                names.append((await resp.json())["name"])
    assert set(names) == {"inst-0", "inst-1", "inst-2"}


async def test_stateless_requests_spread_over_instances(start_cluster: StartCluster) -> None:
    """2026-07-28 requests stand alone: any instance answers any of them, no store needed."""
    cluster = await start_cluster(3)
    before = await cluster.requests()
    async with aiohttp.ClientSession() as http:
        for n in range(9):
            async with http.post(f"{cluster.url}/mcp", data=orjson.dumps(_modern_call(n, f"m{n}")),
                                 headers=_modern_headers()) as resp:
                assert resp.status == 200, await resp.text()
                reply = orjson.loads(await resp.read())
            assert reply["id"] == n and reply["result"]["content"][0]["text"] == f"Echo: m{n}"
    landed = landed_on(before, await cluster.requests())
    assert len(landed) == 3 and sum(landed.values()) == 9, landed


async def test_websocket_sessions_through_nginx(start_cluster: StartCluster) -> None:
    """Each WebSocket session is one connection to one instance: the upgrade passes through
    nginx, and sessions opened one after the other land on different instances."""
    cluster = await start_cluster(3)
    before = await cluster.requests()
    ws_url = cluster.url.replace("http://", "ws://") + "/ws"
    async with MultiServerMCPClient(timeout=10) as client:
        for k in range(3):
            await client.add(f"c{k}", ws_url)
        for _ in range(5):
            for k in range(3):
                result = await client.call(f"c{k}", "echo", {"message": f"ws {k}"})
                assert result["content"][0]["text"] == f"Echo: ws {k}"
    landed = landed_on(before, await cluster.requests())
    assert len(landed) >= 2, landed


async def test_killed_instance_is_routed_around_and_comes_back(
        start_cluster: StartCluster) -> None:
    cluster = await start_cluster(3)
    await cluster.kill(1)
    assert not cluster.instances[1].running
    async with aiohttp.ClientSession() as http:
        for _ in range(6):  # nginx retries a refused connection on the next instance
            async with http.get(f"{cluster.url}/healthz") as resp:
                assert resp.status == 200
                assert (await resp.json())["name"] != "inst-1"
        port = cluster.instances[1].port
        await cluster.start(1)
        assert cluster.instances[1].port == port and cluster.instances[1].starts == 2
        seen: set[str] = set()
        async with asyncio.timeout(15):  # until nginx's fail_timeout lets it back in
            while "inst-1" not in seen:
                async with http.get(f"{cluster.url}/healthz") as resp:
                    seen.add((await resp.json())["name"])
                await asyncio.sleep(0.1)


async def test_nginx_refusals_are_json_rpc(start_cluster: StartCluster) -> None:
    """Too large a body, and no instance left to answer: JSON-RPC errors, as the servers'."""
    cluster = await start_cluster(2)
    async with aiohttp.ClientSession() as http:
        big = b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"' + b"x" * (5 << 20) + b'"}}'
        async with http.post(f"{cluster.url}/mcp", data=big, headers=_modern_headers()) as resp:
            assert resp.status == 413
            assert (await resp.json())["error"]["code"] == -32600
        for k in range(2):
            await cluster.kill(k)
        async with http.post(f"{cluster.url}/mcp", data=orjson.dumps(_modern_call(1, "x")),
                             headers=_modern_headers()) as resp:
            assert resp.status == 503
            assert "no MCP server instance" in (await resp.json())["error"]["message"]


async def test_nginx_refuses_a_huge_header_as_json_rpc(start_cluster: StartCluster) -> None:
    cluster = await start_cluster(1)
    async with aiohttp.ClientSession() as http, http.get(
            f"{cluster.url}/mcp", headers={"Last-Event-ID": "9" * 9000}) as resp:
        assert resp.status == 400
        assert "header is too large" in (await resp.json())["error"]["message"]
