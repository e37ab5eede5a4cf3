"""Provider budgets on SQLite and PostgreSQL: spent, reset, back-off, reserve, order."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from services.budget import (
    BudgetStatus,
    ProviderBackingOff,
    ProviderBudgets,
    ProviderSpent,
    next_provider_midnight,
)
from services.errors import (
    BudgetEffect,
    ProviderError,
    ProviderRateLimitError,
    ProviderUnavailableError,
    ServiceError,
)
from services.models import Usage
from services.providers.answers import read_object
from services.providers.http import HttpReply
from services.providers.huawei import gateway_error
from services.providers.jdcloud import BUSINESS_CODES, SYSTEM_CODES
from services.providers.jdcloud import FAULTS as JD_FAULTS
from services.providers.jumdata import CODES
from services.storage.db import Database
from services.storage.tables import CODE_LENGTH

if TYPE_CHECKING:
    from tests.db import DatabaseTarget, FakeClock

pytest_plugins = ["tests.db"]

# The clock fixture starts at 2025-03-10 12:00 UTC = 20:00 in Shanghai,
# so JD's day ends at 2025-03-10 16:00 UTC (midnight Asia/Shanghai).
SHANGHAI_MIDNIGHT = datetime(2025, 3, 10, 16, 0, tzinfo=UTC)


def budgets(database: Database, clock: FakeClock, reserve: int = 0) -> ProviderBudgets:
    return ProviderBudgets(database, reserve=reserve, clock=clock)


def vendor_error(provider: str, code: int | str, usage: Usage | None = None) -> ProviderError:
    """The error a provider's client raises for ``code``, read from the vendor's code table."""
    info = SYSTEM_CODES[str(code)] if provider == "jdcloud" else CODES[int(code)]
    return info.error(provider, code, usage=usage)


def unreadable_error(provider: str, reply: HttpReply) -> ProviderError:
    """What JD's client raises for a body that is not JSON."""
    with pytest.raises(ProviderError) as caught:
        read_object(provider, reply, JD_FAULTS)
    return caught.value


async def admit(book: ProviderBudgets, provider: str, *, admin: bool) -> None:
    """The metering's admission, run in a transaction of its own with no call in flight."""
    check = book.admission(provider, admin=admin)
    await book.database.run(lambda connection: check(connection, book.clock()))


def jd(remain: int | None = None, times: int | None = None, seconds: int | None = None) -> Usage:
    return Usage(charged=True, remain=remain, remain_times=times, remain_seconds=seconds)


def test_next_provider_midnight_is_in_shanghai() -> None:
    assert next_provider_midnight(datetime(2025, 3, 10, 12, 0, tzinfo=UTC)) == SHANGHAI_MIDNIGHT
    assert next_provider_midnight(datetime(2025, 3, 10, 15, 59, tzinfo=UTC)) == SHANGHAI_MIDNIGHT
    assert next_provider_midnight(SHANGHAI_MIDNIGHT) == SHANGHAI_MIDNIGHT + timedelta(days=1)


async def test_an_unknown_provider_may_be_called(database: Database, clock: FakeClock) -> None:
    book = budgets(database, clock, reserve=5)
    await admit(book, "jumdata", admin=False)
    await book.after_result("jumdata", Usage(charged=True))  # no figures: nothing to keep
    assert await book.status() == []


async def test_remain_reaching_zero_stops_calls_until_the_reset(
    database: Database, clock: FakeClock
) -> None:
    book = budgets(database, clock)
    await book.after_result("jdcloud", jd(remain=2, times=500))
    (status,) = await book.status()
    assert isinstance(status, BudgetStatus)
    assert (status.provider, status.remain, status.remain_times) == ("jdcloud", 2, 500)
    assert status.resets_at == SHANGHAI_MIDNIGHT
    assert status.available
    await admit(book, "jdcloud", admin=False)

    await book.after_result("jdcloud", jd(remain=0, times=499))
    for admin in (False, True):
        with pytest.raises(ProviderSpent) as refused:
            await admit(book, "jdcloud", admin=admin)
        assert refused.value.resets_at == SHANGHAI_MIDNIGHT
        assert refused.value.values == {"provider": "jdcloud", "resets_at": SHANGHAI_MIDNIGHT}
    (status,) = await book.status()
    assert status.spent and status.spent_until == SHANGHAI_MIDNIGHT and not status.available

    clock.set(SHANGHAI_MIDNIGHT)
    await admit(book, "jdcloud", admin=False)
    (status,) = await book.status()
    assert (status.remain, status.resets_at, status.spent) == (None, None, False)
    assert status.remain_times == 499


async def test_remain_seconds_says_when_the_budget_resets(
    database: Database, clock: FakeClock
) -> None:
    book = budgets(database, clock)
    await book.after_result("jdcloud", jd(remain=0, seconds=120))
    with pytest.raises(ProviderSpent) as refused:
        await admit(book, "jdcloud", admin=True)
    assert refused.value.resets_at == clock() + timedelta(seconds=120)
    clock.advance(seconds=121)
    await admit(book, "jdcloud", admin=False)


async def test_the_reserve_is_kept_for_admins(database: Database, clock: FakeClock) -> None:
    book = budgets(database, clock, reserve=2)
    await book.after_result("jdcloud", jd(remain=3))
    await admit(book, "jdcloud", admin=False)

    await book.after_result("jdcloud", jd(remain=2))
    with pytest.raises(ProviderSpent) as refused:
        await admit(book, "jdcloud", admin=False)
    assert refused.value.resets_at == SHANGHAI_MIDNIGHT
    await admit(book, "jdcloud", admin=True)
    await book.after_result("jdcloud", jd(remain=1))
    await admit(book, "jdcloud", admin=True)
    await book.after_result("jdcloud", jd(remain=0))
    with pytest.raises(ProviderSpent):
        await admit(book, "jdcloud", admin=True)

    # The package (remainTimes) does not reset at midnight: only an operator tops it up.
    clock.set(SHANGHAI_MIDNIGHT + timedelta(hours=1))
    await book.after_result("jdcloud", jd(remain=900, times=2))
    with pytest.raises(ProviderSpent) as refused:
        await admit(book, "jdcloud", admin=False)
    assert refused.value.resets_at is None
    await admit(book, "jdcloud", admin=True)


@pytest.mark.parametrize("provider", ["jumdata", "huawei"])
async def test_jumdata_603_spends_the_provider_until_an_operator_clears_it(
    database: Database, clock: FakeClock, provider: str
) -> None:
    book = budgets(database, clock)
    await book.after_error(vendor_error(provider, 603))
    for admin in (False, True):
        with pytest.raises(ProviderSpent) as refused:
            await admit(book, provider, admin=admin)
        assert refused.value.resets_at is None
        assert refused.value.provider == provider
    clock.advance(days=30)
    with pytest.raises(ProviderSpent):
        await admit(book, provider, admin=False)
    (status,) = await book.status()
    assert (status.spent, status.spent_code, status.spent_until) == (True, "603", None)
    await admit(book, "jdcloud", admin=False)  # other providers are not affected

    await book.clear(provider)
    await admit(book, provider, admin=False)
    (status,) = await book.status()
    assert status.available and status.spent_code is None


async def test_jd_10010_needs_the_operator_and_10040_waits_for_the_reset(
    database: Database, clock: FakeClock
) -> None:
    book = budgets(database, clock)
    await book.after_error(vendor_error("jdcloud", "10040"))
    with pytest.raises(ProviderSpent) as refused:
        await admit(book, "jdcloud", admin=True)
    assert refused.value.resets_at == SHANGHAI_MIDNIGHT
    clock.set(SHANGHAI_MIDNIGHT + timedelta(seconds=1))
    await admit(book, "jdcloud", admin=False)

    await book.after_error(vendor_error("jdcloud", "10040", jd(remain=0, seconds=3600)))
    with pytest.raises(ProviderSpent) as refused:
        await admit(book, "jdcloud", admin=False)
    assert refused.value.resets_at == clock() + timedelta(hours=1)

    await book.after_error(vendor_error("jdcloud", "10010"))
    clock.advance(days=2)
    with pytest.raises(ProviderSpent) as refused:
        await admit(book, "jdcloud", admin=False)
    assert refused.value.resets_at is None
    await book.clear("jdcloud")
    await admit(book, "jdcloud", admin=False)


@pytest.mark.parametrize(
    ("provider", "code", "seconds"),
    [
        ("jumdata", 606, 60),
        ("jumdata", 609, 10),
        ("huawei", 606, 60),
        ("huawei", 609, 10),
        ("jdcloud", "10043", 1),
        ("jdcloud", "10044", 1),
    ],
)
async def test_rate_limits_back_the_provider_off(
    database: Database, clock: FakeClock, provider: str, code: int | str, seconds: int
) -> None:
    book = budgets(database, clock)
    await book.after_error(vendor_error(provider, code))
    until = clock() + timedelta(seconds=seconds)
    for admin in (False, True):
        with pytest.raises(ProviderBackingOff) as refused:
            await admit(book, provider, admin=admin)
        assert refused.value.until == until
        assert refused.value.values == {"provider": provider, "until": until}
    (status,) = await book.status()
    assert (status.backoff_until, status.backoff_code) == (until, str(code))
    clock.advance(seconds=seconds)
    await admit(book, provider, admin=False)
    (status,) = await book.status()
    assert status.available and status.backoff_until is None


async def test_a_back_off_is_never_shortened_and_a_gateway_throttle_waits_5_s(
    database: Database, clock: FakeClock
) -> None:
    book = budgets(database, clock)
    start = clock()
    await book.after_error(vendor_error("jumdata", 606))
    clock.advance(seconds=5)
    await book.after_error(vendor_error("jumdata", 609))
    with pytest.raises(ProviderBackingOff) as refused:
        await admit(book, "jumdata", admin=False)
    assert refused.value.until == start + timedelta(seconds=60)

    throttled = unreadable_error("jdcloud", HttpReply(429, b"<html>slow down</html>"))
    await book.after_error(throttled)
    with pytest.raises(ProviderBackingOff) as refused:
        await admit(book, "jdcloud", admin=False)
    assert refused.value.until == clock() + timedelta(seconds=5)
    gateway = gateway_error("huawei", HttpReply(429, b'{"error_code": "APIG.0308"}'))
    assert gateway is not None
    await book.after_error(gateway)
    with pytest.raises(ProviderBackingOff) as refused:
        await admit(book, "huawei", admin=False)
    assert refused.value.until == clock() + timedelta(seconds=5)


async def test_other_errors_leave_the_budget_alone(database: Database, clock: FakeClock) -> None:
    book = budgets(database, clock)
    await book.after_error(vendor_error("jumdata", 205))
    await book.after_error(vendor_error("jumdata", 500))
    await book.after_error(ProviderUnavailableError("jumdata", code="timeout"))
    assert await book.status() == []
    # ...except for the figures a JD error carries.
    usage = Usage(charged=True, remain=41, remain_times=1000)
    await book.after_error(BUSINESS_CODES[10].error("jdcloud", 10, usage=usage))
    (status,) = await book.status()
    assert (status.remain, status.remain_times) == (41, 1000)


async def test_a_call_of_unknown_outcome_counts_as_one_spent(
    database: Database, clock: FakeClock
) -> None:
    """Sent and never answered: the provider may have billed it, so the known figures drop
    by one, as a charged answer's would; what is left is never estimated above the truth."""
    book = budgets(database, clock, reserve=1)
    timeout = ProviderUnavailableError(
        "jdcloud", code="timeout", usage=Usage(charged=False, unknown=True)
    )
    await book.after_error(timeout)
    assert await book.status() == []  # nothing known, nothing to lower

    await book.after_result("jdcloud", jd(remain=3, times=2))
    await book.after_error(timeout)
    (status,) = await book.status()
    assert (status.remain, status.remain_times) == (2, 1)
    with pytest.raises(ProviderSpent):  # the package is down to the reserve
        await admit(book, "jdcloud", admin=False)
    for _ in range(3):
        await book.after_error(timeout)
    (status,) = await book.status()
    assert (status.remain, status.remain_times) == (0, 0)
    assert status.spent
    # A later answer in the same period with a higher figure does not raise it.
    await book.after_result("jdcloud", jd(remain=1, times=1))
    (status,) = await book.status()
    assert (status.remain, status.remain_times) == (0, 0)


@pytest.mark.parametrize(
    ("status", "body"),
    [(200, b'{"code": "10000", "charge": true, "resu'), (504, b"<html>timeout</html>")],
    ids=["cut-off 200", "504 page"],
)
async def test_an_unreadable_answer_after_the_call_ran_counts_as_one_spent(
    database: Database, clock: FakeClock, status: int, body: bytes
) -> None:
    """The API answered (or a gateway's 504 may have passed the call on), so the call may
    have been billed: the known figures drop by one, as for a timeout."""
    book = budgets(database, clock)
    await book.after_result("jdcloud", jd(remain=5, times=9))
    await book.after_error(unreadable_error("jdcloud", HttpReply(status, body)))
    (row,) = await book.status()
    assert (row.remain, row.remain_times) == (4, 8)
    await book.after_error(unreadable_error("jdcloud", HttpReply(503, b"<html>busy</html>")))
    (row,) = await book.status()
    assert (row.remain, row.remain_times) == (4, 8)  # a 503 gateway passed nothing on


async def test_a_long_provider_code_is_kept_with_its_back_off(
    database: Database, clock: FakeClock
) -> None:
    book = budgets(database, clock)
    code = "APIGW." + "x" * 300  # a gateway's free-text code, over any column it had
    throttled = ProviderRateLimitError(
        "huawei", code=code, budget=BudgetEffect.BACK_OFF, backoff=30
    )
    await book.after_error(throttled)
    (status,) = await book.status()
    assert status.backoff_code == code[:CODE_LENGTH]
    assert status.backoff_until == clock() + timedelta(seconds=30)


async def test_answers_out_of_order_never_raise_a_figure_within_its_period(
    database: Database, clock: FakeClock
) -> None:
    book = budgets(database, clock)
    for remain in (10, 8, 9, 7, 8):
        await book.after_result("jdcloud", jd(remain=remain, times=remain + 100))
    (status,) = await book.status()
    assert (status.remain, status.remain_times) == (7, 107)

    clock.set(SHANGHAI_MIDNIGHT + timedelta(minutes=1))  # a new JD day
    await book.after_result("jdcloud", jd(remain=50, times=105))
    # A late answer from the day before (it resets in 30 s, i.e. before the new day's end).
    await book.after_result("jdcloud", jd(remain=3, times=3, seconds=30))
    (status,) = await book.status()
    assert (status.remain, status.remain_times) == (50, 105)
    assert status.resets_at == SHANGHAI_MIDNIGHT + timedelta(days=1)


async def test_several_processes_keep_the_smallest_figure_and_the_longest_back_off(
    database_target: DatabaseTarget, clock: FakeClock
) -> None:
    databases = [await database_target.open(pool_size=10) for _ in range(3)]
    try:
        books = [budgets(db, clock) for db in databases]
        remains = list(range(1, 61))
        random.Random(5).shuffle(remains)
        await asyncio.gather(
            *(
                books[i % 3].after_result("jdcloud", jd(remain=r, times=1000 + r))
                for i, r in enumerate(remains)
            )
        )
        errors = [vendor_error("jumdata", 609)] * 20 + [vendor_error("jumdata", 606)]
        await asyncio.gather(*(books[i % 3].after_error(e) for i, e in enumerate(errors)))
        status = {s.provider: s for s in await books[1].status()}
        assert (status["jdcloud"].remain, status["jdcloud"].remain_times) == (1, 1001)
        assert status["jumdata"].backoff_until == clock() + timedelta(seconds=60)
        assert status["jumdata"].backoff_code == "606"
    finally:
        for db in databases:
            await db.close()


def test_refusals_are_service_errors_with_their_message_ids() -> None:
    until = datetime(2025, 3, 10, 12, 1, tzinfo=UTC)
    spent = ProviderSpent("jumdata", None)
    backing_off = ProviderBackingOff("jumdata", until)
    assert isinstance(spent, ServiceError) and isinstance(backing_off, ServiceError)
    assert spent.message_id == "budget.spent_until_cleared"
    assert spent.values == {"provider": "jumdata", "resets_at": None}
    assert ProviderSpent("jdcloud", until).message_id == "budget.spent"
    assert backing_off.message_id == "budget.backing_off"


def test_budgets_from_settings() -> None:
    from services.config import ServiceSettings

    settings = ServiceSettings(_env_file=None, provider_reserve=3)  # type: ignore[call-arg]
    assert ProviderBudgets.from_settings(None, settings).reserve == 3  # type: ignore[arg-type]
