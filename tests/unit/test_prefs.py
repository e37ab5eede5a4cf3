"""Preferences: the chosen language and document spec, in memory and on SQLite/PostgreSQL.

The same behaviours run against ``MemoryPreferences`` and ``DbPreferences`` on both
backends; what only a database does (restarts, other processes, one statement per
call) follows. That ``/forget`` removes the spec is in ``test_ledger.py``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import event, func, select

from services.prefs import MemoryPreferences, Preferences
from services.specs import catalogue
from services.storage.prefs import DbPreferences
from services.storage.tables import SPEC_LENGTH, User

if TYPE_CHECKING:
    from services.storage.db import Database
    from tests.db import DatabaseTarget

pytest_plugins = ["tests.db"]

USER = 1001
OTHER = 1002
NOON = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


# ------------------------------------------------------------------ shared behaviours


async def unknown_users_have_neither(prefs: Preferences) -> None:
    assert await prefs.get_locale(USER) is None
    assert await prefs.get_spec(USER) is None


async def a_spec_is_set_changed_and_cleared(prefs: Preferences) -> None:
    await prefs.set_spec(USER, "us-passport")
    assert await prefs.get_spec(USER) == "us-passport"
    await prefs.set_spec(USER, "icao")
    assert await prefs.get_spec(USER) == "icao"
    await prefs.set_spec(USER, None)  # back to the generic check
    assert await prefs.get_spec(USER) is None
    await prefs.set_spec(USER, None)  # clearing twice is fine
    assert await prefs.get_spec(USER) is None
    await prefs.set_spec(USER, "us-passport")  # and it can be chosen again
    assert await prefs.get_spec(USER) == "us-passport"


async def clearing_an_unknown_users_spec_is_harmless(prefs: Preferences) -> None:
    await prefs.set_spec(USER, None)
    assert await prefs.get_spec(USER) is None
    assert await prefs.get_locale(USER) is None


async def the_locale_and_the_spec_are_independent(prefs: Preferences) -> None:
    # The locale first, then the spec: the spec's upsert keeps the locale.
    await prefs.set_locale(USER, "ru")
    await prefs.set_spec(USER, "us-passport")
    assert (await prefs.get_locale(USER), await prefs.get_spec(USER)) == ("ru", "us-passport")
    # A new locale keeps the spec.
    await prefs.set_locale(USER, "en")
    assert (await prefs.get_locale(USER), await prefs.get_spec(USER)) == ("en", "us-passport")
    # Clearing the spec keeps the locale.
    await prefs.set_spec(USER, None)
    assert (await prefs.get_locale(USER), await prefs.get_spec(USER)) == ("en", None)
    # The spec first, then the locale: the locale's upsert keeps the spec.
    await prefs.set_spec(OTHER, "icao")
    assert (await prefs.get_locale(OTHER), await prefs.get_spec(OTHER)) == (None, "icao")
    await prefs.set_locale(OTHER, "zh")
    assert (await prefs.get_locale(OTHER), await prefs.get_spec(OTHER)) == ("zh", "icao")
    # And one user's settings are not another's.
    assert (await prefs.get_locale(USER), await prefs.get_spec(USER)) == ("en", None)


async def settings_made_at_once_all_land(prefs: Preferences) -> None:
    # New users choosing both at the same moment: both inserts race for the row, and
    # whichever loses must update only its own column.
    users = range(2000, 2030)
    await asyncio.gather(
        *(prefs.set_locale(user, "ru") for user in users),
        *(prefs.set_spec(user, f"spec-{user}") for user in users),
    )
    for user in users:
        assert (await prefs.get_locale(user), await prefs.get_spec(user)) == (
            "ru",
            f"spec-{user}",
        )


BEHAVIOURS: list[Callable[[Preferences], Awaitable[None]]] = [
    unknown_users_have_neither,
    a_spec_is_set_changed_and_cleared,
    clearing_an_unknown_users_spec_is_harmless,
    the_locale_and_the_spec_are_independent,
    settings_made_at_once_all_land,
]
BY_NAME = pytest.mark.parametrize("behaviour", BEHAVIOURS, ids=lambda b: b.__name__)


@BY_NAME
async def test_in_memory(behaviour: Callable[[Preferences], Awaitable[None]]) -> None:
    await behaviour(MemoryPreferences())


@BY_NAME
async def test_in_the_database(
    behaviour: Callable[[Preferences], Awaitable[None]], database: Database
) -> None:
    await behaviour(DbPreferences(database))


def test_both_are_preferences() -> None:
    # mypy checks the protocol; this keeps the two from drifting at run time too.
    for implementation in (MemoryPreferences, DbPreferences):
        for name in ("get_locale", "set_locale", "get_spec", "set_spec"):
            assert inspect.iscoroutinefunction(getattr(implementation, name)), name


def test_every_spec_id_fits_the_column() -> None:
    ids = [spec.id for spec in catalogue().specs]
    assert "us-passport" in ids
    assert max(len(spec_id) for spec_id in ids) <= SPEC_LENGTH


# ------------------------------------------------------------------ the database alone


async def rows(database: Database) -> int:
    async with database.engine.connect() as connection:
        return int((await connection.execute(select(func.count()).select_from(User))).scalar_one())


async def test_the_spec_survives_a_restart_and_is_shared_by_processes(
    database_target: DatabaseTarget,
) -> None:
    first = await database_target.open()
    second = await database_target.open()  # another bot process on the same store
    try:
        await DbPreferences(first).set_locale(USER, "ru")
        await DbPreferences(first).set_spec(USER, "us-passport")
        await DbPreferences(second).set_spec(OTHER, "icao")
        assert await DbPreferences(second).get_spec(USER) == "us-passport"
        assert await DbPreferences(first).get_spec(OTHER) == "icao"
    finally:
        await first.close()
        await second.close()

    restarted = await database_target.open()
    try:
        prefs = DbPreferences(restarted)
        assert (await prefs.get_locale(USER), await prefs.get_spec(USER)) == ("ru", "us-passport")
        assert (await prefs.get_locale(OTHER), await prefs.get_spec(OTHER)) == (None, "icao")
        await prefs.set_spec(USER, None)
    finally:
        await restarted.close()

    restarted = await database_target.open()
    try:
        prefs = DbPreferences(restarted)
        assert (await prefs.get_locale(USER), await prefs.get_spec(USER)) == ("ru", None)
    finally:
        await restarted.close()


async def test_a_spec_makes_a_row_with_an_aware_time_and_clearing_makes_none(
    database: Database,
) -> None:
    prefs = DbPreferences(database, clock=lambda: NOON)
    await prefs.set_spec(USER, None)  # nothing to keep about a user who chose nothing
    assert await rows(database) == 0
    await prefs.set_spec(USER, "us-passport")
    async with database.engine.connect() as connection:
        row = (await connection.execute(select(User.locale, User.spec, User.created))).one()
    assert tuple(row) == (None, "us-passport", NOON)
    await prefs.set_spec(USER, None)
    assert await rows(database) == 1  # the row stays (it may hold a locale); /forget drops it


async def test_a_spec_id_longer_than_the_column_is_refused(database: Database) -> None:
    prefs = DbPreferences(database)
    longest = "x" * SPEC_LENGTH
    await prefs.set_spec(USER, longest)
    assert await prefs.get_spec(USER) == longest
    with pytest.raises(ValueError, match="longer than"):
        await prefs.set_spec(USER, longest + "x")
    assert await prefs.get_spec(USER) == longest


@contextmanager
def statements(database: Database) -> Iterator[list[str]]:
    """The SQL statements ``database`` sends meanwhile, transaction control left out."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        sql = str(args[2]).strip()
        if sql.split(None, 1)[0].upper() not in {"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT"}:
            seen.append(sql)

    event.listen(database.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", record)


async def test_each_call_is_one_statement(database: Database) -> None:
    prefs = DbPreferences(database)
    await prefs.get_locale(USER)  # let the pool open its connection first
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: prefs.set_spec(USER, "us-passport"),  # insert
        lambda: prefs.set_spec(USER, "icao"),  # conflict: update
        lambda: prefs.set_locale(USER, "ru"),
        lambda: prefs.get_spec(USER),
        lambda: prefs.get_locale(USER),
        lambda: prefs.set_spec(USER, None),
    ]
    for call in calls:
        with statements(database) as seen:
            await call()
        assert len(seen) == 1, seen
