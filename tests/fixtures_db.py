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
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest

from storage import create_engine, upgrade_database
from storage.db.models import Base

# The machine's PostgreSQL (trust auth); a different one can be named for local runs.
POSTGRES_ADMIN_DSN = os.environ.get(  # noqa: TID251 - test configuration, not service settings
    "CALLREC_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)
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
    asyncio.run(clean_postgres(url))
    return url


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def module_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """A migrated, empty database on each backend in turn, shared by one module's tests.

    For a module whose tests each make their own rows and look only at those (the
    authorisation matrix), so one service can serve them all.
    """
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path_factory.mktemp("module-db") / "callrec.db"
        shutil.copyfile(template, path)
        return f"sqlite+aiosqlite:///{path}"
    url: str = request.getfixturevalue("postgres_database_url")
    asyncio.run(clean_postgres(url))
    return url


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def template_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A migrated, empty database on each backend in turn, the module's own: for a module
    that fills it once and gives each test a ``database_copy`` of it to change.

    Nobody may be connected to it while it is copied (PostgreSQL copies a database only
    from an idle template).
    """
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path_factory.mktemp("template-db") / "callrec.db"
        shutil.copyfile(template, path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    session_url: str = request.getfixturevalue("postgres_database_url")  # reachable, or skipped
    url = f"{session_url.rsplit('/', 1)[0]}/callrec_template_{uuid.uuid4().hex[:12]}"
    asyncio.run(run_as_admin(f'CREATE DATABASE "{_name_of(url)}"'))
    try:
        asyncio.run(_migrate(url))
        yield url
    finally:
        asyncio.run(run_as_admin(f'DROP DATABASE IF EXISTS "{_name_of(url)}" WITH (FORCE)'))


@asynccontextmanager
async def database_copy(url: str, folder: Path) -> AsyncIterator[str]:
    """A copy of a database nobody is connected to, dropped afterwards: SQLite's file (its
    write-ahead log too, if one is left) into ``folder``; on PostgreSQL a new database made
    with the original as its template, a file copy of a few tens of milliseconds."""
    if url.startswith("sqlite"):
        copied = await asyncio.to_thread(_copy_sqlite_files, Path(url.split(":///", 1)[1]), folder)
        yield f"sqlite+aiosqlite:///{copied}"
        return
    copy = f"{url.rsplit('/', 1)[0]}/callrec_copy_{uuid.uuid4().hex[:12]}"
    await run_as_admin(f'CREATE DATABASE "{_name_of(copy)}" TEMPLATE "{_name_of(url)}"')
    try:
        yield copy
    finally:
        await run_as_admin(f'DROP DATABASE IF EXISTS "{_name_of(copy)}" WITH (FORCE)')


def _copy_sqlite_files(source: Path, folder: Path) -> Path:
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{source}{suffix}").exists():
            shutil.copyfile(f"{source}{suffix}", folder / f"{source.name}{suffix}")
    return folder / source.name


def _name_of(url: str) -> str:
    """The database a URL names."""
    return url.rsplit("/", 1)[1]


@pytest.fixture
def postgres_url(postgres_database_url: str) -> str:
    """The session's PostgreSQL database, emptied: for what only PostgreSQL can show."""
    asyncio.run(clean_postgres(postgres_database_url))
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


async def clean_postgres(url: str) -> None:
    """Empty every table and restart every sequence, as a fresh migration would leave them.

    DELETE under the replica role (no user triggers, no foreign-key checks) costs a few
    milliseconds on the handful of rows a test leaves, where TRUNCATE's new files and
    ALTER TABLE's locks cost a hundred or more, paid by every PostgreSQL test.
    """
    connection = await asyncpg.connect(_plain_dsn(url), timeout=5)
    try:
        # A connection an earlier test left open (its event loop closed in the middle of a
        # background claim, say) would hold its locks for the life of this process: no
        # test needs another's connections, so they go first.
        await connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        async with connection.transaction():
            # The audit guards refuse exactly this reset; the replica role skips them.
            await connection.execute("SET LOCAL session_replication_role = replica")
            for table in _TABLES:
                await connection.execute(f"DELETE FROM {table}")
            await connection.execute(
                "UPDATE audit_head SET seq = 0, chain = $1 WHERE id = 1", bytes(32)
            )
            await connection.execute(
                "SELECT setval(format('%I.%I', schemaname, sequencename), 1, false)"
                " FROM pg_sequences WHERE schemaname = current_schema()"
            )
            # A tamper test may have switched the guards off; they are on for the next test.
            for (table,) in await connection.fetch(
                "SELECT DISTINCT tgrelid::regclass::text FROM pg_trigger"
                " WHERE NOT tgisinternal AND tgenabled = 'D'"
            ):
                await connection.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
    finally:
        await connection.close()


def _plain_dsn(url: str) -> str:
    """The libpq form of a SQLAlchemy asyncpg URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


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
