"""Where a server is: the seed's ``name=host:port`` arguments turned into transport and URL.

Accepted forms of a target::

    localhost:8080            host:port, the transport chosen by --transport (or `add`'s third word)
    8080, :8080               port only, on localhost
    [::1]:8080                IPv6 literal
    ws://host:8080/ws         a WebSocket URL (ws or wss)
    http://host:8080/sse      a legacy HTTP+SSE stream
    http://host:8080/mcp      a Streamable HTTP endpoint (also any other path on http/https)
    http://host:8080          a server root: the chosen transport's usual path is added
    stdio:python server.py    a command to run, spoken to over its stdin and stdout

and any of them prefixed with ``name=``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from ..protocol.wire import DEFAULT_PATHS, PATH_HTTP
from ..transport import TRANSPORTS, parse_stdio_url, stdio_url
from .auth.oauth import OAuthSettings

__all__ = [
    "DEFAULT_TRANSPORT",
    "ServerSpec",
    "auto_name",
    "normalize_transport",
    "parse_server_arg",
    "resolve_target",
    "valid_name",
]

DEFAULT_TRANSPORT = "websocket"
_ALIASES = {
    "ws": "websocket", "websockets": "websocket", "http+sse": "sse",
    "streamable-http": "http", "streamable_http": "http", "streamablehttp": "http",
    "https": "http",
}
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*\Z")
# The transport a URL's last path segment names (``/sse`` -> sse), from the default paths.
_BY_SEGMENT = {path.rsplit("/", 1)[-1]: kind for kind, path in DEFAULT_PATHS.items()}
_HOST_PORT = re.compile(r"(?:(?P<host>\[[0-9A-Fa-f:.]+\]|[^:\[\]/\s]+)?:)?(?P<port>\d{1,5})\Z")


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """A named server: the transport to reach it by, its URL, and how to reach it.

    Attributes:
        headers: HTTP headers for this server (remote transports).
        env: environment variables for the child process (stdio).
        cwd: the child process's working directory (stdio).
        oauth: how to authorize with it (a config entry's ``oauth``; ``None``: defaults).
    """

    name: str
    transport: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict, hash=False)
    env: Mapping[str, str] = field(default_factory=dict, hash=False)
    cwd: str | None = None
    oauth: OAuthSettings | None = field(default=None, hash=False)


def valid_name(name: str) -> bool:
    """Server names are words: letters, digits, ``_``, ``-`` and ``.``."""
    return bool(_NAME.match(name))


def normalize_transport(kind: str) -> str:
    """The canonical name of a transport (``ws`` -> ``websocket``).

    Raises:
        ValueError: no such transport.
    """
    kind = _ALIASES.get(kind.lower(), kind.lower())
    if kind not in TRANSPORTS:
        raise ValueError(f"unknown transport {kind!r} (choose from {', '.join(TRANSPORTS)})")
    return kind


def parse_server_arg(arg: str) -> tuple[str | None, str]:
    """Split ``name=target`` into its parts; a bare target has no name."""
    name, sep, target = arg.partition("=")
    if sep and valid_name(name) and "://" not in name:
        return name, target
    return None, arg


def auto_name(index: int, taken: set[str] | frozenset[str] = frozenset()) -> str:
    """``server<index>``, or the next free ``server<n>`` after it."""
    while f"server{index}" in taken:
        index += 1
    return f"server{index}"


def _split_host_port(target: str) -> tuple[str, int]:
    match = _HOST_PORT.match(target.strip())
    if match is None:
        raise ValueError(f"bad server address {target!r}: expected host:port or a URL")
    port = int(match["port"])
    if not 0 < port < 65536:
        raise ValueError(f"bad port {port} in {target!r}")
    return match["host"] or "localhost", port


def resolve_target(
    target: str, transport: str | None = None, *, default: str = DEFAULT_TRANSPORT
) -> tuple[str, str]:
    """The transport and URL to reach ``target`` by.

    Args:
        target: ``host:port`` or a URL (see the module docstring).
        transport: the transport asked for; for a URL that names its transport (``ws://``,
            ``.../sse``) it must agree. ``None`` means whatever the URL says, else ``default``.
        default: the transport when neither ``transport`` nor the URL decide.

    Raises:
        ValueError: the target or the transport is not understood, or they disagree.
    """
    asked = normalize_transport(transport) if transport else None
    if target.startswith("stdio:"):
        if asked not in (None, "stdio"):
            raise ValueError(f"{target!r} is a command to run (stdio), not {asked}")
        return "stdio", stdio_url(parse_stdio_url(target))
    if asked == "stdio" or (asked is None and "://" not in target
                            and normalize_transport(default) == "stdio"):
        raise ValueError(f"the stdio transport runs a command: stdio:COMMAND ARGS, "
                         f"not {target!r}")
    if "://" not in target:
        host, port = _split_host_port(target)
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        kind = asked or normalize_transport(default)
        return kind, TRANSPORTS[kind].url_for(host, port)

    parts = urlsplit(target)
    scheme = parts.scheme.lower()
    if not parts.netloc:
        raise ValueError(f"bad server URL {target!r}: no host")
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when asked for it
    except ValueError:
        raise ValueError(f"bad port in {target!r}") from None
    path = parts.path.rstrip("/")
    implied: str | None
    if scheme in ("ws", "wss"):
        implied = "websocket"
    elif scheme in ("http", "https"):
        implied = _BY_SEGMENT.get(path.rsplit("/", 1)[-1])
        if implied is None and path:
            # A path that is none of ours: some other server's endpoint, and servers speak
            # Streamable HTTP unless told otherwise.
            implied = asked or "http"
    else:
        raise ValueError(f"bad server URL {target!r}: scheme must be ws, wss, http or https")
    if implied is not None and asked is not None and implied != asked:
        raise ValueError(f"{target!r} is a {implied} URL, not {asked}")
    kind = implied or asked or normalize_transport(default)
    if kind not in TRANSPORTS:
        raise ValueError(f"the {kind!r} transport is not available in this client")
    secure = scheme in ("https", "wss")
    # A server root, with or without its trailing slash, gets the transport's usual path.
    web = ("wss", "ws") if kind == "websocket" else ("https", "http")
    scheme = web[0] if secure else web[1]
    path = parts.path if path else DEFAULT_PATHS.get(kind, PATH_HTTP)
    return kind, urlunsplit((scheme, parts.netloc, path, parts.query, ""))
