"""A real PostgreSQL server for the tests: an existing one, or a throwaway cluster.

``RAG_TEST_POSTGRES_URL`` (``postgresql://user:password@host:port/db``, as printed by
``scripts/ci_postgres.sh``) names an existing server. Otherwise a cluster is created with
Debian's ``postgresql`` package binaries (``/usr/lib/postgresql/<version>/bin``) in a temporary
folder, listening on 127.0.0.1 on a free port, and removed afterwards. PostgreSQL refuses to run
as root, so under uid 0 the binaries run as the ``postgres`` system user.

Either way each session gets its own scratch database, dropped at the end.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import psycopg2
import psycopg2.errors
import psycopg2.extensions

URL_ENV = "RAG_TEST_POSTGRES_URL"
SERVER_USER = "postgres"  # the system user that runs the server when we are root
START_TIMEOUT_SECONDS = 60


class PostgresUnavailable(RuntimeError):
    """No server given and no PostgreSQL binaries installed."""


@dataclass(frozen=True)
class PgServer:
    """Connection settings of one database on a PostgreSQL server."""

    host: str
    port: int
    user: str
    password: str
    dbname: str

    @classmethod
    def from_url(cls, url: str) -> PgServer:
        parts = urlsplit(url)
        if parts.scheme.split("+")[0] not in ("postgresql", "postgres"):
            raise ValueError(f"{URL_ENV} must be a postgresql:// URL, got scheme {parts.scheme!r}")
        if not parts.hostname or not parts.username:
            raise ValueError(
                f"{URL_ENV} needs a user and a host: postgresql://user:pw@host:port/db"
            )
        return cls(
            host=parts.hostname,
            port=parts.port or 5432,
            user=unquote(parts.username),
            password=unquote(parts.password or ""),
            dbname=unquote(parts.path.lstrip("/")) or "postgres",
        )

    @property
    def url(self) -> str:
        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        return f"postgresql+psycopg2://{auth}@{self.host}:{self.port}/{quote(self.dbname)}"

    def dagster_env(self) -> dict[str, str]:
        """The variables deploy/dagster.yaml reads."""
        return {
            "DAGSTER_PG_USERNAME": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_DB": self.dbname,
            "DAGSTER_PG_PORT": str(self.port),
        }

    def connect(self) -> psycopg2.extensions.connection:
        """A psycopg2 connection to this database, in autocommit mode."""

        conn = psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=self.dbname,
            connect_timeout=10,
        )
        conn.autocommit = True
        return conn

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        """Rows of one statement, on a fresh connection (closed afterwards)."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return list(cur.fetchall()) if cur.description else []
        finally:
            conn.close()


def find_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding initdb and pg_ctl."""
    found: list[tuple[int, Path]] = []
    for bindir in Path("/usr/lib/postgresql").glob("*/bin"):
        version = bindir.parent.name
        if version.isdigit() and (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            found.append((int(version), bindir))
    return max(found)[1] if found else None


def _as_server_user(argv: list[str]) -> list[str]:
    """``argv`` run as the postgres system user when we are root, else as ourselves."""
    if os.geteuid() != 0:
        return argv
    if shutil.which("runuser"):
        return ["runuser", "-u", SERVER_USER, "--", *argv]
    return ["su", SERVER_USER, "-s", "/bin/sh", "-c", subprocess.list2cmdline(argv)]


def _run(argv: list[str], cwd: Path) -> None:
    done = subprocess.run(
        _as_server_user(argv),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_SECONDS + 30,
        env={**os.environ, "LC_ALL": "C", "LANG": "C"},
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited with {done.returncode}:\n{done.stdout}\n{done.stderr}"
        )


@contextmanager
def local_cluster(port: int) -> Iterator[PgServer]:
    """A new cluster on 127.0.0.1:``port`` in a temporary folder, stopped and removed afterwards.

    The superuser is ``rag`` with a random password (scram over TCP); the unix socket lives in
    the folder too, so nothing outside it is touched.
    """
    bindir = find_bindir()
    if bindir is None:
        raise PostgresUnavailable(
            "no PostgreSQL binaries under /usr/lib/postgresql/*/bin "
            "(apt-get install postgresql, or set RAG_TEST_POSTGRES_URL)"
        )
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam(SERVER_USER)
        except KeyError as exc:
            raise PostgresUnavailable(
                f"running as root and there is no {SERVER_USER!r} user to run PostgreSQL as"
            ) from exc
    else:
        owner = None
    # Not under pytest's tmp_path: that is private to root, and the server user must reach it.
    root = Path(tempfile.mkdtemp(prefix="rag-pg-"))
    data, sockets, log = root / "data", root / "sock", root / "server.log"
    password = secrets.token_urlsafe(18)
    try:
        sockets.mkdir()
        (root / "pwfile").write_text(password + "\n")
        if owner is not None:
            for path in (root, sockets, root / "pwfile"):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        _run(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "rag",
                f"--pwfile={root / 'pwfile'}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ],
            root,
        )
        options = (
            f"-p {port} -c listen_addresses=127.0.0.1 -k {sockets} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        _run(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(log),
                "-o",
                options,
                "-w",
                "-t",
                str(START_TIMEOUT_SECONDS),
                "start",
            ],
            root,
        )
        try:
            yield PgServer("127.0.0.1", port, "rag", password, "postgres")
        finally:
            _run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


@contextmanager
def scratch_database(server: PgServer, own: bool = False) -> Iterator[PgServer]:
    """A new empty database on ``server``, dropped afterwards.

    Falls back to ``server``'s own database when the user may not create databases, unless
    ``own`` (the caller needs an empty database of its own): then PostgresUnavailable.
    """
    name = f"rag_test_{secrets.token_hex(6)}"
    assert _DB_NAME.match(name)
    try:
        server.query(f'CREATE DATABASE "{name}"')
    except psycopg2.errors.InsufficientPrivilege as exc:
        if own:
            raise PostgresUnavailable(f"user {server.user!r} may not create databases") from exc
        yield server
        return
    try:
        yield replace(server, dbname=name)
    finally:
        server.query(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# The registry's tables (rag_ingest.core.registry.schema).
REGISTRY_TABLES = {
    "documents",
    "document_events",
    "targets",
    "shard_requests",
    "counters",
    "delete_holds",
}


def public_tables(db: PgServer) -> set[str]:
    rows = db.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
    )
    return {str(row[0]) for row in rows}
