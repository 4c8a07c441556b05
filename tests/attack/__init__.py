"""Hostile peers: each test drives the server or the client as an attacker would, over real
sockets, bounded in count and time."""
