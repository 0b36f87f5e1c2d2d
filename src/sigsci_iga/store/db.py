"""Engines, transactions and migrations; nothing is built at import time."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

from sigsci_iga.errors import (
    ConfigError,
    DatabaseBusyError,
    DatabaseUnavailableError,
    SigsciIgaError,
    StorageFullError,
)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
#: Execution option that makes a SQLite transaction take the write lock at BEGIN.
WRITE_LOCK = "sigsci_iga_write_lock"
# Any constant works; it only has to be the same for every process migrating one database.
_MIGRATION_LOCK_KEY = 0x5151_1A01


def normalize_url(url: str) -> str:
    """Accept `postgresql://` and `postgres://` as psycopg 3 URLs; refuse other drivers early."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"database URL is not valid: {exc}") from exc
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(f"database backend {backend!r} is not supported (sqlite, postgresql)")
    return parsed.render_as_string(hide_password=False)


@dataclass(frozen=True)
class DatabaseOptions:
    """How long the repository waits on the database before it gives up with one clear line."""

    #: SQLite: how long to wait for another process's write lock. PostgreSQL: lock_timeout.
    busy_timeout_seconds: float = 30.0
    #: PostgreSQL: statement_timeout (a bulk load of a large corp is one statement).
    statement_timeout_seconds: float = 600.0


def _sqlite_on_connect(busy_ms: int, dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling skips BEGIN before DDL and SELECT; let SQLAlchemy
    # emit BEGIN itself (see `_sqlite_on_begin`) so migrations and read-then-write are atomic.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.execute("PRAGMA journal_mode=WAL")
        # WAL makes NORMAL durable against application crashes, at a fraction of FULL's cost.
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _sqlite_on_begin(connection: Connection) -> None:
    # A deferred BEGIN that later writes can fail with SQLITE_BUSY no timeout resolves (WAL
    # snapshot upgrade); writers ask for the lock up front instead.
    immediate = connection.get_execution_options().get(WRITE_LOCK, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def create_engine_for(
    url: str, *, echo: bool = False, options: DatabaseOptions | None = None
) -> Engine:
    """An engine for `sqlite:///path` or PostgreSQL, with the pragmas this project relies on."""
    url = normalize_url(url)
    options = options or DatabaseOptions()
    busy_ms = max(1, round(options.busy_timeout_seconds * 1000))
    if make_url(url).get_backend_name() == "sqlite":
        engine = sa.create_engine(url, echo=echo, connect_args={"timeout": busy_ms / 1000})
        sa.event.listen(engine, "connect", functools.partial(_sqlite_on_connect, busy_ms))
        sa.event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    statement_ms = max(1, round(options.statement_timeout_seconds * 1000))
    try:
        return sa.create_engine(
            url,
            echo=echo,
            pool_pre_ping=True,
            connect_args={
                "connect_timeout": max(1, round(options.busy_timeout_seconds)),
                "options": f"-c lock_timeout={busy_ms} -c statement_timeout={statement_ms}",
            },
        )
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"{shown_url(url)} needs the PostgreSQL driver ({exc.name} is not installed): "
            "pip install 'sigsci-iga[postgres]'"
        ) from None


def shown_url(url: str) -> str:
    """A database URL safe to print: the password, if any, is masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "the database URL"


_LOCKED = ("database is locked", "database table is locked")
_FULL = ("database or disk is full", "disk i/o error")
_CANNOT_OPEN = ("unable to open database file", "readonly database", "no such table")


@contextmanager
def translated_errors(engine: Engine, options: DatabaseOptions | None = None) -> Iterator[None]:
    """Turn the database failures a person must hear about into one clear error each.

    Anything else (a deadlock the worker retries, a constraint violation) passes unchanged.
    """
    options = options or DatabaseOptions()
    where = shown_url(str(engine.url))
    try:
        yield
    except DBAPIError as exc:
        error = _classify(exc, where, options)
        if error is None:
            raise
        raise error from None


def _classify(exc: DBAPIError, where: str, options: DatabaseOptions) -> SigsciIgaError | None:
    sqlstate = getattr(exc.orig, "sqlstate", None) or ""
    text = str(exc.orig).lower()
    if sqlstate == "55P03" or any(m in text for m in _LOCKED):
        return DatabaseBusyError(
            f"{where} stayed locked by another process for {options.busy_timeout_seconds:g} s "
            "(SIGSCI_IGA_DB_BUSY_TIMEOUT); try again when it is done"
        )
    if sqlstate == "57014":
        return DatabaseBusyError(
            f"{where}: a statement ran longer than {options.statement_timeout_seconds:g} s "
            "(SIGSCI_IGA_DB_STATEMENT_TIMEOUT) and was cancelled; nothing of it was kept"
        )
    if sqlstate in ("53100", "53200") or any(m in text for m in _FULL):
        return StorageFullError(
            f"{where} has no space left to write; nothing of the change was kept. Free space, "
            "then run the command again"
        )
    # A connection that fails carries no SQLSTATE in psycopg; the server's words say why.
    if sqlstate == "3D000" or ("database" in text and "does not exist" in text):
        return DatabaseUnavailableError(
            f"{where}: the database does not exist; create it (createdb) or fix "
            "SIGSCI_IGA_DATABASE_URL"
        )
    if sqlstate.startswith(("08", "28")) or (
        isinstance(exc, OperationalError) and not sqlstate and "connection" in text
    ):
        return DatabaseUnavailableError(
            f"{where} cannot be reached or refused the login; check SIGSCI_IGA_DATABASE_URL "
            "and that the server runs"
        )
    if "file is not a database" in text or "not a database" in text:
        return DatabaseUnavailableError(
            f"{where} is a file but not a SQLite database; point SIGSCI_IGA_DATABASE_URL at "
            "the repository, or at a new file"
        )
    if any(m in text for m in _CANNOT_OPEN):
        return DatabaseUnavailableError(
            f"{where} cannot be opened (does its directory exist, and may this user write "
            "there?); fix SIGSCI_IGA_DATABASE_URL"
        )
    return None


def analyze(connection: Connection, tables: Sequence[str] = ()) -> None:
    """Refresh the planner's statistics (all tables, or those named) inside the transaction.

    Without them a freshly loaded repository is planned as if empty: listing 50,000 accounts
    took 20 s on SQLite and 84 s on PostgreSQL before the first row, and 0.2-0.7 s after.
    SQLite samples at most a thousand rows per index (`analysis_limit`), so this stays cheap
    for millions of links; PostgreSQL samples on its own.
    """
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("PRAGMA analysis_limit=1000")
    if not tables:
        connection.exec_driver_sql("ANALYZE")
        return
    for table in tables:
        connection.exec_driver_sql(f"ANALYZE {table}")


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    """The newest migration shipped with this version of the package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(config).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at, or None for an empty database."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine_or_url: Engine | str, revision: str = "head") -> None:
    """Migrate the repository to `revision` (default: newest) in one transaction."""
    engine = create_engine_for(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url
    try:
        with (
            engine.connect().execution_options(**{WRITE_LOCK: True}) as connection,
            connection.begin(),
        ):
            if connection.dialect.name == "postgresql":
                # Two processes opening a fresh database at once must not both create tables.
                connection.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                )
            before = MigrationContext.configure(connection).get_current_revision()
            command.upgrade(_alembic_config(connection), revision)
            if MigrationContext.configure(connection).get_current_revision() != before:
                # New tables or indexes: give the planner statistics for them at once.
                analyze(connection)
    finally:
        if isinstance(engine_or_url, str):
            engine.dispose()


class Database:
    """An engine and the two kinds of transaction every part of the repository runs in."""

    def __init__(self, engine: Engine, options: DatabaseOptions | None = None) -> None:
        self.engine = engine
        self.options = options or DatabaseOptions()
        # SQLite lets one writer in at a time and makes the others poll, sleeping up to 100 ms
        # between tries: under a burst of API requests that polling, not the writes, set the
        # tail latency. Threads of this process queue here instead and are let in in turn.
        # (Re-entrant: a write may call code that opens another.)
        self._writers = threading.RLock() if engine.dialect.name == "sqlite" else None

    @contextmanager
    def read(self, *, snapshot: bool = False) -> Iterator[Connection]:
        """A read transaction; `snapshot`: several statements see one state (REPEATABLE READ).

        SQLite's transactions are serializable already.
        """
        options = (
            {"isolation_level": "REPEATABLE READ"}
            if snapshot and self.engine.dialect.name == "postgresql"
            else {}
        )
        with (
            translated_errors(self.engine, self.options),
            self.engine.connect().execution_options(**options) as conn,
            conn.begin(),
        ):
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction that takes SQLite's write lock at BEGIN (see `WRITE_LOCK`)."""
        with (
            self._writer_turn(),
            translated_errors(self.engine, self.options),
            self.engine.connect().execution_options(**{WRITE_LOCK: True}) as conn,
            conn.begin(),
        ):
            yield conn

    @contextmanager
    def _writer_turn(self) -> Iterator[None]:
        if self._writers is None:
            yield
            return
        if not self._writers.acquire(timeout=self.options.busy_timeout_seconds):
            raise DatabaseBusyError(
                f"the database stayed locked by another writer for "
                f"{self.options.busy_timeout_seconds:g} s (SIGSCI_IGA_DB_BUSY_TIMEOUT); "
                "try again when it is done"
            )
        try:
            yield
        finally:
            self._writers.release()

    def ping(self) -> None:
        """One round trip; raises the database error a person would need to hear about."""
        with self.read() as conn:
            conn.execute(sa.text("SELECT 1"))

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()
