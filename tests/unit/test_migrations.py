"""Migrations: a fresh database reaches the head, an older one upgrades in place."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, insert, inspect, select

from services.ledger import Ledger, QuotaExceeded
from services.models import Operation
from services.storage.db import (
    current_revision,
    downgrade,
    head_revision,
    open_database,
    upgrade,
)
from services.storage.prefs import DbPreferences
from services.storage.tables import (
    Base,
    ProviderBudget,
    QuotaCounter,
    Reservation,
    UsageRecord,
    User,
)

if TYPE_CHECKING:
    from pathlib import Path

    from services.storage.db import Database
    from tests.db import DatabaseTarget

pytest_plugins = ["tests.db"]

NOON = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
TABLES = {"users", "quota_counters", "reservations", "usage", "provider_budgets"}
INDEXES_0002 = {"ix_usage_at", "ix_usage_user_id", "ix_reservations_state_expires_at"}
USERS_0002 = {"id", "locale", "created"}
USERS_0003 = USERS_0002 | {"spec"}


def _schema(connection: Connection) -> dict[str, Any]:
    inspector = inspect(connection)
    tables = set(inspector.get_table_names())
    indexes = {index["name"] for table in tables & TABLES for index in inspector.get_indexes(table)}
    users = (
        {column["name"] for column in inspector.get_columns("users")}
        if "users" in tables
        else set()
    )
    return {"tables": tables, "indexes": indexes, "users": users}


async def schema(database: Database) -> dict[str, Any]:
    async with database.engine.connect() as connection:
        return await connection.run_sync(_schema)


def test_the_head_is_0005() -> None:
    assert head_revision() == "0005"


async def test_a_fresh_database_is_created_at_the_head(database: Database) -> None:
    assert await current_revision(database) == head_revision()
    found = await schema(database)
    assert found["tables"] >= TABLES | {"alembic_version"}
    assert found["indexes"] >= INDEXES_0002
    assert found["users"] == USERS_0003


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def differences(database: Database) -> list[Any]:
    """What the migrated schema lacks or has beyond the tables in ``tables.py``."""
    async with database.engine.connect() as connection:
        return await connection.run_sync(_differences)


async def test_the_migrated_schema_matches_the_tables(database: Database) -> None:
    assert await differences(database) == []


async def test_an_older_database_upgrades_in_place_and_keeps_its_data(
    database_target: DatabaseTarget,
) -> None:
    old = await database_target.open(migrate=False)
    try:
        await upgrade(old, "0001")
        assert await current_revision(old) == "0001"
        assert not (await schema(old))["indexes"] & INDEXES_0002
        async with old.transaction() as connection:
            await connection.execute(insert(User).values(id=5, locale="ru", created=NOON))
            await connection.execute(
                insert(QuotaCounter).values(
                    user_id=5, operation="check", day=date(2025, 3, 10), used=2
                )
            )
            await connection.execute(
                insert(Reservation).values(
                    id="a" * 32,
                    user_id=5,
                    operation="check",
                    provider="jumdata",
                    day=date(2025, 3, 10),
                    admin=False,
                    state="pending",
                    created=NOON,
                    expires_at=NOON.replace(hour=13),
                )
            )
            await connection.execute(
                insert(UsageRecord).values(
                    user_id=5,
                    operation="check",
                    provider="jumdata",
                    code=None,
                    charged=True,
                    latency_ms=812,
                    at=NOON,
                )
            )
            await connection.execute(
                insert(ProviderBudget).values(
                    provider="jdcloud", remain=7, spent=False, updated=NOON
                )
            )
    finally:
        await old.close()

    new = await database_target.open()  # what the bot does at start-up
    try:
        assert await current_revision(new) == head_revision()
        assert (await schema(new))["indexes"] >= INDEXES_0002
        assert await DbPreferences(new).get_locale(5) == "ru"
        assert await DbPreferences(new).get_spec(5) is None
        ledger = Ledger(new, daily_limit=3, clock=lambda: NOON)
        # 2 used, of which 1 is the open reservation: the third unit is the last.
        await ledger.reserve(5, Operation.CHECK, "jumdata", admin=False)
        with pytest.raises(QuotaExceeded):
            await ledger.reserve(5, Operation.CHECK, "jumdata", admin=False)
        stats = await ledger.stats(date(2025, 3, 10))
        assert stats.busiest == [(5, 1)]
        async with new.engine.connect() as connection:
            at = (await connection.execute(select(UsageRecord.at))).scalar_one()
            remain = (await connection.execute(select(ProviderBudget.remain))).scalar_one()
        assert (at, remain) == (NOON, 7)
    finally:
        await new.close()


async def test_0002_upgrades_to_the_head_keeping_locales_with_no_spec(
    database_target: DatabaseTarget,
) -> None:
    old = await database_target.open(migrate=False)
    try:
        await upgrade(old, "0002")
        assert (await schema(old))["users"] == USERS_0002
        async with old.transaction() as connection:
            # Only the 0002 columns: the model's ``spec`` is not in the table yet.
            await connection.execute(
                insert(User),
                [
                    {"id": 5, "locale": "ru", "created": NOON},
                    {"id": 6, "locale": None, "created": NOON},
                ],
            )
    finally:
        await old.close()

    new = await database_target.open()  # what the bot does at start-up
    try:
        assert await current_revision(new) == head_revision()
        assert (await schema(new))["users"] == USERS_0003
        async with new.engine.connect() as connection:
            rows = (
                await connection.execute(
                    select(User.id, User.locale, User.spec, User.created).order_by(User.id)
                )
            ).all()
        assert [tuple(row) for row in rows] == [(5, "ru", None, NOON), (6, None, None, NOON)]
        prefs = DbPreferences(new)
        await prefs.set_spec(5, "us-passport")
        assert (await prefs.get_locale(5), await prefs.get_spec(5)) == ("ru", "us-passport")
        assert (await prefs.get_locale(6), await prefs.get_spec(6)) == (None, None)
    finally:
        await new.close()


async def test_0003_downgrades_dropping_the_spec_and_keeping_the_locale(
    database: Database,
) -> None:
    prefs = DbPreferences(database)
    await prefs.set_locale(5, "ru")
    await prefs.set_spec(5, "us-passport")
    await downgrade(database, "0002")
    assert await current_revision(database) == "0002"
    assert (await schema(database))["users"] == USERS_0002
    assert await prefs.get_locale(5) == "ru"
    await upgrade(database)
    assert (await schema(database))["users"] == USERS_0003
    assert (await prefs.get_locale(5), await prefs.get_spec(5)) == ("ru", None)
    # On SQLite the downgrade copied the table (batch mode): nothing else changed.
    assert await differences(database) == []


async def test_0004_widens_the_provider_codes_and_its_downgrade_cuts_them(
    database: Database,
) -> None:
    """Up to 0003 a code over 32 characters was refused by PostgreSQL (``test_ledger`` has
    the commit that hung on it); 0004 keeps 255, and going back cuts what no longer fits."""
    long_code, short_code = "Q" * 200, "E" * 20
    async with database.transaction() as connection:
        await connection.execute(
            insert(UsageRecord),
            [
                {
                    "user_id": 1,
                    "operation": "check",
                    "provider": "huawei",
                    "code": code,
                    "charged": False,
                    "latency_ms": 1,
                    "at": NOON,
                }
                for code in (long_code, short_code)
            ],
        )

    async def codes() -> list[str]:
        async with database.engine.connect() as connection:
            found = await connection.execute(select(UsageRecord.code).order_by(UsageRecord.id))
            return list(found.scalars())

    assert await codes() == [long_code, short_code]
    await downgrade(database, "0003")
    assert await codes() == ["Q" * 32, short_code]
    await upgrade(database)
    assert await current_revision(database) == head_revision()
    assert await differences(database) == []


async def test_downgrade_and_upgrade_again(database: Database) -> None:
    await downgrade(database, "0001")
    assert await current_revision(database) == "0001"
    await downgrade(database, "base")
    assert not (await schema(database))["tables"] & TABLES
    await upgrade(database)
    assert await current_revision(database) == head_revision()


async def test_processes_starting_together_migrate_once(
    database_target: DatabaseTarget,
) -> None:
    databases = await asyncio.gather(*(database_target.open() for _ in range(4)))
    try:
        revisions = {await current_revision(db) for db in databases}
        assert revisions == {head_revision()}
    finally:
        for db in databases:
            await db.close()


async def test_sqlite_gets_its_folder_wal_and_a_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "data" / "bot.db"
    database = await open_database(f"sqlite+aiosqlite:///{path}")
    try:
        assert path.exists()
        async with database.engine.connect() as connection:
            mode = (await connection.exec_driver_sql("PRAGMA journal_mode")).scalar_one()
            timeout = (await connection.exec_driver_sql("PRAGMA busy_timeout")).scalar_one()
        assert (mode, timeout) == ("wal", 30_000)
        assert database.dialect == "sqlite"
    finally:
        await database.close()
