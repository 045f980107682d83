"""A free TCP port on 127.0.0.1, for local servers started by the tests, the benchmark and
`make dev` (one helper: they all need the same thing)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port nothing listens on right now (the OS picks it; a race with another process that
    binds it before us is possible, but only between two binds on this machine)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
