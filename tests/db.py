"""Database and Redis fixtures, shared by every test that needs a real store.

Use them with ``pytest_plugins = ["tests.db"]`` at the top of a test module.

- ``database_target``: parametrized over ``sqlite`` (a file in ``tmp_path``) and
  ``postgresql`` (the server at 127.0.0.1:5432, database ``test``; every test gets a
  fresh schema, dropped afterwards). ``target.open()`` opens another ``Database`` on the
  same store, as another bot process would.
- ``database``: the migrated ``Database`` of that target.
- ``postgres_target``: PostgreSQL only, in its own schema.
- ``redis_target``: the Redis server at 127.0.0.1:6379 with a fresh key prefix whose
  keys are deleted afterwards.

Where a server is missing, the test is skipped with the reason; with ``CI=true`` in
the environment it fails instead, because CI must run everything.
Override the addresses with ``TEST_POSTGRES_URL`` and ``TEST_REDIS_URL``.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import pytest

from services.storage.db import Database, open_database

POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def unavailable(reason: str) -> NoReturn:
    """Skip on a developer's machine; fail in CI, where every server must be up."""
    if in_ci():
        pytest.fail(f"{reason} (required because CI=true)", pytrace=False)
    pytest.skip(reason)


def _where(url: str) -> str:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return f"{parsed.host or 'localhost'}:{parsed.port or 5432}"


async def _postgres_problem() -> str | None:
    """None when PostgreSQL answers, else why not."""
    import asyncpg
    from sqlalchemy.engine import make_url

    parsed = make_url(POSTGRES_URL)
    try:
        connection = await asyncio.wait_for(
            asyncpg.connect(
                host=parsed.host,
                port=parsed.port or 5432,
                user=parsed.username,
                password=parsed.password,
                database=parsed.database,
            ),
            timeout=5,
        )
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    await connection.close()
    return None


@dataclass
class DatabaseTarget:
    """Where a test's database lives; ``open()`` connects one more "process" to it."""

    backend: str  # "sqlite" or "postgresql"
    url: str
    engine_options: dict[str, Any] = field(default_factory=dict)
    schema: str | None = None  # PostgreSQL: the test's own schema

    async def open(self, *, migrate: bool = True, **options: Any) -> Database:
        return await open_database(self.url, migrate=migrate, **{**self.engine_options, **options})

    @property
    def env(self) -> dict[str, str]:
        """For a child process: ``TEST_DATABASE_URL`` and ``TEST_DATABASE_SCHEMA``."""
        return {"TEST_DATABASE_URL": self.url, "TEST_DATABASE_SCHEMA": self.schema or ""}


def engine_options_for(url: str, schema: str | None) -> dict[str, Any]:
    """Engine options that put every connection in ``schema`` (PostgreSQL only)."""
    if not schema:
        return {}
    return {"connect_args": {"server_settings": {"search_path": schema}}}


_probed: dict[str, str | None] = {}


async def _postgres_reachable() -> None:
    """Skip (or fail in CI) unless PostgreSQL answers; probed once per test session."""
    if POSTGRES_URL not in _probed:
        _probed[POSTGRES_URL] = await _postgres_problem()
    problem = _probed[POSTGRES_URL]
    if problem is not None:
        unavailable(f"PostgreSQL not reachable at {_where(POSTGRES_URL)}: {problem}")


@asynccontextmanager
async def postgres_schema() -> AsyncIterator[DatabaseTarget]:
    """A fresh schema in the test database, dropped with everything in it afterwards."""
    await _postgres_reachable()
    import asyncpg
    from sqlalchemy.engine import make_url

    parsed = make_url(POSTGRES_URL)
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(
        host=parsed.host,
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        database=parsed.database,
    )
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        yield DatabaseTarget(
            "postgresql", POSTGRES_URL, engine_options_for(POSTGRES_URL, schema), schema
        )
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_target(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[DatabaseTarget]:
    if request.param == "sqlite":
        yield DatabaseTarget("sqlite", f"sqlite+aiosqlite:///{tmp_path / 'data' / 'test.db'}")
        return
    async with postgres_schema() as target:
        yield target


@pytest.fixture
async def postgres_target() -> AsyncIterator[DatabaseTarget]:
    """PostgreSQL alone, for tests about what only a server database does."""
    async with postgres_schema() as target:
        yield target


@pytest.fixture
async def database(database_target: DatabaseTarget) -> AsyncIterator[Database]:
    db = await database_target.open()
    try:
        yield db
    finally:
        await db.close()


@dataclass
class RedisTarget:
    """A Redis server and a key prefix owned by one test."""

    url: str
    prefix: str

    def client(self) -> Any:
        import redis.asyncio as redis

        return redis.Redis.from_url(self.url)

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"


@pytest.fixture
async def redis_target() -> AsyncIterator[RedisTarget]:
    import redis.asyncio as redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        await client.ping()
    except Exception as error:
        await client.aclose()
        unavailable(f"Redis not reachable at {REDIS_URL}: {type(error).__name__}: {error}")
    target = RedisTarget(REDIS_URL, f"test:{uuid.uuid4().hex[:12]}:")
    try:
        yield target
    finally:
        keys = [key async for key in client.scan_iter(match=f"{target.prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


class FakeClock:
    """A settable clock for ``Ledger``/``ProviderBudgets``: ``clock.advance(seconds=…)``."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be aware")
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now

    def set(self, moment: datetime) -> None:
        self.now = moment


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock at 2025-03-10 12:00 UTC (a Monday)."""
    return FakeClock(datetime(2025, 3, 10, 12, 0, tzinfo=UTC))
