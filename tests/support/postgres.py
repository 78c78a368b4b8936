"""A throwaway PostgreSQL server for tests and benchmarks: initdb and pg_ctl on a free port.

Debian's PostgreSQL binaries live in /usr/lib/postgresql/<version>/bin; the
server refuses to run as root, so as root it runs as the ``postgres`` user.
Data lives in a fresh temporary directory that is removed on stop.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import psycopg


def bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql (see README)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Postgres:
    """One PostgreSQL server; ``uri`` connects as superuser ``tenure`` with trust auth on 127.0.0.1."""

    def __init__(self, settings: Sequence[str] = ()) -> None:
        self.bin = bindir()
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="tenure-pg-"))
        self.data = self.dir / "data"
        self.settings = ["fsync=off", "synchronous_commit=off", "full_page_writes=off", *settings]

    @property
    def uri(self) -> str:
        return f"postgresql://tenure@127.0.0.1:{self.port}/postgres"

    def database_uri(self, name: str) -> str:
        return f"postgresql://tenure@127.0.0.1:{self.port}/{name}"

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, text=True)

    def start(self) -> Postgres:
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "tenure", "--auth=trust", "--no-sync", "-E", "UTF8")
        self._ctl("start")
        return self

    def _ctl(self, action: str) -> None:
        options = " ".join(
            [f"-p {self.port}", f"-k {self.dir}", "-c listen_addresses=127.0.0.1", *(f"-c {s}" for s in self.settings)]
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.dir / "server.log"),
            "-o",
            options,
            "-w",
            "-m",
            "fast",
            action,
        )

    def restart(self) -> None:
        self._ctl("restart")

    def stop(self) -> None:
        if self.data.exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.uri, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.database_uri(name)

    def apply(self, uri: str, sql_file: Path) -> None:
        """Run a SQL file with psql, statement by statement, stopping at the first error."""
        subprocess.run(
            [str(self.bin / "psql"), uri, "-q", "-v", "ON_ERROR_STOP=1", "-f", str(sql_file)],
            check=True,
            capture_output=True,
            text=True,
        )


def litellm_migrations() -> list[Path]:
    """LiteLLM's own SQL migrations, in the order LiteLLM applies them (folder names sort by timestamp)."""
    import litellm_proxy_extras

    root = Path(litellm_proxy_extras.__file__).parent / "migrations"
    return sorted(root.glob("*/migration.sql"), key=lambda path: path.parent.name)


def create_litellm_database(server: Postgres, name: str) -> str:
    """A database with LiteLLM's real schema, built by applying its migrations in order."""
    uri = server.create_database(name)
    for migration in litellm_migrations():
        server.apply(uri, migration)
    return uri
