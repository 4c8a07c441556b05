"""Runtime configuration: the live policy, its reload, and the admin tool.

:class:`Permissions` is what every handler asks (``call.server.permissions``): with no policy
loaded it answers ``None`` and nothing is filtered; with one, the caller's
:class:`~.policy.Access`. Two things change it while the server runs, and each tells exactly
the sessions whose view changed (``notifications/{tools,resources,prompts}/list_changed``
through the server's :class:`~mcp_multi.server.notifier.Notifier`):

- ``reload()`` (the CLI calls it on SIGHUP) reads the policy file again; a file that does not
  load leaves the previous policy in force and logs one line saying why;
- the admin tool, ``admin_tools``, visible to roles the policy marks ``admin = true`` only,
  lists the server's tools and enables or disables one (``--tools`` bounds what it can
  enable: a tool left out at start-up stays out). A disabled tool leaves ``tools/list`` and
  its calls are refused with the server's "not enabled" error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from ...protocol import methods as m
from ...protocol.text import clip
from ..tools import Tool, ToolContext, ToolError, UnknownToolError
from .policy import ADMIN_TOOL, Access, Policy, PolicyError
from .principal import Principal

if TYPE_CHECKING:
    from ..notifier import ListKind, Notifier
    from ..prompts import PromptRegistry
    from ..resources import Resources
    from ..tools import ToolRegistry

__all__ = ["Permissions", "admin_tool"]

logger = logging.getLogger(__name__)

SHOWN = 200


class Permissions:
    """What every caller may use now: the policy (``None``: all, to everyone) and the tools
    enabled now. One per server; :meth:`attach` gives it the server's registries."""

    def __init__(self, policy: Policy | None = None, path: Path | None = None) -> None:
        self.policy = policy
        self.path = path
        self._parts: tuple[ToolRegistry, Resources, PromptRegistry, Notifier] | None = None
        self._reloads: set[asyncio.Task[bool]] = set()  # SIGHUP reloads under way

    def attach(self, registry: ToolRegistry, resources: Resources, prompts: PromptRegistry,
               notifier: Notifier) -> None:
        """Use the server's tools, resources, prompts and notifier (once they exist)."""
        self._parts = (registry, resources, prompts, notifier)

    @property
    def registry(self) -> ToolRegistry:
        """The server's tools."""
        return self._attached()[0]

    def _attached(self) -> tuple[ToolRegistry, Resources, PromptRegistry, Notifier]:
        if self._parts is None:
            raise RuntimeError("Permissions.attach() was not called")
        return self._parts

    def access(self, principal: Principal) -> Access | None:
        """What ``principal`` may use; ``None`` when no policy is loaded (everything)."""
        policy = self.policy
        return None if policy is None else policy.access(principal)

    def principal_for_token(self, token: str) -> Principal | None:
        """The caller a static token of the policy in force stands for (``None``: not one
        of them, or no policy). What the guard asks first, so a reload applies at once."""
        policy = self.policy
        return None if policy is None else policy.principal_for_token(token)

    # ---------------------------------------------------------------- changes

    def reload_on_hangup(self) -> None:
        """Reload the policy file on ``SIGHUP`` (a server of any transport, stdio included;
        nothing where there is no policy file or no such signal). Call from the running
        loop."""
        if self.path is None or not hasattr(signal, "SIGHUP"):
            return
        loop = asyncio.get_running_loop()

        def reload() -> None:
            task = loop.create_task(self.reload())
            self._reloads.add(task)
            task.add_done_callback(self._reloads.discard)

        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signal.SIGHUP, reload)

    async def reload(self) -> bool:
        """Read the policy file again and apply it; tell the sessions whose lists changed.

        A file that does not load keeps the previous policy in force; the reason is logged
        (one line) and False returned.
        """
        if self.path is None:
            return False
        try:
            new = Policy.load(self.path)
        except PolicyError as exc:
            logger.error("policy not reloaded, the previous one stays in force: %s", exc)
            return False
        old, self.policy = self.policy, new
        logger.info("policy reloaded from %s: %d roles, %d rules, %d tokens", self.path,
                    len(new.roles), len(new.grants), len(new.tokens))
        for kind in ("tools", "resources", "prompts"):
            await self._announce(kind, old, new)
        return True

    async def set_tool_enabled(self, name: str, enabled: bool) -> bool:
        """Enable or disable tool ``name``; tell the sessions that may see it. False when it
        already was.

        Raises:
            UnknownToolError: the server has no tool ``name``.
        """
        registry, _resources, _prompts, notifier = self._attached()
        if not registry.set_enabled(name, enabled):
            return False
        logger.info("tool %s %s by an admin", name, "enabled" if enabled else "disabled")
        policy = self.policy
        affected: Callable[[Principal], bool] | None = None
        if policy is not None:
            affected = lambda principal: policy.access(principal).tool(name)  # noqa: E731
        await notifier.list_changed("tools", affected)
        return True

    async def _announce(self, kind: ListKind, old: Policy | None, new: Policy) -> None:
        seen = self._visible(kind)
        memo: dict[Principal, bool] = {}

        def affected(principal: Principal) -> bool:
            changed = memo.get(principal)
            if changed is None:
                before = None if old is None else old.access(principal)
                changed = memo[principal] = seen(before) != seen(new.access(principal))
            return changed

        await self._attached()[3].list_changed(kind, affected)

    def _visible(self, kind: ListKind) -> Callable[[Access | None], frozenset[str]]:
        """What a caller with a given access sees of the ``kind`` list (names or URIs)."""
        registry, resources, prompt_registry, _notifier = self._attached()
        if kind == "tools":
            tools = registry.list_tools()
            return lambda a: frozenset(t["name"] for t in (tools if a is None else a.tools(tools)))
        if kind == "prompts":
            prompts = prompt_registry.list_prompts()
            return lambda a: frozenset(
                p["name"] for p in (prompts if a is None else a.prompts(prompts)))
        listed, templates = resources.list_resources(), resources.list_templates()
        return lambda a: frozenset(
            [r["uri"] for r in (listed if a is None else a.resources(listed))]
            + [t["uriTemplate"] for t in (templates if a is None else a.templates(templates))])


# ------------------------------------------------------------------ the admin tool

_ACTIONS = ("list", "enable", "disable")


def admin_tool(permissions: Permissions) -> Tool:
    """The ``admin_tools`` tool of a server whose policy is ``permissions``."""

    async def handler(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        registry = permissions.registry
        action = arguments["action"]
        if action == "list":
            enabled = set(registry.names)
            listed = [{"name": n, "enabled": n in enabled} for n in registry.offered]
            return m.tool_result(orjson.dumps({"tools": listed}, option=orjson.OPT_INDENT_2)
                                 .decode())
        name = arguments.get("name")
        if not isinstance(name, str) or not name:
            raise ToolError(f"The action {action!r} needs the tool's name in \"name\"")
        if name == ADMIN_TOOL:
            raise ToolError(f"{ADMIN_TOOL} cannot be disabled or enabled: it is how an admin "
                            "configures the server")
        try:
            changed = await permissions.set_tool_enabled(name, action == "enable")
        except UnknownToolError:
            raise ToolError(f"No tool {clip(name, SHOWN)!r} on this server; its tools: "
                            f"{', '.join(registry.offered)}") from None
        state = "enabled" if action == "enable" else "disabled"
        return m.tool_result(f"Tool '{name}' {state}" if changed
                             else f"Tool '{name}' was already {state}")

    return Tool(
        name=ADMIN_TOOL,
        title="Configure the server's tools",
        description="List this server's tools with their state, or enable or disable one "
                    "while the server runs (clients are told their tool list changed)",
        input_schema={
            "type": "object",
            "properties": {
                "action": {"type": "string", "enum": list(_ACTIONS),
                           "description": "list the tools, or enable or disable one"},
                "name": {"type": "string", "description": "the tool to enable or disable"},
            },
            "required": ["action"],
            "additionalProperties": False,
        },
        handler=handler,
        annotations={"readOnlyHint": False, "destructiveHint": False,
                     "idempotentHint": True, "openWorldHint": False},
    )
