"""The official MCP conformance suite (``conformance client``) against our client.

The suite starts ``mcp-client --mode conformance`` with the URL of each scenario's server
appended, watches the traffic, and judges it. Every client scenario must pass at every
version the suite lists for it (``conformance list``): the handshake and the stateless
revision, elicitation defaults, SSE retry, input_required retries with ``requestState``,
the standard and ``Mcp-Param-*`` headers, JSON Schema passed through, and every ``auth/``
scenario of the core specification (discovery, registration, PKCE, scopes and step-up,
token endpoint authentication, the 2025-03-26 fallbacks, issuer checks, migration). The
``auth/`` scenarios of extensions, which the suite lists as ``[extension]`` without a
version, are in :data:`LISTED_EXTENSIONS` (run without ``--spec-version``).

Each scenario run is a test of its own: the test workers (pytest-xdist) run several side by
side, each scenario's servers on ports of their own, and each run has the whole
:data:`RUN_TIMEOUT` to itself.
"""

from __future__ import annotations

import itertools
import re
import shlex
import sys
from pathlib import Path

import pytest

from .runner import INSTALL_TIMEOUT, REPO, conformance_tool, installed, run_tool

RUN_TIMEOUT = 120.0
# The suite splits the command on spaces (no quoting), so the paths must have none.
CLIENT = f"{sys.executable} {REPO / 'mcp_client.py'} --mode conformance"
# (scenario, the versions `conformance list` gives for it)
LISTED = [
    ("initialize", ("2025-06-18", "2025-11-25")),
    ("tools_call", ("2025-06-18", "2025-11-25", "2026-07-28")),
    ("elicitation-sep1034-client-defaults", ("2025-11-25",)),
    ("sse-retry", ("2025-11-25",)),
    ("request-metadata", ("2026-07-28",)),
    ("sep-2322-client-request-state", ("2026-07-28",)),
    ("http-standard-headers", ("2026-07-28",)),
    ("http-custom-headers", ("2026-07-28",)),
    ("http-invalid-tool-headers", ("2026-07-28",)),
    ("json-schema-ref-no-deref", ("2026-07-28",)),
    ("json-schema-2020-12-preservation", ("2025-11-25", "2026-07-28")),
    # Authorization (the core specification's scenarios).
    ("auth/metadata-default", ("2025-11-25", "2026-07-28")),
    ("auth/metadata-var1", ("2025-11-25", "2026-07-28")),
    ("auth/metadata-var2", ("2025-11-25", "2026-07-28")),
    ("auth/metadata-var3", ("2025-11-25", "2026-07-28")),
    ("auth/basic-cimd", ("2025-11-25", "2026-07-28")),
    ("auth/scope-from-www-authenticate", ("2025-11-25", "2026-07-28")),
    ("auth/scope-from-scopes-supported", ("2025-11-25", "2026-07-28")),
    ("auth/scope-omitted-when-undefined", ("2025-11-25", "2026-07-28")),
    ("auth/scope-step-up", ("2025-11-25", "2026-07-28")),
    ("auth/scope-retry-limit", ("2025-11-25", "2026-07-28")),
    ("auth/token-endpoint-auth-basic", ("2025-06-18", "2025-11-25", "2026-07-28")),
    ("auth/token-endpoint-auth-post", ("2025-06-18", "2025-11-25", "2026-07-28")),
    ("auth/token-endpoint-auth-none", ("2025-06-18", "2025-11-25", "2026-07-28")),
    ("auth/pre-registration", ("2025-11-25", "2026-07-28")),
    ("auth/2025-03-26-oauth-metadata-backcompat", ("2025-03-26",)),
    ("auth/2025-03-26-oauth-endpoint-fallback", ("2025-03-26",)),
    ("auth/resource-mismatch", ("2026-07-28",)),
    ("auth/offline-access-scope", ("2026-07-28",)),
    ("auth/offline-access-not-supported", ("2026-07-28",)),
    ("auth/authorization-server-migration", ("2026-07-28",)),
    ("auth/iss-supported", ("2026-07-28",)),
    ("auth/iss-not-advertised", ("2026-07-28",)),
    ("auth/iss-supported-missing", ("2026-07-28",)),
    ("auth/iss-wrong-issuer", ("2026-07-28",)),
    ("auth/iss-unexpected", ("2026-07-28",)),
    ("auth/iss-normalized", ("2026-07-28",)),
    ("auth/metadata-issuer-mismatch", ("2026-07-28",)),
]
# The scenarios of authorization extensions (``[extension]`` in the suite's list).
# Machine-to-machine grants (SEP-1046 client credentials, workload identity, enterprise
# ID-JAG) and DPoP-bound tokens (SEP-1932), with and without nonces.
LISTED_EXTENSIONS: list[str] = [
    "auth/client-credentials-jwt",
    "auth/client-credentials-basic",
    "auth/enterprise-managed-authorization",
    "auth/wif-jwt-bearer",
    "auth/dpop",
    "auth/dpop-nonce",
]
EXTENSION = "extension"
SCENARIOS = [(scenario, version) for scenario, versions in LISTED for version in versions]
SCENARIOS += [(scenario, EXTENSION) for scenario in LISTED_EXTENSIONS]


def _args(tool: Path, scenario: str, version: str) -> list[str]:
    args = [str(tool), "client", "--command", CLIENT, "--scenario", scenario]
    if version != EXTENSION:
        args += ["--spec-version", version]
    return args


@pytest.mark.skipif(" " in sys.executable or " " in str(REPO),
                    reason="the suite cannot start a command whose path holds spaces")
@pytest.mark.timeout(INSTALL_TIMEOUT + RUN_TIMEOUT + 10)
@pytest.mark.parametrize(("scenario", "version"), SCENARIOS,
                         ids=[f"{s}@{v}" for s, v in SCENARIOS])
async def test_client_scenario_passes(scenario: str, version: str, tmp_path: Path) -> None:
    tool = conformance_tool()
    await installed(tool, tmp_path)
    args = _args(tool, scenario, version)
    try:
        code, out = await run_tool(*args, cwd=tmp_path, timeout=RUN_TIMEOUT)
    except TimeoutError:
        pytest.fail(f"{shlex.join(args)}\ntimed out after {RUN_TIMEOUT:g} s")
    assert code == 0, f"{shlex.join(args)}\n{out[-6000:]}"
    assert "OVERALL: PASSED" in out and " 0 failed, 0 warnings" in out, out[-6000:]


@pytest.mark.timeout(INSTALL_TIMEOUT + 60)
async def test_every_listed_client_scenario_is_run(tmp_path: Path) -> None:
    """The suite's own list (`conformance list`) is what LISTED covers, versions and all,
    ``auth/`` included, and LISTED_EXTENSIONS is its `[extension]` client scenarios."""
    tool = conformance_tool()
    await installed(tool, tmp_path)
    code, out = await run_tool(str(tool), "list", cwd=tmp_path, timeout=60)
    assert code == 0, out
    # The client part: the list items after its heading, up to the next heading.
    after = out.split("Client scenarios", 1)[1].splitlines()[1:]
    client_part = "\n".join(itertools.takewhile(lambda line: line.lstrip().startswith("- "),
                                                 after))
    found = re.findall(r"^\s*- (\S+) \[([^\]]+)\]", client_part, re.MULTILINE)
    listed = {name: tuple(versions.split(",")) for name, versions in found
              if versions != EXTENSION}
    extensions = {name for name, versions in found if versions == EXTENSION}
    assert any(name.startswith("auth/") for name in listed)
    assert listed == dict(LISTED)
    assert set(LISTED_EXTENSIONS) == extensions
