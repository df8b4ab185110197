"""Opening the state store: engine, SQLite tuning, migrations on start.

SQLite (WAL) under ``$HPCBOX_HOME`` is the embedded default; PostgreSQL is used
when ``HPCBOX_DATABASE_URL`` names it. Migrations are applied automatically,
under a lock so that processes starting together do not race; when the schema
is already at head (the usual case) only one small query runs and Alembic is
not even imported, which keeps one-shot CLI calls fast.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from hpcbox.core.errors import TransientError, UnavailableError
from hpcbox.core.settings import Settings

__all__ = ["HEAD_REVISION", "open_engine"]

#: The newest migration; bump together with a new file in migrations/versions.
HEAD_REVISION = "0004"
_MIGRATIONS = Path(__file__).with_name("migrations")
_PG_LOCK_KEY = 0x68706362  # "hpcb": advisory lock id for migrations on PostgreSQL


def open_engine(settings: Settings) -> Engine:
    """Return a SQLAlchemy engine whose schema is at :data:`HEAD_REVISION`.

    Raises :class:`UnavailableError` when the database driver is missing and
    :class:`TransientError` when the database cannot be reached.
    """
    url = settings.effective_database_url()
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Several threads (API workers, scheduler) share the engine; SQLite's own
        # locking (WAL + busy timeout) serialises the writers.
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    try:
        engine = create_engine(url, **kwargs)
    except ModuleNotFoundError as exc:
        raise UnavailableError(
            f"no database driver for {url.split(':', 1)[0]}: pip install 'hpcbox[postgres]'"
        ) from exc
    try:
        if engine.dialect.name == "sqlite":
            _ensure_wal(engine.url.database, settings)
            event.listen(engine, "connect", _tune_sqlite)
        _migrate(engine, settings)
    except OperationalError as exc:
        raise TransientError(f"cannot reach the database: {exc.orig}") from exc
    return engine


def _ensure_wal(database: str | None, settings: Settings) -> None:
    """Put a SQLite database file in WAL mode (a property of the file, kept once set).

    WAL lets readers run beside one writer. Switching needs an exclusive lock, and
    SQLite answers "database is locked" at once, without waiting out the busy
    timeout, when another process holds the file meanwhile: two CLI calls racing
    on a fresh home failed so. So the switch is made once, under the same file
    lock as the migrations; a file already in WAL (the usual case) costs one
    query and no lock.

    The file is only ever opened through SQLite: closing any other descriptor of
    it would drop the POSIX locks SQLite's connections in this process hold on it
    (a header read with a plain ``open`` did, and other processes then removed the
    shared-memory file under those connections: "disk I/O error").
    """
    if not database or database == ":memory:":
        return
    try:
        if _journal_mode(database, change=False) == "wal":
            return
        with _file_lock(settings):
            _journal_mode(database, change=True)
    except sqlite3.Error as exc:
        raise TransientError(f"cannot reach the database: {exc}") from exc


def _journal_mode(database: str, *, change: bool) -> str:
    con = sqlite3.connect(database, timeout=30)
    try:
        pragma = "PRAGMA journal_mode=WAL" if change else "PRAGMA journal_mode"
        return str(con.execute(pragma).fetchone()[0]).lower()
    finally:
        con.close()


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    # NORMAL sync in WAL mode (set by _ensure_wal) is durable across process
    # crashes (only an OS crash may lose the last transactions).
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        try:
            row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
        except SQLAlchemyError:
            return None
        return None if row is None else str(row[0])


def _migrate(engine: Engine, settings: Settings) -> None:
    if _current_revision(engine) == HEAD_REVISION:
        return
    with _migration_lock(engine, settings):
        if _current_revision(engine) == HEAD_REVISION:
            return
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")


@contextlib.contextmanager
def _migration_lock(engine: Engine, settings: Settings) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
                conn.commit()
        return
    with _file_lock(settings):
        yield


@contextlib.contextmanager
def _file_lock(settings: Settings) -> Iterator[None]:
    """An exclusive lock on ``<home>/migrate.lock`` shared by every process of a home."""
    settings.home.mkdir(parents=True, exist_ok=True)
    fd = os.open(settings.home / "migrate.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
