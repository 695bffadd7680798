"""Where tests keep their data: SQLite files, or databases on a throwaway PostgreSQL server (Debian's
`postgresql` package) that the tests start on a free loopback port and stop at the end."""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import peewee

from sovereign_server.engines.local import free_port
from sovereign_storage import migrate, open_database
from sovereign_storage.models import Thread, bind_models


def postgres_bin() -> Path:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not versions:
        raise RuntimeError("PostgreSQL is not installed: `make test-postgres` installs Debian's postgresql package.")
    return versions[-1].parent


def _as_postgres(command: list[str]) -> list[str]:
    # initdb refuses to run as root; the package's `postgres` user runs the server then.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


class PostgresServer:
    """A PostgreSQL server of its own, in a temporary folder, for one test session."""

    USER = "sovereign"

    def __init__(self) -> None:
        self._bindir = postgres_bin()
        # Not under pytest's temporary folder: that is private to root, and the server runs as postgres.
        self._root = Path(tempfile.mkdtemp(prefix="sovereign-postgres-"))
        self.port = 0
        self._names = itertools.count(1)
        self._admin: Any = None

    def start(self) -> PostgresServer:
        data = self._root / "data"
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self._root, user.pw_uid, user.pw_gid)
        self.port = free_port()
        subprocess.run(
            _as_postgres([str(self._bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", self.USER]),
            check=True,
            capture_output=True,
        )
        # Room for three replicas' connections per test database, and fsync off: tests need no durability.
        options = f"-p {self.port} -k {self._root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300"
        subprocess.run(
            _as_postgres(
                [
                    str(self._bindir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-o",
                    options,
                    "-l",
                    str(self._root / "log"),
                    "-w",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )
        import psycopg2

        self._admin = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.USER, dbname="postgres")
        self._admin.autocommit = True
        # Databases for tests are copies of one migrated database: copying is quicker than migrating.
        self._execute('CREATE DATABASE "migrated"')
        template = open_database(self.url("migrated"))
        migrate(template)
        template.close()
        return self

    def url(self, name: str) -> str:
        return f"postgresql://{self.USER}@127.0.0.1:{self.port}/{name}"

    def create_database(self, *, migrated: bool = True) -> str:
        """A new, empty database (migrated to the latest version, unless not `migrated`); its URL."""
        name = f"test_{next(self._names)}"
        template = ' TEMPLATE "migrated"' if migrated else ""
        self._execute(f'CREATE DATABASE "{name}"{template}')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drops the database unless a connection still uses it (models are bound process-wide, so a
        server of another test may): it then goes with the server at the end of the session."""
        import psycopg2

        name = url.rsplit("/", 1)[1]
        with self._admin.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,))
            if cursor.fetchone()[0]:
                return
        with contextlib.suppress(psycopg2.errors.ObjectInUse):
            self._execute(f'DROP DATABASE IF EXISTS "{name}"')

    def stop(self) -> None:
        if self._admin is not None:
            self._admin.close()
        subprocess.run(
            _as_postgres([str(self._bindir / "pg_ctl"), "-D", str(self._root / "data"), "-m", "immediate", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(self._root, ignore_errors=True)

    def _execute(self, statement: str) -> None:
        with self._admin.cursor() as cursor:
            cursor.execute(statement)


@contextlib.contextmanager
def opened_beside_servers(target: str) -> Iterator[peewee.Database]:
    """`target` opened and migrated in a test while servers of this process still run: models are
    bound process-wide (the last database opened wins), so theirs is bound again on the way out."""
    previous: peewee.Database = Thread._meta.database
    database = open_database(target)
    try:
        migrate(database)
        yield database
    finally:
        database.close()
        bind_models(previous)


class Databases:
    """Fresh databases for tests: SQLite files under `folder`, or databases on `postgres`."""

    def __init__(self, folder: Path, postgres: PostgresServer | None) -> None:
        self._folder = folder
        self.postgres = postgres
        self._names = itertools.count(1)

    @property
    def kind(self) -> str:
        return "postgresql" if self.postgres is not None else "sqlite"

    def new(self, *, migrated: bool = True) -> str:
        """A database target for `--db` / `open_database`. A SQLite file is created empty (the
        server migrates it at start); a PostgreSQL database comes migrated unless not `migrated`."""
        if self.postgres is not None:
            return self.postgres.create_database(migrated=migrated)
        return str(self._folder / f"db{next(self._names)}" / "sovereign.sqlite3")

    def drop(self, target: str) -> None:
        if self.postgres is not None:
            self.postgres.drop_database(target)
