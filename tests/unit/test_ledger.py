"""The ledger on SQLite and PostgreSQL: exact counts under concurrency, expiry, days."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import func, select

from services.errors import ServiceError
from services.ledger import CallCount, Ledger, QuotaExceeded, Reservation
from services.models import Operation
from services.storage.db import Database
from services.storage.prefs import DbPreferences
from services.storage.tables import CODE_LENGTH, QuotaCounter, UsageRecord, User
from services.storage.tables import Reservation as ReservationRow

if TYPE_CHECKING:
    from tests.db import DatabaseTarget, FakeClock

pytest_plugins = ["tests.db"]

ROOT = Path(__file__).resolve().parents[2]
NOON = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
USER = 1001


def ledger(database: Database, clock: FakeClock | None = None, **options: object) -> Ledger:
    options.setdefault("daily_limit", 10)
    return Ledger(database, clock=clock or (lambda: NOON), **options)  # type: ignore[arg-type]


async def scalar(database: Database, statement: object) -> int:
    async with database.engine.connect() as connection:
        return int((await connection.execute(statement)).scalar_one())  # type: ignore[call-overload]


async def used_in_db(database: Database, user: int, operation: Operation) -> int:
    return await scalar(
        database,
        select(func.coalesce(func.sum(QuotaCounter.used), 0)).where(
            QuotaCounter.user_id == user, QuotaCounter.operation == operation.value
        ),
    )


async def charged_records(database: Database, user: int) -> int:
    return await scalar(
        database,
        select(func.count())
        .select_from(UsageRecord)
        .where(UsageRecord.user_id == user, UsageRecord.charged.is_(True)),
    )


async def call(book: Ledger, user: int, operation: Operation, *, charged: bool) -> bool:
    """reserve → provider → commit, as the bot does; False when the quota refused."""
    try:
        reservation = await book.reserve(user, operation, "jumdata", admin=False)
    except QuotaExceeded:
        return False
    await asyncio.sleep(0)  # the provider call
    await book.commit(reservation, charged=charged, code=None if charged else 205, latency_ms=7)
    return True


# ------------------------------------------------------------------ concurrency


async def test_200_concurrent_reservations_against_10_end_with_exactly_10(
    database_target: DatabaseTarget,
) -> None:
    # Three "processes" (engines with their own pools) share one database.
    databases = [await database_target.open(pool_size=10, max_overflow=10) for _ in range(3)]
    try:
        books = [ledger(db, daily_limit=10) for db in databases]
        results = await asyncio.gather(
            *(call(books[i % 3], USER, Operation.CHECK, charged=True) for i in range(200))
        )
        assert sum(results) == 10
        assert await used_in_db(databases[0], USER, Operation.CHECK) == 10
        assert await charged_records(databases[0], USER) == 10
        status = (await books[1].remaining(USER))[Operation.CHECK]
        assert (status.limit, status.used, status.remaining) == (10, 10, 0)
        with pytest.raises(QuotaExceeded):
            await books[2].reserve(USER, Operation.CHECK, "jumdata", admin=False)
    finally:
        for db in databases:
            await db.close()


async def test_truly_concurrent_postgres_connections_take_exactly_the_limit(
    postgres_target: DatabaseTarget,
) -> None:
    """On PostgreSQL the upserts really overlap (SQLite serialises writers by design)."""
    db = await postgres_target.open(pool_size=40, max_overflow=0)
    try:
        book = ledger(db, daily_limit=10)
        start = asyncio.Event()

        async def one() -> bool:
            await start.wait()
            return await call(book, USER, Operation.COMPARE, charged=True)

        tasks = [asyncio.create_task(one()) for _ in range(40)]
        # Warm the pool so that the 40 calls start on 40 open connections at once.
        async with asyncio.TaskGroup() as group:
            connections = [await db.engine.connect() for _ in range(40)]
            for connection in connections:
                group.create_task(connection.close())
        start.set()
        assert sum(await asyncio.gather(*tasks)) == 10
        assert await used_in_db(db, USER, Operation.COMPARE) == 10
    finally:
        await db.close()


async def test_not_charged_answers_free_their_units_under_concurrency(
    database: Database,
) -> None:
    book = ledger(database, daily_limit=10)

    async def attempt(i: int) -> tuple[bool, bool]:
        charged = i % 3 != 0
        return await call(book, USER, Operation.DETECT, charged=charged), charged

    results = await asyncio.gather(*(attempt(i) for i in range(200)))
    charged_calls = sum(1 for done, charged in results if done and charged)
    assert charged_calls <= 10
    assert await used_in_db(database, USER, Operation.DETECT) == charged_calls
    assert await charged_records(database, USER) == charged_calls


CHILD = """
import asyncio, json, os, sys
from services.models import Operation
from services.ledger import Ledger, QuotaExceeded
from services.storage.db import open_database

async def main(calls: int) -> None:
    schema = os.environ["TEST_DATABASE_SCHEMA"]
    options = {"connect_args": {"server_settings": {"search_path": schema}}} if schema else {}
    db = await open_database(os.environ["TEST_DATABASE_URL"], pool_size=10, **options)
    book = Ledger(db, daily_limit=10)
    sys.stdout.write("ready\\n"); sys.stdout.flush()
    sys.stdin.readline()

    async def one() -> bool:
        try:
            reservation = await book.reserve(7, Operation.ANALYZE, "jdcloud", admin=False)
        except QuotaExceeded:
            return False
        await book.commit(reservation, charged=True, latency_ms=1)
        return True

    results = await asyncio.gather(*(one() for _ in range(calls)))
    await db.close()
    print(json.dumps(sum(results)))

asyncio.run(main(int(sys.argv[1])))
"""


async def test_several_processes_share_one_database_exactly(
    database_target: DatabaseTarget,
) -> None:
    """Three OS processes, 70 calls each, one user, limit 10: exactly 10 charged."""
    db = await database_target.open()  # migrated once; the children migrate too (no-op)
    env = {**os.environ, **database_target.env, "PYTHONPATH": str(ROOT)}
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CHILD,
            "70",
            cwd=ROOT,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(3)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            line = await asyncio.wait_for(child.stdout.readline(), 60)
            if line.strip() != b"ready":
                _, err = await child.communicate()
                pytest.fail(f"child did not start: {line!r} {err.decode()[-2000:]}")
        for child in children:  # all start hammering together
            assert child.stdin is not None
            child.stdin.write(b"go\n")
            await child.stdin.drain()
        outputs = [await asyncio.wait_for(child.communicate(), 120) for child in children]
        for child, (_, err) in zip(children, outputs, strict=True):
            assert child.returncode == 0, err.decode()[-2000:]
        assert sum(json.loads(out) for out, _ in outputs) == 10
        assert await used_in_db(db, 7, Operation.ANALYZE) == 10
        assert await charged_records(db, 7) == 10
    finally:
        for child in children:
            if child.returncode is None:
                child.kill()
                await child.wait()
        await db.close()


# ------------------------------------------------------------------ expiry


async def test_a_crash_between_reserve_and_commit_releases_after_expiry(
    database_target: DatabaseTarget, clock: FakeClock
) -> None:
    crashed_db = await database_target.open()
    survivor_db = await database_target.open()
    try:
        crashed = ledger(crashed_db, clock, daily_limit=2, reservation_ttl=300)
        first = await crashed.reserve(USER, Operation.CHECK, "jumdata", admin=False)
        second = await crashed.reserve(USER, Operation.CHECK, "jumdata", admin=False)
        await crashed_db.close()  # the process dies mid-call

        survivor = ledger(survivor_db, clock, daily_limit=2, reservation_ttl=300)
        with pytest.raises(QuotaExceeded):
            await survivor.reserve(USER, Operation.CHECK, "jumdata", admin=False)
        clock.advance(seconds=299)
        assert (await survivor.remaining(USER))[Operation.CHECK].remaining == 0
        with pytest.raises(QuotaExceeded):
            await survivor.reserve(USER, Operation.CHECK, "jumdata", admin=False)

        clock.advance(seconds=2)  # both reservations are now past their expiry
        assert (await survivor.remaining(USER))[Operation.CHECK].used == 0
        fresh = await survivor.reserve(USER, Operation.CHECK, "jumdata", admin=False)
        await survivor.commit(fresh, charged=True)
        assert (await survivor.remaining(USER))[Operation.CHECK].used == 1

        # A late release must not give the unit back twice...
        assert await survivor.release(first) is True
        assert await survivor.release(first) is False
        assert (await survivor.remaining(USER))[Operation.CHECK].used == 1
        # ...and a late charged commit counts what the provider really billed.
        assert await survivor.commit(second, charged=True, latency_ms=400_000) is True
        assert await survivor.commit(second, charged=True) is False
        assert await used_in_db(survivor_db, USER, Operation.CHECK) == 2
        assert await charged_records(survivor_db, USER) == 2
    finally:
        await survivor_db.close()


async def test_a_reservation_outliving_its_ttl_never_takes_the_unit_twice(
    database: Database, clock: FakeClock
) -> None:
    """Limit 1: a call outlives RESERVATION_TTL, its unit is swept back and taken by the next
    call; the late charged commit is booked but must not make it "used 2 of 1"."""
    book = ledger(database, clock, daily_limit=1, reservation_ttl=60)
    slow = await book.reserve(USER, Operation.CHECK, "jumdata", admin=False)
    clock.advance(seconds=61)
    assert await book.expire_stale() == 1  # swept: the unit is free again
    assert await used_in_db(database, USER, Operation.CHECK) == 0
    assert await book.commit(slow, charged=True, latency_ms=61_000) is True
    assert await used_in_db(database, USER, Operation.CHECK) == 1  # it charged: counted again

    clock.advance(days=1)  # a new day, a fresh unit
    slower = await book.reserve(USER, Operation.CHECK, "jumdata", admin=False)
    clock.advance(seconds=61)
    sweeper = await book.reserve(USER, Operation.CHECK, "jumdata", admin=False)  # sweeps, takes
    assert await book.commit(slower, charged=True, latency_ms=61_000) is True
    assert await book.commit(sweeper, charged=True, latency_ms=10) is True
    status = (await book.remaining(USER))[Operation.CHECK]
    assert (status.limit, status.used, status.remaining) == (1, 1, 0)
    assert await charged_records(database, USER) == 3  # every charged call is in the books


async def test_a_spent_unit_is_kept_however_the_request_ends(
    database: Database, clock: FakeClock
) -> None:
    """One request, one unit: a charged failure marks it spent, and no later end of the
    request (a failure, a release, an expiry and a late commit) gives it back or takes
    another."""
    book = ledger(database, clock, daily_limit=3, reservation_ttl=60)
    first = await book.reserve(USER, Operation.COMPARE, "jdcloud", admin=False)
    first = await book.record(first, charged=True, code="10043", latency_ms=5)
    assert first.spent
    first = await book.move(first, "local")
    assert await book.commit(first, charged=False, code="timeout") is True

    second = await book.reserve(USER, Operation.COMPARE, "jdcloud", admin=False)
    second = await book.record(second, charged=True, code="10043")
    assert await book.release(second) is True

    third = await book.reserve(USER, Operation.COMPARE, "jdcloud", admin=False)
    third = await book.move(await book.record(third, charged=True, code="10043"), "local")
    clock.advance(seconds=61)
    assert await book.expire_stale() == 0  # nothing given back: the provider charged
    assert await book.commit(third, charged=False) is True  # the local answer, very late
    assert await used_in_db(database, USER, Operation.COMPARE) == 3

    free = await book.reserve(USER + 1, Operation.COMPARE, "jdcloud", admin=False)
    free = await book.record(free, charged=False, code="http_503")
    assert not free.spent
    assert await book.release(free) is True
    assert await used_in_db(database, USER + 1, Operation.COMPARE) == 0
    stats = await book.stats()
    # Six calls in the books; the charged rows are the units taken.
    assert stats.calls[(Operation.COMPARE, "jdcloud")] == CallCount(4, 3)
    assert stats.calls[(Operation.COMPARE, "local")] == CallCount(2, 0)


async def test_a_charged_call_booked_after_expiry_takes_the_unit_again_only_if_free(
    database: Database, clock: FakeClock
) -> None:
    """``record`` of a swept reservation: the unit comes back (and is spent) while the
    allowance has it; once the user has taken it meanwhile, the call is booked, not counted."""
    book = ledger(database, clock, daily_limit=1, reservation_ttl=60)
    slow = await book.reserve(USER, Operation.COMPARE, "jdcloud", admin=False)
    clock.advance(seconds=61)
    assert await book.expire_stale() == 1
    slow = await book.record(slow, charged=True, code="10043")
    assert slow.spent and await used_in_db(database, USER, Operation.COMPARE) == 1
    assert await book.commit(slow, charged=False) is True  # spent: kept, not given back
    assert await used_in_db(database, USER, Operation.COMPARE) == 1

    clock.advance(days=1)
    slower = await book.reserve(USER, Operation.COMPARE, "jdcloud", admin=False)
    clock.advance(seconds=61)
    taker = await book.reserve(USER, Operation.COMPARE, "jdcloud", admin=False)  # sweeps, takes
    slower = await book.record(slower, charged=True, code="10043")
    assert not slower.spent
    assert await book.commit(slower, charged=True) is True
    assert await book.commit(taker, charged=True) is True
    assert (await book.remaining(USER))[Operation.COMPARE].used == 1  # not 2 of 1
    assert await charged_records(database, USER) == 4


@pytest.mark.parametrize("keep", [False, True])
async def test_an_unknown_outcome_is_booked_and_its_unit_follows_the_setting(
    database: Database, keep: bool
) -> None:
    book = ledger(database, daily_limit=1, keep_unit_on_unknown=keep)
    reservation = await book.reserve(USER, Operation.CHECK, "jumdata", admin=False)
    assert await book.commit(reservation, charged=False, unknown=True, code="timeout")
    assert await used_in_db(database, USER, Operation.CHECK) == (1 if keep else 0)
    async with database.engine.connect() as connection:
        row = (await connection.execute(select(UsageRecord.charged, UsageRecord.unknown))).one()
    assert tuple(row) == (False, True)


async def test_expire_stale_sweeps_every_user_and_prunes(
    database: Database, clock: FakeClock
) -> None:
    book = ledger(database, clock, daily_limit=3, reservation_ttl=60)
    for user in (1, 2, 3):
        await book.reserve(user, Operation.DETECT, "local", admin=False)
    assert await book.expire_stale() == 0
    clock.advance(seconds=61)
    assert await book.expire_stale() == 3
    assert await book.expire_stale() == 0
    assert await used_in_db(database, 2, Operation.DETECT) == 0

    clock.advance(days=3)
    await book.expire_stale()
    assert await scalar(database, select(func.count()).select_from(ReservationRow)) == 0
    assert await scalar(database, select(func.count()).select_from(QuotaCounter)) == 0


async def test_release_gives_the_unit_back_once(database: Database) -> None:
    book = ledger(database, daily_limit=1)
    reservation = await book.reserve(USER, Operation.COMPARE, "jdcloud", admin=False)
    assert await book.release(reservation) is True
    assert await book.release(reservation) is False
    again = await book.reserve(USER, Operation.COMPARE, "jdcloud", admin=False)
    assert await book.commit(again, charged=True) is True
    assert (await book.remaining(USER))[Operation.COMPARE].used == 1


# ------------------------------------------------------------------ days


async def test_day_rolls_over_at_midnight_in_the_quota_timezone(
    database: Database, clock: FakeClock
) -> None:
    # 23:59 in Moscow (UTC+3) is 20:59 UTC.
    clock.set(datetime(2025, 3, 10, 20, 59, tzinfo=UTC))
    moscow = ledger(database, clock, daily_limit=1, timezone="Europe/Moscow")
    utc = ledger(database, clock, daily_limit=1, timezone="UTC")

    assert await call(moscow, USER, Operation.CHECK, charged=True)
    with pytest.raises(QuotaExceeded) as refused:
        await moscow.reserve(USER, Operation.CHECK, "jumdata", admin=False)
    midnight_moscow = datetime(2025, 3, 10, 21, 0, tzinfo=UTC)
    assert refused.value.resets_at == midnight_moscow
    assert (await moscow.remaining(USER))[Operation.CHECK].resets_at == midnight_moscow

    late = await moscow.reserve(USER + 1, Operation.CHECK, "jumdata", admin=False)
    clock.advance(minutes=1)  # 00:00 in Moscow, still 21:00 on the 10th in UTC
    status = (await moscow.remaining(USER))[Operation.CHECK]
    assert (status.used, status.remaining) == (0, 1)
    assert status.resets_at == datetime(2025, 3, 11, 21, 0, tzinfo=UTC)
    assert await call(moscow, USER, Operation.CHECK, charged=True)
    assert moscow.today() == date(2025, 3, 11)
    assert utc.today() == date(2025, 3, 10)

    # A call that started before midnight belongs to the day it started on.
    await moscow.commit(late, charged=False)
    assert await call(moscow, USER + 1, Operation.CHECK, charged=True)
    async with database.engine.connect() as connection:
        rows = (
            await connection.execute(
                select(QuotaCounter.day, QuotaCounter.used).where(QuotaCounter.user_id == USER + 1)
            )
        ).all()
    assert sorted(rows) == [(date(2025, 3, 10), 0), (date(2025, 3, 11), 1)]


# ------------------------------------------------------------------ limits


async def test_admins_have_no_limit_but_are_counted(database: Database) -> None:
    book = ledger(database, daily_limit=1)
    for _ in range(5):
        reservation = await book.reserve(USER, Operation.ANALYZE, "jdcloud", admin=True)
        await book.commit(reservation, charged=True)
    status = (await book.remaining(USER, admin=True))[Operation.ANALYZE]
    assert (status.limit, status.used, status.remaining) == (None, 5, None)
    assert (await book.remaining(USER + 1))[Operation.ANALYZE].remaining == 1
    assert await call(book, USER + 1, Operation.ANALYZE, charged=True)
    assert not await call(book, USER + 1, Operation.ANALYZE, charged=True)
    stats = await book.stats()
    assert stats.calls[(Operation.ANALYZE, "jdcloud")] == CallCount(5, 5)
    assert stats.calls[(Operation.ANALYZE, "jumdata")] == CallCount(1, 1)


async def test_limit_zero_means_no_limit(database: Database) -> None:
    book = ledger(database, daily_limit=0)
    results = await asyncio.gather(
        *(call(book, USER, Operation.CHECK, charged=True) for _ in range(50))
    )
    assert all(results)
    status = (await book.remaining(USER))[Operation.CHECK]
    assert (status.limit, status.used, status.remaining) == (None, 50, None)


async def test_limits_are_per_operation_and_per_user(database: Database) -> None:
    book = ledger(database, daily_limit=1)
    for operation in Operation:
        assert await call(book, USER, operation, charged=True)
        assert not await call(book, USER, operation, charged=True)
    assert await call(book, USER + 1, Operation.CHECK, charged=True)
    remaining = await book.remaining(USER)
    assert set(remaining) == set(Operation)
    assert all(status.remaining == 0 for status in remaining.values())


async def test_a_not_charged_answer_costs_nothing(database: Database) -> None:
    book = ledger(database, daily_limit=1)
    for _ in range(5):
        assert await call(book, USER, Operation.CHECK, charged=False)
    assert (await book.remaining(USER))[Operation.CHECK].remaining == 1
    assert await call(book, USER, Operation.CHECK, charged=True)
    assert (await book.remaining(USER))[Operation.CHECK].remaining == 0
    stats = await book.stats()
    assert stats.calls[(Operation.CHECK, "jumdata")] == CallCount(calls=6, charged=1)
    assert stats.calls[(Operation.CHECK, "jumdata")].free == 5
    assert stats.errors == {("jumdata", "205"): 5}


def test_quota_exceeded_is_a_service_error_with_its_values() -> None:
    resets = datetime(2025, 3, 11, tzinfo=UTC)
    error = QuotaExceeded(Operation.COMPARE, 5, resets)
    assert isinstance(error, ServiceError)
    assert error.message_id == "quota.exceeded"
    assert error.values == {"operation": Operation.COMPARE, "limit": 5, "resets_at": resets}


async def test_the_provider_that_was_reserved_for_is_recorded(database: Database) -> None:
    book = ledger(database)
    reservation = await book.reserve(USER, Operation.CHECK, "jumdata", admin=False)
    assert isinstance(reservation, Reservation)
    await book.commit(reservation, charged=True, latency_ms=12)
    stats = await book.stats()
    assert stats.calls == {(Operation.CHECK, "jumdata"): CallCount(1, 1)}


@pytest.mark.parametrize("length", [33, 255, 400])
async def test_a_long_provider_code_is_recorded_on_every_backend(
    database: Database, length: int
) -> None:
    """Huawei's ``error_code`` and JD's ``status`` are free text: a code over the old
    32-character column broke the commit on PostgreSQL and left the reservation hanging."""
    book = ledger(database)
    code = "E" * length
    reservation = await book.reserve(USER, Operation.CHECK, "huawei", admin=False)
    assert await book.commit(reservation, charged=False, code=code, latency_ms=5)
    async with database.engine.connect() as connection:
        stored = (await connection.execute(select(UsageRecord.code))).scalar_one()
    assert stored == code[:CODE_LENGTH]
    assert await used_in_db(database, USER, Operation.CHECK) == 0  # released, not hanging
    assert (await book.stats()).errors == {("huawei", code[:CODE_LENGTH]): 1}


# ------------------------------------------------------------------ forget, stats, prefs


async def test_forget_deletes_what_is_kept_but_not_todays_count(database: Database) -> None:
    book = ledger(database, daily_limit=3)
    prefs = DbPreferences(database)
    await prefs.set_locale(USER, "ru")
    await prefs.set_spec(USER, "us-passport")
    await prefs.set_locale(USER + 1, "en")
    await prefs.set_spec(USER + 1, "icao")
    await prefs.set_spec(USER + 2, "us-passport")  # a spec without a locale
    assert await call(book, USER, Operation.CHECK, charged=True)
    assert await call(book, USER, Operation.COMPARE, charged=False)
    assert await call(book, USER + 1, Operation.CHECK, charged=True)
    pending = await book.reserve(USER, Operation.DETECT, "jumdata", admin=False)

    await book.forget(USER)
    await book.forget(USER + 2)

    assert (await prefs.get_locale(USER), await prefs.get_spec(USER)) == (None, None)
    assert await prefs.get_spec(USER + 2) is None
    assert (await prefs.get_locale(USER + 1), await prefs.get_spec(USER + 1)) == ("en", "icao")

    async def rows(model: Any, column: Any) -> int:
        return await scalar(database, select(func.count()).select_from(model).where(column == USER))

    assert await rows(User, User.id) == 0
    assert await rows(UsageRecord, UsageRecord.user_id) == 0
    assert await rows(ReservationRow, ReservationRow.user_id) == 1  # the call in flight
    # Today's count stays, so forgetting is no way around the daily limit.
    remaining = await book.remaining(USER)
    assert remaining[Operation.CHECK].used == 1
    assert remaining[Operation.DETECT].used == 1  # the call in flight holds its unit
    # ...and ends as any other: not charged, the unit comes back; the books get the call.
    assert await book.commit(pending, charged=False, code=205) is True
    assert (await book.remaining(USER))[Operation.DETECT].used == 0
    assert await rows(ReservationRow, ReservationRow.user_id) == 0
    assert await rows(UsageRecord, UsageRecord.user_id) == 1
    assert (await book.stats()).busiest == [(USER, 1), (USER + 1, 1)]


async def test_stats_of_a_day(database: Database, clock: FakeClock) -> None:
    clock.set(datetime(2025, 3, 9, 23, 0, tzinfo=UTC))
    book = ledger(database, clock, daily_limit=0)
    assert await call(book, 9, Operation.CHECK, charged=True)  # yesterday: not counted
    clock.set(NOON)
    for _ in range(3):
        assert await call(book, 1, Operation.CHECK, charged=True)
    assert await call(book, 1, Operation.CHECK, charged=False)
    for _ in range(2):
        assert await call(book, 2, Operation.DETECT, charged=True)
    reservation = await book.reserve(3, Operation.COMPARE, "jdcloud", admin=False)
    await book.commit(reservation, charged=False, code="10043")
    reservation = await book.reserve(3, Operation.COMPARE, "jdcloud", admin=True)
    await book.commit(reservation, charged=True, latency_ms=30)
    pending = await book.reserve(4, Operation.ANALYZE, "jdcloud", admin=False)  # not finished

    stats = await book.stats(top=2)
    assert stats.day == date(2025, 3, 10)
    assert stats.calls == {
        (Operation.CHECK, "jumdata"): CallCount(4, 3),
        (Operation.DETECT, "jumdata"): CallCount(2, 2),
        (Operation.COMPARE, "jdcloud"): CallCount(2, 1),
    }
    assert stats.total == CallCount(8, 6)
    assert stats.errors == {("jumdata", "205"): 1, ("jdcloud", "10043"): 1}
    assert stats.busiest == [(1, 4), (2, 2)]
    assert (await book.stats(date(2025, 3, 9))).busiest == [(9, 1)]
    assert (await book.stats(date(2025, 3, 8))).calls == {}
    await book.release(pending)


async def test_preferences_round_trip_and_survive_a_restart(
    database_target: DatabaseTarget,
) -> None:
    db = await database_target.open()
    try:
        prefs = DbPreferences(db)
        assert await prefs.get_locale(USER) is None
        await prefs.set_locale(USER, "zh")
        assert await prefs.get_locale(USER) == "zh"
        await prefs.set_locale(USER, "ru")
        await asyncio.gather(*(prefs.set_locale(u, "en") for u in range(50, 80)))
    finally:
        await db.close()
    db = await database_target.open()
    try:
        prefs = DbPreferences(db)
        assert await prefs.get_locale(USER) == "ru"
        assert await prefs.get_locale(60) == "en"
        async with db.engine.connect() as connection:
            created = (
                await connection.execute(select(User.created).where(User.id == USER))
            ).scalar_one()
        assert created.tzinfo is not None
    finally:
        await db.close()


async def test_usage_records_never_hold_more_than_the_call(database: Database) -> None:
    columns = {column.name for column in UsageRecord.__table__.columns}
    assert columns == {
        "id",
        "user_id",
        "operation",
        "provider",
        "code",
        "charged",
        "unknown",
        "latency_ms",
        "at",
    }


def test_ledger_from_settings() -> None:
    from services.config import ServiceSettings

    settings = ServiceSettings(
        _env_file=None,  # type: ignore[call-arg]
        user_daily_limit=4,
        quota_timezone="Asia/Tokyo",
        reservation_ttl=90,
        keep_unit_on_unknown=True,
    )
    book = Ledger.from_settings(None, settings)  # type: ignore[arg-type]
    assert book.keep_unit_on_unknown is True
    assert book.daily_limit == 4
    assert book.reservation_ttl == timedelta(seconds=90)
    assert str(book.days.zone) == "Asia/Tokyo"
