"""Builds the async engine for SQLite or PostgreSQL and applies Alembic migrations."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from storage.errors import DatabaseNotMigrated, DatabaseUnavailable

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_READ_ONLY = "callrec_read_only"


def create_engine(database_url: str) -> AsyncEngine:
    """Return a lazy engine (it connects on first use) tuned for the backend in the URL.

    SQLite gets WAL, full fsync and ``BEGIN IMMEDIATE`` transactions: the audit chain
    reads its head and then appends, and a deferred transaction would deadlock two such
    writers instead of queueing them.
    """
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        # hide_parameters: a failed statement's values (phone numbers, notes) never reach
        # an exception message, and so never a log.
        engine = create_async_engine(url, connect_args={"timeout": 30}, hide_parameters=True)
        _tune_sqlite(engine)
        return engine
    return create_async_engine(
        url,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=10,
        pool_timeout=10,
        hide_parameters=True,
    )


def _tune_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Readers take no write lock, so lookups never queue behind captures.
        reader = connection.get_execution_options().get(_READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if reader else "BEGIN IMMEDIATE")


def create_sessionmaker(
    engine: AsyncEngine, *, read_only: bool = False
) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit.

    ``read_only`` sessions are for lookups: on SQLite they begin a deferred transaction
    instead of taking the write lock. Writing through one may fail under contention.
    """
    bind = engine.execution_options(**{_READ_ONLY: True}) if read_only else engine
    return async_sessionmaker(bind, expire_on_commit=False)


class Database:
    """The engine and the two ways the service uses it: lookups and write transactions.

    On SQLite, write transactions are queued in the process rather than left to SQLite's
    busy handler, which sleeps in steps of up to 100 ms while it waits for the lock.
    Database errors that mean "cannot reach it" come out as DatabaseUnavailable.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._writes = create_sessionmaker(engine)
        self._reads = create_sessionmaker(engine, read_only=True)
        self._write_lock = asyncio.Lock() if engine.dialect.name == "sqlite" else None

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for lookups; it takes no write lock and commits nothing."""
        async with translate_database_errors(), self._reads() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session whose work commits when the block ends, or rolls back on error."""
        async with translate_database_errors():
            if self._write_lock is None:
                async with self._writes.begin() as session:
                    yield session
            else:
                async with self._write_lock, self._writes.begin() as session:
                    yield session

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()


def alembic_config() -> Config:
    """Alembic configuration pointing at the packaged migrations; no alembic.ini needed."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


async def upgrade_database(engine: AsyncEngine, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` over this engine's connection.

    Raises DatabaseUnavailable when the database cannot be reached.
    """

    def run(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with translate_database_errors(), engine.begin() as connection:
        await connection.run_sync(run)


async def check_database(engine: AsyncEngine) -> None:
    """Readiness probe: one round trip. Raises DatabaseUnavailable."""
    async with translate_database_errors(), engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


@asynccontextmanager
async def translate_database_errors() -> AsyncIterator[None]:
    """Turn connection-level driver failures into DatabaseUnavailable.

    Constraint violations and programming errors pass through: they are not outages.
    """
    try:
        yield
    except OperationalError as exc:
        if "no such table" in str(exc.orig):  # SQLite's word for a schema not made yet
            raise DatabaseNotMigrated() from exc
        raise DatabaseUnavailable(f"database unavailable: {type(exc).__name__}") from exc
    except (OSError, ConnectionError, PoolTimeout) as exc:
        raise DatabaseUnavailable(f"database unavailable: {type(exc).__name__}") from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise DatabaseUnavailable("database connection lost") from exc
        state = _sqlstate(exc)
        if state in _TRANSIENT_SQLSTATES:
            raise DatabaseUnavailable("transaction conflict; retry") from exc
        if state in _REFUSED_SQLSTATES:
            raise DatabaseUnavailable(_REFUSED_SQLSTATES[state]) from exc
        if state == _UNDEFINED_TABLE:
            raise DatabaseNotMigrated() from exc
        raise


# Serialization failure and deadlock: the transaction did nothing and may be retried.
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01"})
_UNDEFINED_TABLE = "42P01"
# The server answered but will not let callrec in: named, so an operator can fix it.
_REFUSED_SQLSTATES = {
    "3D000": "the database does not exist",
    "28P01": "the database refused the password",
    "28000": "the database refused the login",
}


def _sqlstate(exc: DBAPIError) -> str | None:
    original = exc.orig
    code = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
    return str(code) if code else None
