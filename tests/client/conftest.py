"""Fixtures of the client tests: the scripted servers and the transport parameter."""

from ..transport.http_script import start_http_script
from .scripted import start_scripted, transport_kind

__all__ = ["start_http_script", "start_scripted", "transport_kind"]
