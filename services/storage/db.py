"""The store's engines, its transactions and the migrations run at start-up.

One ``Database`` per process. SQLite (the default) gets a parent folder, WAL mode
(with ``synchronous = NORMAL``: a commit is not flushed to disk until the next
checkpoint, so a power cut may lose the last moments of the ledger, never corrupt it),
a busy timeout and ``BEGIN IMMEDIATE`` transactions, so several connections (and
several processes) can share the file: a writer waits for the lock instead of
failing half-way through a transaction. PostgreSQL needs nothing special; the
migrations take an advisory lock so two processes starting together do not race.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, Table, event, text
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_READERS = 2  # worker threads reading a SQLite file (one more writes)
# pg_advisory_xact_lock key held while migrating: any constant shared by all processes.
MIGRATION_LOCK = 0x66616365  # "face"
# SQLSTATEs after which the whole transaction can simply run again.
_RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock

T = TypeVar("T")
_BEGIN_OPTION = "facecheck_sqlite_begin"


class Database:
    """The store: ``run`` a write transaction, ``read`` a consistent look; ``close()`` when
    the process ends.

    The work is plain SQLAlchemy Core on a sync ``Connection``. On PostgreSQL it runs through
    the async engine (``AsyncConnection.run_sync``). On a SQLite file it runs whole in a
    worker thread on the standard driver: one hand-over per transaction, where aiosqlite
    hands every cursor call (begin, execute, fetch, close, commit) to its thread and back,
    about fifteen for a quota reservation. Writes go to one thread, in turn; reads to two
    more. ``engine`` (async) stays for migrations and for code that wants a connection.
    """

    def __init__(self, engine: AsyncEngine, sqlite: Engine | None = None) -> None:
        self.engine = engine
        self._readers = engine.execution_options(**{_BEGIN_OPTION: "DEFERRED"})
        self.sqlite = sqlite  # what a SQLite file's transactions run on
        self._sqlite_readers = (
            None if sqlite is None else sqlite.execution_options(**{_BEGIN_OPTION: "DEFERRED"})
        )
        self._writer = self._reader = None
        if sqlite is not None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="sqlite-write")
            self._reader = ThreadPoolExecutor(SQLITE_READERS, thread_name_prefix="sqlite-read")
        # SQLite has one writer at a time: on the async engine (an in-memory database,
        # migrations), queue this process's writers here rather than in SQLite's busy
        # handler, which sleeps in steps of up to 100 ms.
        self._writers = asyncio.Lock() if engine.dialect.name == "sqlite" else None

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction on the async engine: committed on success, rolled back on
        error."""
        async with self._write_turn(), self.engine.begin() as connection:
            yield connection

    async def read(self, work: Callable[[Connection], T]) -> T:
        """``work``'s look at the store (on SQLite a deferred transaction, which never waits
        for writers)."""
        if self._sqlite_readers is not None:
            return await _in_thread(
                self._reader, partial(_once, self._sqlite_readers.connect, work)
            )
        async with self._readers.connect() as connection:
            return await connection.run_sync(work)

    async def run(self, work: Callable[[Connection], T], *, attempts: int = 5) -> T:
        """Run ``work`` in a write transaction, again after a deadlock or a busy file."""
        for attempt in range(attempts):
            try:
                if self.sqlite is not None:
                    return await _in_thread(self._writer, partial(_once, self.sqlite.begin, work))
                async with self.transaction() as connection:
                    return await connection.run_sync(work)
            except DBAPIError as error:
                if attempt + 1 >= attempts or not _retryable(error):
                    raise
                log.info("transaction retried after %s", type(error.orig).__name__)
                await asyncio.sleep(0.01 * 2**attempt)
        raise AssertionError("unreachable")

    @asynccontextmanager
    async def _write_turn(self) -> AsyncIterator[None]:
        if self._writers is None:
            yield
            return
        async with self._writers:
            yield

    async def close(self) -> None:
        for pool in (self._writer, self._reader):
            if pool is not None:
                await asyncio.to_thread(pool.shutdown)
        if self.sqlite is not None:
            self.sqlite.dispose()
        await self.engine.dispose()


def _once(
    open_: Callable[[], AbstractContextManager[Connection]], work: Callable[[Connection], T]
) -> T:
    with open_() as connection:
        return work(connection)


async def _in_thread(pool: ThreadPoolExecutor | None, call: Callable[[], T]) -> T:
    """``call`` in ``pool``'s thread. Cancelled meanwhile, the transaction still ends there,
    committed or rolled back: a reservation left so expires like one of a process that died."""
    return await asyncio.get_running_loop().run_in_executor(pool, call)


def _retryable(error: DBAPIError) -> bool:
    orig = error.orig
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if sqlstate in _RETRYABLE_SQLSTATES:
        return True
    return isinstance(error, OperationalError) and "database is locked" in str(orig)


def upsert(target: Database | AsyncConnection | Connection, table: Table) -> Any:
    """``INSERT`` that accepts ``on_conflict_do_update``/``_nothing`` on either backend."""
    name = target.dialect if isinstance(target, Database) else target.dialect.name
    if name == "postgresql":
        return postgresql_insert(table)
    return sqlite_insert(table)


def create_engine(url: str, **options: Any) -> AsyncEngine:
    """An ``AsyncEngine`` for ``url``; for SQLite the folder is created and the file tuned."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        options.setdefault("pool_pre_ping", True)
        return create_async_engine(url, **options)

    database = parsed.database or ""
    if _is_file(database):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    # Every connection is used in a block that ends its transaction (``Database``'s, or
    # SQLAlchemy's own on close), so the pool's rollback on return would be a second one:
    # a round trip to aiosqlite's thread, about a fifth of a small transaction's time.
    options.setdefault("pool_reset_on_return", None)
    engine = create_async_engine(url, **options)
    _tune_sqlite(engine.sync_engine)
    return engine


def create_sqlite_engine(url: str) -> Engine | None:
    """The standard-driver engine ``Database`` runs a SQLite file's transactions on, in its
    worker threads; None for another database, or SQLite in memory (one per connection)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not _is_file(parsed.database or ""):
        return None
    engine = create_sync_engine(
        parsed.set(drivername="sqlite+pysqlite"),
        connect_args={"check_same_thread": False},  # pooled across the worker threads
        pool_size=1 + SQLITE_READERS,
        pool_reset_on_return=None,
    )
    _tune_sqlite(engine)
    return engine


def _is_file(database: str) -> bool:
    return bool(database) and database != ":memory:" and not database.startswith("file:")


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # SQLAlchemy, not the driver, begins transactions (see _begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        # Writers take the write lock up front: a deferred transaction that reads and
        # then writes fails with "database is locked" (no waiting) when another
        # connection committed in between; an immediate one waits its turn.
        mode = connection.get_execution_options().get(_BEGIN_OPTION, "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {mode}")


def alembic_config(url: str | None = None) -> Config:
    """Alembic's configuration, built in code: no alembic.ini is needed."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _upgrade(connection: Connection, revision: str) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def _downgrade(connection: Connection, revision: str) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    config = alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def upgrade(database: Database | AsyncEngine, revision: str = "head") -> None:
    """Migrate to ``revision`` in one transaction (both backends have transactional DDL)."""
    engine = database.engine if isinstance(database, Database) else database
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade, revision)


async def downgrade(database: Database | AsyncEngine, revision: str) -> None:
    engine = database.engine if isinstance(database, Database) else database
    async with engine.begin() as connection:
        await connection.run_sync(_downgrade, revision)


async def current_revision(database: Database | AsyncEngine) -> str | None:
    engine = database.engine if isinstance(database, Database) else database
    async with engine.connect() as connection:
        return await connection.run_sync(_current)


async def _migrate(database: Database, attempts: int = 6) -> tuple[str | None, str | None]:
    """Upgrade to the head; processes starting together on one SQLite file may find it
    busy (switching it to WAL takes an exclusive lock that does not wait): try again."""
    for attempt in range(attempts):
        try:
            before = await current_revision(database)
            await upgrade(database, "head")
            return before, await current_revision(database)
        except DBAPIError as error:
            if attempt + 1 >= attempts or not _retryable(error):
                raise
            log.info("migration retried: the database was busy")
            await asyncio.sleep(0.05 * 2**attempt)
    raise AssertionError("unreachable")


async def open_database(url: str, *, migrate: bool = True, **engine_options: Any) -> Database:
    """Connect to ``url`` and (unless ``migrate=False``) upgrade its schema to the head.

    ``engine_options`` go to ``create_async_engine`` (``pool_size``, ``connect_args``…).
    """
    database = Database(create_engine(url, **engine_options), create_sqlite_engine(url))
    if migrate:
        try:
            before, after = await _migrate(database)
        except BaseException:
            await database.close()
            raise
        if before != after:
            log.info("database %s migrated from %s to %s", database.url, before, after)
    return database
