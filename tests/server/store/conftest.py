"""The store tests run against a real ``redis-server`` (see :mod:`tests.redis_server`)."""

from tests.redis_server import redis_server, redis_url

from .stores import open_redis

__all__ = ["open_redis", "redis_server", "redis_url"]
