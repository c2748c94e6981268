"""Database fixtures: every database test runs on SQLite and on a real PostgreSQL.

PostgreSQL gets one fresh database per test session (migrated once) and clean tables
per test; SQLite gets a copy of a migrated template file per test. The fixtures are
synchronous and run their async set-up in a private event loop, so a test can ask for
either backend by parameter without dragging in the other.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text

from storage import create_engine, upgrade_database
from storage.db.models import Base

# The machine's PostgreSQL (trust auth); a different one can be named for local runs.
POSTGRES_ADMIN_DSN = os.environ.get(  # noqa: TID251 - test configuration, not service settings
    "CALLREC_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)
# Tables whose triggers refuse the reset below (append-only, or only moving forward).
_GUARDED = ("audit_event", "audit_head", "receipt_key")
# Every table the models define, so a new table is cleaned without anyone remembering to
# add it here; the audit head is reset rather than emptied.
_TABLES = tuple(
    table.name for table in reversed(Base.metadata.sorted_tables) if table.name != "audit_head"
)


def skip_or_fail(reason: str) -> None:
    """Skip where a backend is missing, but never under CI, where every backend must run."""
    if os.environ.get("CI") == "true":  # noqa: TID251 - the CI switch is read by tests only
        pytest.fail(f"{reason} (CI=true: this backend must be available)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_database_url() -> Iterator[str]:
    """A migrated PostgreSQL database created for this test session, dropped afterwards."""
    name = f"callrec_test_{uuid.uuid4().hex[:12]}"
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    url = f"{base}/{name}"
    try:
        asyncio.run(run_as_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        skip_or_fail(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_DSN}: {exc}")
    try:
        asyncio.run(_migrate(url))
        yield url
    finally:
        asyncio.run(run_as_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that each test copies instead of migrating again."""
    path = tmp_path_factory.mktemp("sqlite-template") / "callrec.db"
    asyncio.run(_migrate(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database on each backend in turn."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "callrec.db"
        shutil.copyfile(template, path)
        return f"sqlite+aiosqlite:///{path}"
    url: str = request.getfixturevalue("postgres_database_url")
    asyncio.run(_clean_postgres(url))
    return url


@pytest.fixture
def postgres_url(postgres_database_url: str) -> str:
    """The session's PostgreSQL database, emptied: for what only PostgreSQL can show."""
    asyncio.run(_clean_postgres(postgres_database_url))
    return postgres_database_url


async def run_as_admin(statement: str) -> None:
    """One statement as the server's administrator (creating and dropping databases)."""
    admin = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


async def _migrate(url: str) -> None:
    engine = create_engine(url)
    try:
        await upgrade_database(engine)
    finally:
        # Closing the last SQLite connection folds the WAL into the main file, so the
        # template can be copied as one file.
        await engine.dispose()


async def _clean_postgres(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            # The append-only guards refuse exactly this reset, so they are off while it runs
            # (tamper tests may have left them off too) and on again for the next test.
            for table in _GUARDED:
                await connection.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
            await connection.execute(text(f"TRUNCATE {', '.join(_TABLES)} RESTART IDENTITY"))
            await connection.execute(
                text("UPDATE audit_head SET seq = 0, chain = :zero WHERE id = 1"),
                {"zero": bytes(32)},
            )
            for table in _GUARDED:
                await connection.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))
    finally:
        await engine.dispose()


@pytest.fixture
def database_backup(tmp_path: Path) -> Iterator[Callable[[str], Awaitable[str]]]:
    """Take a real backup of a test database, restorable as a database of its own.

    SQLite through its online backup API; PostgreSQL with pg_dump into a new database,
    as an operator's nightly dump would be restored. Returns the copy's URL.
    """
    made: list[str] = []

    def copy_sqlite(source: str, target: Path) -> None:
        with sqlite3.connect(source) as live, sqlite3.connect(target) as copy:
            live.backup(copy)

    def dump_and_restore(plain: str, into: str) -> None:
        dump = subprocess.run(
            ["pg_dump", "--no-owner", plain], capture_output=True, check=True, timeout=120
        )
        subprocess.run(
            ["psql", "--quiet", "-v", "ON_ERROR_STOP=1", into],
            input=dump.stdout,
            capture_output=True,
            check=True,
            timeout=120,
        )

    async def backup(url: str) -> str:
        if url.startswith("sqlite"):
            target = tmp_path / f"backup-{uuid.uuid4().hex[:8]}.db"
            await asyncio.to_thread(copy_sqlite, url.split(":///", 1)[1], target)
            return f"sqlite+aiosqlite:///{target}"
        name = f"callrec_backup_{uuid.uuid4().hex[:12]}"
        await run_as_admin(f'CREATE DATABASE "{name}"')
        made.append(name)
        plain = url.replace("postgresql+asyncpg://", "postgresql://")
        await asyncio.to_thread(dump_and_restore, plain, plain.rsplit("/", 1)[0] + "/" + name)
        return url.rsplit("/", 1)[0] + "/" + name

    yield backup
    for name in made:
        asyncio.run(run_as_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """A migrated, empty SQLite database: for tests that need one backend, not both."""
    path = tmp_path / "callrec.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"
