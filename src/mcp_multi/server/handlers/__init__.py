"""The server's MCP methods, one module per area, each handler registered by method and era.

``lifecycle`` (initialize, ping, server/discover), ``tools``, ``resources`` (with
subscribe/unsubscribe), ``prompts``, ``completion``, ``logging`` (logging/setLevel and the
progress and log notifications), ``subscriptions`` (subscriptions/listen), ``tasks`` (the tasks
extension). Importing this package registers them all in :data:`ROUTER`, which the dispatcher
routes by.
"""

from . import completion, lifecycle, logging, prompts, resources, subscriptions, tasks, tools
from .router import ROUTER, Call, Handler, Route, Router, ServerContext, route

__all__ = ["ROUTER", "Call", "Handler", "Route", "Router", "ServerContext", "completion",
           "lifecycle", "logging", "prompts", "resources", "route", "subscriptions", "tasks",
           "tools"]
