"""Budget alerts: the threshold setting, the state machine, once across processes, and
the admins' messages."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest
from aiogram.exceptions import TelegramForbiddenError
from aiogram.methods import SendMessage

from bot.alerts import AdminNotifier
from bot.i18n import create_i18n
from services.alerts import (
    AlertState,
    AlertThreshold,
    Assessment,
    BudgetAlert,
    BudgetAlerts,
    assess,
)
from services.budget import ProviderBudgets
from services.config import SettingsError
from services.errors import BudgetEffect, ProviderBudgetError, ProviderUnavailableError
from services.metrics import Metrics
from services.models import Operation, Usage
from services.prefs import MemoryPreferences
from services.storage.db import Database

if TYPE_CHECKING:
    from tests.db import DatabaseTarget, FakeClock

pytest_plugins = ["tests.db"]

CALLS_100 = AlertThreshold(calls=100)
TEN_PERCENT = AlertThreshold(percent=10)


# --- the setting ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", None),
        ("  ", None),
        ("100", AlertThreshold(calls=100)),
        (" 25 ", AlertThreshold(calls=25)),
        ("10%", AlertThreshold(percent=10.0)),
        ("2.5 %", AlertThreshold(percent=2.5)),
    ],
)
def test_threshold_parses_calls_or_a_percentage(text: str, expected: AlertThreshold) -> None:
    assert AlertThreshold.parse(text) == expected


@pytest.mark.parametrize("text", ["ten", "0", "-5", "1.5", "0%", "100%", "150%", "%", "x%"])
def test_a_bad_threshold_says_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match="percentage"):
        AlertThreshold.parse(text)


def test_a_bad_setting_stops_start_up_naming_the_variable() -> None:
    from bot.config import load_settings

    with pytest.raises(SettingsError) as caught:
        load_settings(bot_token="42:TEST", budget_alert_at="ten calls")
    assert any("BUDGET_ALERT_AT" in line for line in caught.value.lines)


# --- the state machine ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("remaining", "spent", "high_water", "last_seen", "threshold", "expected"),
    [
        # A number of calls: low at or under it.
        (101, False, 500, 120, CALLS_100, Assessment(AlertState.OK, 500)),
        (100, False, 500, 101, CALLS_100, Assessment(AlertState.LOW, 500)),
        (0, True, 500, 1, CALLS_100, Assessment(AlertState.SPENT, 500)),
        # Spent by a code, whatever the figures say.
        (400, True, 500, 400, CALLS_100, Assessment(AlertState.SPENT, 500)),
        # Unknown figures: nothing to be low about, and no high-water mark.
        (None, False, 500, 80, CALLS_100, Assessment(AlertState.OK, None, restart=True)),
        (None, True, None, None, TEN_PERCENT, Assessment(AlertState.SPENT, None, restart=True)),
        # A percentage of the high-water mark.
        (1000, False, None, None, TEN_PERCENT, Assessment(AlertState.OK, 1000)),
        (101, False, 1000, 150, TEN_PERCENT, Assessment(AlertState.OK, 1000)),
        (100, False, 1000, 101, TEN_PERCENT, Assessment(AlertState.LOW, 1000)),
        # Higher than the mark: the mark rises.
        (1200, False, 1000, None, TEN_PERCENT, Assessment(AlertState.OK, 1200)),
        # A rise this process saw (a top-up, a new day) restarts the mark, even below it.
        (300, False, 1000, 50, TEN_PERCENT, Assessment(AlertState.OK, 300, restart=True)),
        # The same figure, unseen rise: the old mark stays, so the alert comes early.
        (90, False, 1000, None, TEN_PERCENT, Assessment(AlertState.LOW, 1000)),
    ],
)
def test_assess(
    remaining: int | None,
    spent: bool,
    high_water: int | None,
    last_seen: int | None,
    threshold: AlertThreshold,
    expected: Assessment,
) -> None:
    assert assess(remaining, spent, high_water, last_seen, threshold) == expected


# --- against the database -------------------------------------------------------------------


class Sent:
    """A notifier that keeps what it was given."""

    def __init__(self) -> None:
        self.alerts: list[BudgetAlert] = []

    async def __call__(self, alert: BudgetAlert) -> None:
        self.alerts.append(alert)

    def states(self) -> list[tuple[str, int | None]]:
        return [(a.state.value, a.remaining) for a in self.alerts]


def process(
    database: Database, clock: FakeClock, threshold: AlertThreshold, sent: Sent
) -> tuple[ProviderBudgets, BudgetAlerts]:
    """One bot process's budgets and alerts on ``database``."""
    budgets = ProviderBudgets(database, clock=clock)
    alerts = BudgetAlerts(database, budgets, threshold, notify=sent, metrics=Metrics(process=False))
    return budgets, alerts


async def answer(
    budgets: ProviderBudgets, alerts: BudgetAlerts, remain_times: int, provider: str = "jdcloud"
) -> None:
    """A JD answer saying ``remain_times`` calls are left in the package, as metering records
    it: the budget, then the alert hook."""
    usage = Usage(charged=True, remain_times=remain_times)
    await budgets.after_result(provider, usage)
    await alerts.after_result(provider, usage)
    await alerts.close()


async def test_each_transition_once_with_a_number_of_calls(
    database: Database, clock: FakeClock
) -> None:
    sent = Sent()
    budgets, alerts = process(database, clock, CALLS_100, sent)
    for figure in (500, 300, 100, 99, 50, 1, 0):
        await answer(budgets, alerts, figure)
    assert sent.states() == [("low", 100), ("spent", 0)]

    await budgets.clear("jdcloud")
    await alerts.after_clear("jdcloud")
    await alerts.close()
    assert sent.states()[-1] == ("ok", None)
    assert sent.alerts[-1].previous is AlertState.SPENT


async def test_spent_by_a_code_and_back_after_clearbudget(
    database: Database, clock: FakeClock
) -> None:
    sent = Sent()
    budgets, alerts = process(database, clock, CALLS_100, sent)
    error = ProviderBudgetError("jumdata", code=602, budget=BudgetEffect.SPENT_UNTIL_CLEARED)
    await budgets.after_error(error)
    await alerts.after_error(error)
    await alerts.close()
    assert sent.states() == [("spent", None)]

    await budgets.clear("jumdata")
    await alerts.after_clear("jumdata")
    await alerts.close()
    assert sent.states() == [("spent", None), ("ok", None)]


async def test_a_call_of_unknown_outcome_can_make_it_low(
    database: Database, clock: FakeClock
) -> None:
    """A timeout counts as one call spent: from 101 to 100 calls left, at the threshold."""
    sent = Sent()
    budgets, alerts = process(database, clock, CALLS_100, sent)
    await answer(budgets, alerts, 101)
    timeout = ProviderUnavailableError("jdcloud", code="timeout", usage=Usage(False, unknown=True))
    await budgets.after_error(timeout)
    await alerts.after_error(timeout)
    await alerts.close()
    assert sent.states() == [("low", 100)]


async def test_percentage_of_the_high_water_mark_and_a_top_up(
    database: Database, clock: FakeClock
) -> None:
    sent = Sent()
    budgets, alerts = process(database, clock, TEN_PERCENT, sent)
    for figure in (1000, 400, 101):
        await answer(budgets, alerts, figure)
    assert sent.states() == []
    await answer(budgets, alerts, 100)  # 10% of 1000
    assert sent.states() == [("low", 100)]

    # Topped up with 450 more: JD's figures for the new day say 500. Below the old mark of
    # 1000, the new figure is what the percentage is of now: 10% of 500 = 50.
    clock.advance(days=1)
    await answer(budgets, alerts, 500)
    assert sent.states() == [("low", 100), ("ok", 500)]
    await answer(budgets, alerts, 51)
    assert sent.states()[-1] == ("ok", 500)
    await answer(budgets, alerts, 50)
    assert sent.states() == [("low", 100), ("ok", 500), ("low", 50)]


async def test_the_high_water_mark_is_shared_and_only_rises(
    database_target: DatabaseTarget, database: Database, clock: FakeClock
) -> None:
    """Another process that never saw the figures learns the mark from the database."""
    sent = Sent()
    budgets_a, alerts_a = process(database, clock, TEN_PERCENT, sent)
    await answer(budgets_a, alerts_a, 1000)
    other = await database_target.open()
    try:
        budgets_b, alerts_b = process(other, clock, TEN_PERCENT, sent)
        await answer(budgets_b, alerts_b, 100)
    finally:
        await other.close()
    assert sent.states() == [("low", 100)]


class Turnstile:
    """A ``Database`` whose writes wait until every process has read: both processes then
    judge the same figures and both try to claim the same transition."""

    def __init__(self, database: Database, barrier: asyncio.Barrier) -> None:
        self.database = database
        self.barrier = barrier

    async def read(self, work: Any) -> Any:
        return await self.database.read(work)

    async def run(self, work: Any) -> Any:
        await self.barrier.wait()
        return await self.database.run(work)


async def test_one_message_in_all_when_two_processes_see_the_same_transition(
    database_target: DatabaseTarget, database: Database, clock: FakeClock
) -> None:
    sent = Sent()
    budgets_a, alerts_a = process(database, clock, CALLS_100, sent)
    await answer(budgets_a, alerts_a, 500)  # known, ok, the mark written: no write to come
    other = await database_target.open()
    try:
        barrier = asyncio.Barrier(2)
        budgets_b = ProviderBudgets(other, clock=clock)
        racing = [
            BudgetAlerts(
                Turnstile(db, barrier),  # type: ignore[arg-type]
                budgets,
                CALLS_100,
                notify=sent,
                metrics=Metrics(process=False),
            )
            for db, budgets in ((database, budgets_a), (other, budgets_b))
        ]
        await budgets_a.after_result("jdcloud", Usage(charged=True, remain_times=80))
        await asyncio.gather(*(alerts.review("jdcloud") for alerts in racing))
        await asyncio.gather(*(alerts.close() for alerts in racing))
    finally:
        await other.close()
    assert sent.states() == [("low", 80)]


class Unreachable:
    """A database whose server is down."""

    async def read(self, work: Any) -> Any:
        raise ConnectionRefusedError("the database is down")

    run = read


async def test_a_failing_store_does_not_fail_the_call(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    sent = Sent()
    database: Any = Unreachable()
    _budgets, alerts = process(database, clock, CALLS_100, sent)
    await alerts.after_result("jdcloud", Usage(charged=True, remain_times=50))  # no raise
    assert sent.states() == []
    assert "could not judge" in caplog.text


async def test_the_budget_gauge_follows_the_figures(database: Database, clock: FakeClock) -> None:
    metrics = Metrics(process=False)
    budgets = ProviderBudgets(database, clock=clock)
    alerts = BudgetAlerts(database, budgets, CALLS_100, notify=Sent(), metrics=metrics)
    await budgets.after_result("jdcloud", Usage(charged=True, remain=7, remain_times=300))
    await alerts.after_result("jdcloud", Usage(charged=True, remain=7, remain_times=300))
    await alerts.close()
    value = metrics.registry.get_sample_value
    assert value("facecheck_provider_remaining", {"provider": "jdcloud", "figure": "remain"}) == 7
    assert (
        value("facecheck_provider_remaining", {"provider": "jdcloud", "figure": "remain_times"})
        == 300
    )
    assert value("facecheck_provider_spent", {"provider": "jdcloud"}) == 0


class Counting:
    """A ``Database`` that counts the reads made through it."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.reads = 0

    async def read(self, work: Any) -> Any:
        self.reads += 1
        return await self.database.read(work)

    async def run(self, work: Any) -> Any:
        return await self.database.run(work)


async def test_one_read_of_the_row_per_answer(database: Database, clock: FakeClock) -> None:
    """The figures, the high-water mark and the state last alerted come from one read."""
    counting = Counting(database)
    sent = Sent()
    budgets, alerts = process(counting, clock, CALLS_100, sent)  # type: ignore[arg-type]
    reads = []
    for figure in (500, 100):
        usage = Usage(charged=True, remain_times=figure)
        await budgets.after_result("jdcloud", usage)
        before = counting.reads
        await alerts.after_result("jdcloud", usage)
        await alerts.close()
        reads.append(counting.reads - before)
    assert reads == [1, 1]
    assert sent.states() == [("low", 100)]


def test_no_alerts_without_a_threshold() -> None:
    """``BUDGET_ALERT_AT`` empty: no ``BudgetAlerts`` at all, so the metering reads nothing
    for alerts after a call."""
    from services.config import ServiceSettings

    database: Any = Unreachable()
    budgets = ProviderBudgets(database)
    settings = ServiceSettings(_env_file=None, budget_alert_at="")  # type: ignore[call-arg]
    assert BudgetAlerts.from_settings(database, budgets, settings) is None
    settings = ServiceSettings(_env_file=None, budget_alert_at="10%")  # type: ignore[call-arg]
    made = BudgetAlerts.from_settings(database, budgets, settings)
    assert made is not None and made.threshold == TEN_PERCENT


# --- the admins' messages -------------------------------------------------------------------


class FakeBot:
    """Records ``send_message``; ``blocked`` chats raise as Telegram does for a blocked bot."""

    def __init__(self, blocked: set[int]) -> None:
        self.blocked = blocked
        self.messages: list[tuple[int, str]] = []

    async def send_message(self, chat_id: int, text: str) -> None:
        if chat_id in self.blocked:
            raise TelegramForbiddenError(
                method=SendMessage(chat_id=chat_id, text=text),
                message="Forbidden: bot was blocked by the user",
            )
        self.messages.append((chat_id, text))


async def test_every_admin_gets_the_alert_in_their_language_blocked_ones_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    preferences = MemoryPreferences()
    await preferences.set_locale(2, "ru")
    bot = FakeBot(blocked={3})
    notifier = AdminNotifier(bot, [1, 2, 3, 4], create_i18n("en"), preferences)  # type: ignore[arg-type]
    alert = BudgetAlert("jdcloud", AlertState.LOW, AlertState.OK, 80)
    await notifier(alert)
    assert [chat for chat, _text in bot.messages] == [1, 2, 4]
    english, russian = bot.messages[0][1], bot.messages[1][1]
    assert english.startswith("⚠️ jdcloud is running low: 80 calls left.")
    assert "осталось 80" in russian
    assert "admin 3" in caplog.text

    await notifier(BudgetAlert("jdcloud", AlertState.OK, AlertState.SPENT, None))
    assert bot.messages[-1] == (4, "✅ jdcloud is available again. Calls left: —.")


async def test_the_provider_name_is_escaped_once_for_html() -> None:
    """Telegram's HTML needs only <, > and & escaped: quotes stay as they are."""
    bot = FakeBot(blocked=set())
    notifier = AdminNotifier(bot, [1], create_i18n("en"), MemoryPreferences())  # type: ignore[arg-type]
    await notifier(BudgetAlert('<b>"jd" & co</b>', AlertState.SPENT, AlertState.LOW, 0))
    assert bot.messages[0][1].startswith(
        '⛔ &lt;b&gt;"jd" &amp; co&lt;/b&gt; is spent: the bot no longer calls it.'
    )


async def test_the_metering_calls_the_alert_hook(database: Database, clock: FakeClock) -> None:
    from services.ledger import Ledger
    from services.metering import Caller, Metering
    from services.providers.base import Provider

    class Cloud(Provider):
        name = "jdcloud"

        async def close(self) -> None:
            pass

    class Answer:
        provider = "jdcloud"

        def __init__(self, remain_times: int) -> None:
            self.usage = Usage(charged=True, remain_times=remain_times)

    sent = Sent()
    budgets, alerts = process(database, clock, CALLS_100, sent)
    metering = Metering(Ledger(database), budgets, alerts)

    async def prepare(_provider: Provider) -> str:
        return "photo"

    for figure in (120, 100):

        async def call(_provider: Provider, _photo: str, figure: int = figure) -> Answer:
            return Answer(figure)

        await metering.run(Operation.COMPARE, Caller(7), [Cloud()], prepare, call)
    await alerts.close()
    assert sent.states() == [("low", 100)]
