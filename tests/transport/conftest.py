"""Fixtures of the transport tests: the scripted servers and the transport parameter."""

from ..client.scripted import start_scripted, transport_kind
from .http_script import start_http_script

__all__ = ["start_http_script", "start_scripted", "transport_kind"]
