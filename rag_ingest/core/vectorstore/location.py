"""The one spelling of "where points live" that the registry names targets by.

Writers register targets under ``VectorStore.location``; sensors, planning and health look them
up under ``VectorStoreResource.location``. Both come from :func:`store_location`, so two
spellings of one deployment (a trailing slash, an upper-case host, user info, a relative or
symlinked folder) can never name two targets. Importing this module loads no Qdrant library.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit


def server_location(url: str) -> str:
    """``server:<scheme>://<host>[:<port>]<path>``: scheme and host lower-case, no user info,
    query or fragment (they may hold secrets), no trailing ``/``.

    The port is kept as written: ``http://qdrant`` and ``http://qdrant:6333`` reach the same
    server (qdrant-client's default port) but stay two spellings, because changing either would
    orphan the targets already registered under it.
    """
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return "server:" + urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def folder_location(engine: str, path: str | os.PathLike[str]) -> str:
    """``<engine>:<folder>`` with the folder absolute and its symlinks resolved."""
    return f"{engine}:{os.path.realpath(os.fspath(path))}"


def store_location(
    engine: str, *, url: str | None = None, path: str | os.PathLike[str] | None = None
) -> str:
    """The location of the store ``open_vector_store(engine, url=url, path=path)`` opens."""
    if engine == "server":
        if not url:
            raise ValueError("engine 'server' needs url")
        return server_location(url)
    if path is None:
        raise ValueError(f"engine {engine!r} needs path")
    return folder_location(engine, path)
