"""``Metering.run``: the answer's picture is drawn while the call is recorded, and the call
is recorded however the picture fares; the quota is looked at before any work, one request
takes one unit, a call of unknown outcome counts against the budget, and a burst cannot
overshoot the reserve."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from services import metering as metering_module
from services.budget import ProviderBudgets, ProviderSpent
from services.config import ServiceSettings
from services.errors import ImageError, ImageProblem, ProviderError, ProviderUnavailableError
from services.ledger import CallCount, Ledger, QuotaExceeded
from services.metering import Caller, Metering, timing_problems
from services.models import Operation, Usage
from services.providers.base import Provider
from services.providers.http import HttpRequest, HttpTransport
from services.storage.tables import Reservation, UsageRecord

if TYPE_CHECKING:
    from services.storage.db import Database
    from tests.db import DatabaseTarget, FakeClock

pytest_plugins = ["tests.db"]

USER = Caller(1001)


@dataclass(frozen=True)
class Answer:
    provider: str
    usage: Usage


class Cloud(Provider):
    name = "jumdata"

    async def close(self) -> None:
        pass


class WaitingLedger(Ledger):
    """A ledger whose commit waits until the picture has started: run one after the
    other, the two would never meet."""

    def __init__(self, database: Database, started: asyncio.Event) -> None:
        super().__init__(database, daily_limit=10)
        self.started = started

    async def commit(self, *args: object, **kwargs: object) -> bool:
        await asyncio.wait_for(self.started.wait(), 5)
        return await super().commit(*args, **kwargs)  # type: ignore[arg-type]


async def prepared(_provider: Provider) -> str:
    return "photo"


async def charged(_provider: Provider, _photo: str) -> Answer:
    return Answer("jumdata", Usage(charged=True))


async def test_the_picture_is_drawn_while_the_call_is_recorded(database: Database) -> None:
    started, drawn = asyncio.Event(), asyncio.Event()
    ledger = WaitingLedger(database, started)
    metering = Metering(ledger, ProviderBudgets(database))

    async def draw(_provider: Provider, photo: str, answer: Answer) -> None:
        assert (photo, answer.usage.charged) == ("photo", True)
        started.set()
        await asyncio.sleep(0)
        drawn.set()

    answered = await metering.run(Operation.CHECK, USER, [Cloud()], prepared, charged, then=draw)
    assert drawn.is_set() and answered.result.usage.charged
    status = await ledger.remaining(USER.user_id)
    assert status[Operation.CHECK].used == 1


async def test_a_failed_picture_still_leaves_the_call_recorded(database: Database) -> None:
    ledger = Ledger(database, daily_limit=10)
    metering = Metering(ledger, ProviderBudgets(database))

    async def broken(_provider: Provider, _photo: str, _answer: Answer) -> None:
        raise OSError("the picture could not be drawn")

    with pytest.raises(OSError, match="could not be drawn"):
        await metering.run(Operation.CHECK, USER, [Cloud()], prepared, charged, then=broken)
    status = await ledger.remaining(USER.user_id)
    assert status[Operation.CHECK].used == 1  # the provider charged: so does the ledger
    stats = await ledger.stats()
    assert sum(count.charged for count in stats.calls.values()) == 1


async def test_the_books_failure_is_raised_before_the_pictures(database: Database) -> None:
    class BrokenLedger(Ledger):
        async def commit(self, *args: object, **kwargs: object) -> bool:
            raise RuntimeError("the ledger is down")

    finished = asyncio.Event()

    async def draw(_provider: Provider, _photo: str, _answer: Answer) -> None:
        await asyncio.sleep(0)
        finished.set()
        raise OSError("the picture could not be drawn")

    metering = Metering(BrokenLedger(database, daily_limit=10), ProviderBudgets(database))
    with pytest.raises(RuntimeError, match="ledger is down"):
        await metering.run(Operation.CHECK, USER, [Cloud()], prepared, charged, then=draw)
    assert finished.is_set()  # both ran to their end before the error was raised


# ------------------------------------------------------------------ the books (issue 12)


class Jd(Provider):
    name = "jdcloud"

    async def close(self) -> None:
        pass


class Local(Provider):
    name = "local"
    billable = False

    async def close(self) -> None:
        pass


class Preparing:
    """A ``prepare`` that notes every provider it prepared a photo for (the decode and fit)."""

    def __init__(self, error: Exception | None = None) -> None:
        self.ran: list[str] = []
        self.error = error

    async def __call__(self, provider: Provider) -> str:
        self.ran.append(provider.name)
        if self.error is not None:
            raise self.error
        return "photo"


async def usage_rows(database: Database) -> list[tuple[str, bool, bool, str | None]]:
    """(provider, charged, unknown, code) of every usage row, in order."""
    async with database.engine.connect() as connection:
        rows = await connection.execute(
            select(
                UsageRecord.provider, UsageRecord.charged, UsageRecord.unknown, UsageRecord.code
            ).order_by(UsageRecord.id)
        )
        return [(p, bool(c), bool(u), code) for p, c, u, code in rows]


async def test_a_user_over_the_limit_gets_no_photo_decoded(database: Database) -> None:
    ledger = Ledger(database, daily_limit=1)
    metering = Metering(ledger, ProviderBudgets(database))
    prepare = Preparing()
    await metering.run(Operation.CHECK, USER, [Cloud()], prepare, charged)
    assert prepare.ran == ["jumdata"]

    with pytest.raises(QuotaExceeded):
        await metering.run(Operation.CHECK, USER, [Cloud()], prepare, charged)
    assert prepare.ran == ["jumdata"]  # the quota was looked at first: no second decode


async def test_bad_input_gives_the_unit_back_and_records_nothing(database: Database) -> None:
    ledger = Ledger(database, daily_limit=1)
    metering = Metering(ledger, ProviderBudgets(database))
    bad = Preparing(ImageError(ImageProblem.CORRUPT))
    with pytest.raises(ImageError):
        await metering.run(Operation.CHECK, USER, [Cloud()], bad, charged)
    assert bad.ran == ["jumdata"]
    assert (await ledger.remaining(USER.user_id))[Operation.CHECK].used == 0
    assert await usage_rows(database) == []
    # The unit is there for the next photo.
    await metering.run(Operation.CHECK, USER, [Cloud()], Preparing(), charged)
    assert (await ledger.remaining(USER.user_id))[Operation.CHECK].used == 1


async def test_a_charged_cloud_failure_and_the_local_answer_take_one_unit(
    database: Database,
) -> None:
    """At the last unit the user gets the local answer, not "quota used up"."""
    ledger = Ledger(database, daily_limit=1)
    metering = Metering(ledger, ProviderBudgets(database))

    async def answer(provider: Provider, _photo: str) -> Answer:
        if provider.billable:
            raise ProviderUnavailableError("jdcloud", code="10043", usage=Usage(charged=True))
        return Answer("local", Usage(charged=False))

    answered = await metering.run(Operation.COMPARE, USER, [Jd(), Local()], Preparing(), answer)
    assert (answered.provider.name, answered.fell_back_from) == ("local", "jdcloud")
    status = (await ledger.remaining(USER.user_id))[Operation.COMPARE]
    assert (status.used, status.remaining) == (1, 0)
    # Both calls are in the books; the cloud's charged one carries the unit.
    assert await usage_rows(database) == [
        ("jdcloud", True, False, "10043"),
        ("local", False, False, None),
    ]
    assert (await ledger.stats()).total == CallCount(calls=2, charged=1)


async def test_a_free_cloud_failure_leaves_the_unit_to_the_local_answer(
    database: Database,
) -> None:
    ledger = Ledger(database, daily_limit=1)
    metering = Metering(ledger, ProviderBudgets(database))

    async def answer(provider: Provider, _photo: str) -> Answer:
        if provider.billable:
            raise ProviderUnavailableError("jdcloud", code="http_503", retry_safe=True)
        return Answer("local", Usage(charged=False))

    await metering.run(Operation.COMPARE, USER, [Jd(), Local()], Preparing(), answer)
    assert (await ledger.remaining(USER.user_id))[Operation.COMPARE].used == 1
    assert await usage_rows(database) == [
        ("jdcloud", False, False, "http_503"),
        ("local", True, False, None),
    ]


async def test_a_charged_cloud_failure_keeps_its_unit_when_the_fallback_fails(
    database: Database,
) -> None:
    ledger = Ledger(database, daily_limit=2)
    metering = Metering(ledger, ProviderBudgets(database))

    async def neither(provider: Provider, _photo: str) -> Answer:
        if provider.billable:
            raise ProviderUnavailableError("jdcloud", code="10043", usage=Usage(charged=True))
        raise ProviderUnavailableError("local", code="timeout")

    with pytest.raises(ProviderUnavailableError) as failed:
        await metering.run(Operation.COMPARE, USER, [Jd(), Local()], Preparing(), neither)
    assert failed.value.provider == "local"
    assert (await ledger.remaining(USER.user_id))[Operation.COMPARE].used == 1
    # ...and when the fallback's photo cannot be prepared, the unit stays taken too.
    bad_for_local = Preparing()

    async def prepare(provider: Provider) -> str:
        if not provider.billable:
            raise ImageError(ImageProblem.TOO_MANY_PIXELS)
        return await bad_for_local(provider)

    with pytest.raises(ImageError):
        await metering.run(Operation.COMPARE, USER, [Jd(), Local()], prepare, neither)
    assert (await ledger.remaining(USER.user_id))[Operation.COMPARE].used == 2


@pytest.mark.parametrize("keep", [False, True], ids=["unit-returned", "unit-kept"])
async def test_a_call_billed_and_then_timed_out_is_counted_against_the_budget(
    database: Database, keep: bool
) -> None:
    """A provider that bills the call and then never answers: the books say unknown, the
    budget counts it as spent, the user's unit follows ``KEEP_UNIT_ON_UNKNOWN``."""
    billed = 0
    release = asyncio.Event()

    async def bill_then_hang(_request: web.Request) -> web.Response:
        nonlocal billed
        billed += 1
        await release.wait()
        return web.json_response({"code": "10000"})

    app = web.Application()
    app.router.add_post("/", bill_then_hang)
    ledger = Ledger(database, daily_limit=5, keep_unit_on_unknown=keep)
    budgets = ProviderBudgets(database)
    metering = Metering(ledger, budgets)
    await budgets.after_result("jdcloud", Usage(charged=True, remain=10, remain_times=100))
    async with TestServer(app) as server:
        transport = HttpTransport("jdcloud", timeout=0.3)

        async def post(_provider: Provider, _photo: str) -> Answer:
            await transport.post(HttpRequest(str(server.make_url("/")), b"{}", {}))
            raise AssertionError("the fake never answers in time")

        try:
            for _ in range(2):
                with pytest.raises(ProviderUnavailableError) as timed_out:
                    await metering.run(Operation.COMPARE, USER, [Jd()], Preparing(), post)
                assert timed_out.value.code == "timeout" and timed_out.value.unknown
        finally:
            release.set()
            await transport.close()

    assert billed == 2
    status = await budgets.get("jdcloud")
    assert status is not None
    assert (status.remain, status.remain_times) == (8, 98)  # never above what is truly left
    assert await usage_rows(database) == [("jdcloud", False, True, "timeout")] * 2
    assert (await ledger.remaining(USER.user_id))[Operation.COMPARE].used == (2 if keep else 0)


async def test_a_burst_cannot_overshoot_the_reserve(database_target: DatabaseTarget) -> None:
    """10 concurrent calls with remain 3 and PROVIDER_RESERVE 2: one non-admin call, not ten."""
    database = await database_target.open(pool_size=12, max_overflow=0)
    try:
        ledger = Ledger(database, daily_limit=0)
        budgets = ProviderBudgets(database, reserve=2)
        metering = Metering(ledger, budgets)
        await budgets.after_result("jdcloud", Usage(charged=True, remain=3))
        admitted: list[int] = []
        refused: list[int] = []
        settled = asyncio.Condition()
        release = asyncio.Event()

        async def note(outcome: list[int], user: int) -> None:
            async with settled:
                outcome.append(user)
                settled.notify_all()

        async def until_settled(calls: int) -> None:
            async with asyncio.timeout(30), settled:
                await settled.wait_for(lambda: len(admitted) + len(refused) >= calls)

        def held(user: int) -> Callable[[Provider, str], Awaitable[Answer]]:
            async def call(_provider: Provider, _photo: str) -> Answer:
                await note(admitted, user)
                await release.wait()
                return Answer("jdcloud", Usage(charged=True))

            return call

        async def one(user: int, admin: bool = False) -> None:
            try:
                await metering.run(
                    Operation.COMPARE, Caller(user, admin), [Jd()], Preparing(), held(user)
                )
            except ProviderSpent:
                await note(refused, user)

        calls = [asyncio.create_task(one(user)) for user in range(10)]
        await until_settled(10)
        assert (len(admitted), len(refused)) == (1, 9)
        # An admin may still use the reserve: 3 left, 1 in flight.
        admin = asyncio.create_task(one(99, admin=True))
        await until_settled(11)
        assert admitted[-1] == 99 and len(admitted) == 2
        release.set()
        await asyncio.gather(*calls, admin)
    finally:
        await database.close()


def test_the_reservation_must_outlive_the_longest_call() -> None:
    def settings(**values: object) -> ServiceSettings:
        return ServiceSettings(_env_file=None, **values)  # type: ignore[arg-type, call-arg]

    assert timing_problems(settings()) == []
    # 15 s x 3 attempts + 0.5 s + 1 s between them = 46.5 s, and 1 s of preparing.
    cloud = settings(
        compare_provider="jdcloud", provider_timeout=15, local_timeout=30, reservation_ttl=47.5
    )
    assert timing_problems(cloud) == [
        "RESERVATION_TTL is invalid: expected more than 47.5 seconds, the longest a cloud "
        "call can take (PROVIDER_TIMEOUT 15 s x 3 attempts, the waits between them and 1 s "
        "of preparing the photo)"
    ]
    assert timing_problems(cloud.model_copy(update={"reservation_ttl": 48})) == []
    local = settings(local_timeout=60, reservation_ttl=61)
    assert timing_problems(local) == [
        "RESERVATION_TTL is invalid: expected more than 61 seconds, LOCAL_TIMEOUT (60 s, the "
        "longest the offline engine may take) and 1 s of preparing the photo"
    ]
    # Only the providers in use count: an all-cloud bot with no fallback has no local limit.
    all_cloud = settings(
        check_provider="jumdata",
        detect_provider="jumdata",
        compare_provider="jdcloud",
        analyze_provider="jdcloud",
        local_timeout=120,
        reservation_ttl=100,
    )
    assert timing_problems(all_cloud) == []
    assert len(timing_problems(all_cloud.model_copy(update={"fallback_to_local": True}))) == 1


async def test_a_check_costs_two_transactions(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The admission rides in the reservation's transaction: a call is a reserve and a commit,
    with no read of the budget before it."""
    ledger = Ledger(database, daily_limit=5)
    metering = Metering(ledger, ProviderBudgets(database, reserve=1))
    await metering.budgets.after_result("jdcloud", Usage(charged=True, remain=50))
    transactions: list[str] = []
    run, read = database.run, database.read

    async def counted_run(work: Any, **options: Any) -> Any:
        transactions.append("write")
        return await run(work, **options)

    async def counted_read(work: Any) -> Any:
        transactions.append("read")
        return await read(work)

    monkeypatch.setattr(database, "run", counted_run)
    monkeypatch.setattr(database, "read", counted_read)
    for _ in range(2):
        await metering.run(Operation.COMPARE, USER, [Jd()], Preparing(), charged)
    assert transactions == ["write", "write"] * 2


async def test_a_slow_preparation_gives_the_call_a_whole_ttl(
    database: Database, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reserved, then preparing waited 250 s of a 300 s TTL: the call must not start with
    50 s left, or the sweep could give the unit back while the provider charges."""
    monkeypatch.setattr(metering_module, "PREPARE_GRACE", 0.0)  # any wait is slow here
    ledger = Ledger(database, daily_limit=1, reservation_ttl=300, clock=clock)
    metering = Metering(ledger, ProviderBudgets(database))
    left: list[float] = []

    async def slow(_provider: Provider) -> str:
        clock.advance(seconds=250)
        return "photo"

    async def call(_provider: Provider, _photo: str) -> Answer:
        expires = await database.read(
            lambda connection: connection.execute(select(Reservation.expires_at)).scalar_one()
        )
        left.append((expires - clock()).total_seconds())
        return Answer("jumdata", Usage(charged=True))

    await metering.run(Operation.CHECK, USER, [Cloud()], slow, call)
    assert left == [300.0]


async def test_the_budget_hears_of_a_failure_before_the_unit_is_given_back(
    database: Database,
) -> None:
    """In between, a call that may have charged was neither in flight (its reservation
    gone) nor spent (the budget not yet lowered) to another process's admission."""
    order: list[str] = []

    class Books(Ledger):
        async def commit(self, *args: Any, **kwargs: Any) -> bool:
            order.append("commit")
            return await super().commit(*args, **kwargs)

    class Budgets(ProviderBudgets):
        async def after_error(self, error: ProviderError) -> None:
            order.append("budget")
            await super().after_error(error)

    async def timeout(_provider: Provider, _photo: str) -> Answer:
        raise ProviderUnavailableError("jumdata", code="timeout", usage=Usage(False, unknown=True))

    metering = Metering(Books(database, daily_limit=5), Budgets(database))
    with pytest.raises(ProviderUnavailableError):
        await metering.run(Operation.CHECK, USER, [Cloud()], prepared, timeout)
    assert order == ["budget", "commit"]
