"""Preferences: the chosen language and document spec, in memory and on SQLite/PostgreSQL.

The same behaviours run against ``MemoryPreferences``, ``DbPreferences`` on both
backends and ``CachedPreferences`` over it (loaded, and not yet loaded); what only a
database does (restarts, other processes, one statement per call) follows, then what
the cache adds: reads with no statement, and other processes' changes heard over Redis.
That the ledger's ``/forget`` removes the spec too is in ``test_ledger.py``.
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

from services.prefs import CachedPreferences, Choices, MemoryPreferences, Preferences
from services.specs import catalogue
from services.storage.prefs import DbPreferences
from services.storage.tables import SPEC_LENGTH, User

if TYPE_CHECKING:
    from services.storage.db import Database
    from tests.db import DatabaseTarget, RedisTarget

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


async def forgetting_drops_both_choices_of_that_user_only(prefs: Preferences) -> None:
    await prefs.set_locale(USER, "ru")
    await prefs.set_spec(USER, "us-passport")
    await prefs.set_locale(OTHER, "zh")
    await prefs.forget(USER)
    assert (await prefs.get_locale(USER), await prefs.get_spec(USER)) == (None, None)
    assert await prefs.get_locale(OTHER) == "zh"
    await prefs.forget(USER)  # twice is fine
    await prefs.set_spec(USER, "icao")  # and choosing again starts afresh
    assert (await prefs.get_locale(USER), await prefs.get_spec(USER)) == (None, "icao")


BEHAVIOURS: list[Callable[[Preferences], Awaitable[None]]] = [
    unknown_users_have_neither,
    a_spec_is_set_changed_and_cleared,
    clearing_an_unknown_users_spec_is_harmless,
    the_locale_and_the_spec_are_independent,
    settings_made_at_once_all_land,
    forgetting_drops_both_choices_of_that_user_only,
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


@BY_NAME
@pytest.mark.parametrize("loaded", [True, False], ids=["loaded", "not-loaded"])
async def test_cached_over_the_database(
    behaviour: Callable[[Preferences], Awaitable[None]], loaded: bool, database: Database
) -> None:
    prefs = CachedPreferences(DbPreferences(database))
    if loaded:
        await prefs.start()
    await behaviour(prefs)
    # What memory says is what the database says.
    stored = await DbPreferences(database).load()
    if loaded:
        assert prefs._choices == stored


def test_all_are_preferences() -> None:
    # mypy checks the protocol; this keeps them from drifting at run time too.
    for implementation in (MemoryPreferences, DbPreferences, CachedPreferences):
        for name in ("get_locale", "set_locale", "get_spec", "set_spec", "forget"):
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

    # A SQLite file's transactions run on its standard-driver engine, the rest on the async one.
    engines = [database.engine.sync_engine, *([database.sqlite] if database.sqlite else [])]
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)


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


# ------------------------------------------------------------------ the cache


async def test_loaded_choices_are_read_with_no_statement(database: Database) -> None:
    stored = DbPreferences(database)
    await stored.set_locale(USER, "ru")
    await stored.set_spec(OTHER, "icao")
    prefs = CachedPreferences(stored)
    await prefs.start()
    with statements(database) as seen:
        answers = [
            await prefs.get_locale(USER),
            await prefs.get_spec(USER),
            await prefs.get_locale(OTHER),
            await prefs.get_spec(OTHER),
            await prefs.get_locale(9999),  # a user who never chose: no lookup either
        ]
    assert answers == ["ru", None, None, "icao", None]
    assert seen == []


class ManualFeed:
    """A ``ChangeFeed`` the test drives: it says when the feed listens, loses touch and
    what was announced."""

    def __init__(self) -> None:
        self.announced: list[int] = []
        self.listening = asyncio.Event()
        self.ready: Callable[[], Awaitable[None]] | None = None
        self.changed: Callable[[int], Awaitable[None]] | None = None
        self.lost: Callable[[], None] | None = None

    async def announce(self, user_id: int) -> None:
        self.announced.append(user_id)

    async def follow(
        self,
        ready: Callable[[], Awaitable[None]],
        changed: Callable[[int], Awaitable[None]],
        lost: Callable[[], None],
    ) -> None:
        self.ready, self.changed, self.lost = ready, changed, lost
        await ready()
        await asyncio.Event().wait()

    async def close(self) -> None:
        pass


async def test_a_change_elsewhere_is_seen_once_announced_and_trusted_only_while_listening(
    database: Database,
) -> None:
    feed = ManualFeed()
    prefs = CachedPreferences(DbPreferences(database), feed)
    await prefs.start()
    elsewhere = DbPreferences(database)  # another process writing the same store

    await elsewhere.set_locale(USER, "ru")
    assert await prefs.get_locale(USER) is None  # memory, not yet told
    assert feed.changed is not None and feed.lost is not None and feed.ready is not None
    await feed.changed(USER)
    assert await prefs.get_locale(USER) == "ru"

    await elsewhere.set_spec(OTHER, "icao")
    feed.lost()  # the announcement may be missed: the database answers meanwhile
    assert await prefs.get_spec(OTHER) == "icao"
    await elsewhere.forget(USER)
    await feed.ready()  # listening again: everything reloaded
    with statements(database) as seen:
        assert (await prefs.get_locale(USER), await prefs.get_spec(OTHER)) == (None, "icao")
    assert seen == []

    await prefs.set_locale(OTHER, "en")
    await prefs.forget(OTHER)
    assert feed.announced == [OTHER, OTHER]
    await prefs.close()


async def test_a_choice_made_while_the_store_loads_is_kept(database: Database) -> None:
    stored = DbPreferences(database)
    await stored.set_locale(OTHER, "zh")
    loading, go_on = asyncio.Event(), asyncio.Event()

    class SlowLoad(DbPreferences):
        async def load(self) -> dict[int, Choices]:
            loaded = await super().load()
            loading.set()
            await go_on.wait()
            return loaded

    prefs = CachedPreferences(SlowLoad(database))
    start = asyncio.create_task(prefs.start())
    await loading.wait()
    choose = asyncio.create_task(prefs.set_locale(USER, "ru"))
    await asyncio.sleep(0)
    go_on.set()
    await asyncio.gather(start, choose)
    with statements(database) as seen:
        assert (await prefs.get_locale(USER), await prefs.get_locale(OTHER)) == ("ru", "zh")
    assert seen == []


async def test_processes_hear_each_others_changes_over_redis(
    database_target: DatabaseTarget, redis_target: RedisTarget
) -> None:
    from services.storage.feed import RedisChangeFeed

    channel = redis_target.key("preferences")
    databases = [await database_target.open(), await database_target.open()]
    first, second = (
        CachedPreferences(DbPreferences(db), RedisChangeFeed(redis_target.url, channel))
        for db in databases
    )
    try:
        await first.start()
        await second.start()

        async def seen_by_second(locale: str | None, spec: str | None) -> bool:
            for _ in range(500):  # a bounded wait for the announcement, not a timing assert
                if (await second.get_locale(USER), await second.get_spec(USER)) == (locale, spec):
                    return True
                await asyncio.sleep(0.01)
            return False

        await first.set_locale(USER, "ru")
        assert await seen_by_second("ru", None)
        await first.set_spec(USER, "us-passport")
        assert await seen_by_second("ru", "us-passport")
        await first.forget(USER)
        assert await seen_by_second(None, None)
        assert second._ready  # answered from memory, not from the fallback
    finally:
        await first.close()
        await second.close()
        for db in databases:
            await db.close()


async def test_a_lost_subscription_is_noticed_and_followed_by_a_reload(
    database: Database, redis_target: RedisTarget
) -> None:
    from services.storage.feed import RETRY_SECONDS, RedisChangeFeed

    prefs = CachedPreferences(
        DbPreferences(database), RedisChangeFeed(redis_target.url, redis_target.key("p"))
    )
    await prefs.start()
    admin = redis_target.client()
    try:
        # Redis drops the subscriber; what is written meanwhile is never announced to it.
        assert await admin.client_kill_filter(_type="pubsub") >= 1
        await DbPreferences(database).set_locale(USER, "ru")
        for _ in range(round(10 * RETRY_SECONDS[0] / 0.01)):  # bounded: the first retry, x10
            if prefs._ready and await prefs.get_locale(USER) == "ru":
                break
            await asyncio.sleep(0.01)
        assert prefs._ready
        with statements(database) as seen:
            assert await prefs.get_locale(USER) == "ru"
        assert seen == []
    finally:
        await admin.aclose()
        await prefs.close()
