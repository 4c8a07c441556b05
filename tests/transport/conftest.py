"""Fixtures of the client tests: the scripted server and the transport parameter."""

from ..client.scripted import start_scripted, transport_kind

__all__ = ["start_scripted", "transport_kind"]
