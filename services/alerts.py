"""Budget alerts: the admins hear once when a provider runs low, is spent, and is back.

``BUDGET_ALERT_AT`` is a number of calls (``100``) or a percentage (``10%``) of the
provider's high-water mark, the most calls known to remain since the last top-up. After
a provider's figures change (``after_result``, ``after_error``, ``after_clear``),
``BudgetAlerts`` reads them and judges the provider ``ok``, ``low`` (the known remaining
calls at or under the threshold) or ``spent`` (the bot refuses its calls). A state other
than the one last alerted (``provider_budgets.alerted``, shared by every process) is
claimed with one conditional UPDATE: only the process whose UPDATE changed the row sends,
so each transition reaches every admin once, however many processes saw it.

The remaining figure is the smaller of the provider's known figures (today's ``remain``
and the package's ``remain_times``). Within a reset period the stored figures only go
down, so a rise means a top-up or a new period: the high-water mark is reset to the new
figure when this process saw the rise (it remembers the last figure it read), and
otherwise only ever rises, which errs towards an early alert. A provider whose figures
are unknown (cleared by ``/clearbudget``, or its period over) has no high-water mark.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Final

from sqlalchemy import Connection, Table, or_, select, update

from services.errors import BudgetEffect, ProviderError
from services.metrics import METRICS, Metrics
from services.models import Usage
from services.storage import tables

if TYPE_CHECKING:
    from services.budget import BudgetStatus, ProviderBudgets
    from services.config import ServiceSettings
    from services.storage.db import Database

log = logging.getLogger(__name__)

_BUDGETS: Table = tables.ProviderBudget.__table__  # type: ignore[assignment]
_SPENT_EFFECTS: Final = (BudgetEffect.SPENT_UNTIL_RESET, BudgetEffect.SPENT_UNTIL_CLEARED)


class AlertState(StrEnum):
    OK = "ok"
    LOW = "low"
    SPENT = "spent"


@dataclass(frozen=True, slots=True)
class AlertThreshold:
    """``calls`` left, or ``percent`` of the high-water mark, at or under which it is low."""

    calls: int | None = None
    percent: float | None = None

    @classmethod
    def parse(cls, text: str) -> AlertThreshold | None:
        """``"100"``, ``"10%"``, or None for ``""``; ``ValueError`` saying what is expected."""
        text = text.strip()
        if not text:
            return None
        expected = "a whole number of calls (like 100) or a percentage (like 10%)"
        if text.endswith("%"):
            try:
                percent = float(text[:-1].strip())
            except ValueError:
                raise ValueError(expected) from None
            if not 0 < percent < 100:
                raise ValueError("a percentage above 0% and under 100%")
            return cls(percent=percent)
        if not text.isdigit() or int(text) < 1:
            raise ValueError(expected)
        return cls(calls=int(text))

    def reached(self, remaining: int, high_water: int | None) -> bool:
        if self.calls is not None:
            return remaining <= self.calls
        if self.percent is None or high_water is None:
            return False
        return remaining <= high_water * self.percent / 100


@dataclass(frozen=True, slots=True)
class Assessment:
    """``restart``: the high-water mark starts again (a top-up) rather than only rising."""

    state: AlertState
    high_water: int | None
    restart: bool = False


def remaining_of(status: BudgetStatus) -> int | None:
    """The calls known to be left: the smaller known figure, None when neither is known."""
    figures = [f for f in (status.remain, status.remain_times) if f is not None]
    return min(figures) if figures else None


def assess(
    remaining: int | None,
    spent: bool,
    high_water: int | None,
    last_seen: int | None,
    threshold: AlertThreshold,
) -> Assessment:
    """The provider's state and high-water mark after its figures changed.

    ``last_seen`` is the figure this process read before: a rise above it is a top-up,
    and the high-water mark starts again from the new figure.
    """
    restart = False
    if remaining is None:
        mark, restart = None, True
    elif last_seen is not None and remaining > last_seen:
        mark, restart = remaining, True
    elif high_water is None or remaining > high_water:
        mark = remaining
    else:
        mark = high_water
    if spent:
        state = AlertState.SPENT
    elif remaining is not None and threshold.reached(remaining, mark):
        state = AlertState.LOW
    else:
        state = AlertState.OK
    return Assessment(state, mark, restart)


@dataclass(frozen=True, slots=True)
class BudgetAlert:
    """One transition, for every admin: ``state`` is what the provider became."""

    provider: str
    state: AlertState
    previous: AlertState
    remaining: int | None


Notify = Callable[[BudgetAlert], Awaitable[None]]


def _state(alerted: str | None) -> AlertState:
    """The state last alerted; nothing alerted yet is ``ok``."""
    try:
        return AlertState(alerted or AlertState.OK)
    except ValueError:  # written by a later version of this code
        return AlertState.OK


class BudgetAlerts:
    """Judges a provider after its figures change and has the admins told of a new state.

    ``notify`` (the bot's sender) is set before updates arrive; a transition seen before
    that is left unclaimed for the next change. Sending runs in the background so that the
    user whose call changed the figures does not wait for it; ``close`` waits for it.
    The hooks never raise: an alert that cannot be judged is logged, the call goes on.
    """

    def __init__(
        self,
        database: Database,
        budgets: ProviderBudgets,
        threshold: AlertThreshold,
        *,
        notify: Notify | None = None,
        metrics: Metrics = METRICS,
    ) -> None:
        self.database = database
        self.budgets = budgets
        self.threshold = threshold
        self.notify = notify
        self.metrics = metrics
        self._last_seen: dict[str, int | None] = {}
        self._sending: set[asyncio.Task[None]] = set()

    @classmethod
    def from_settings(
        cls, database: Database, budgets: ProviderBudgets, settings: ServiceSettings
    ) -> BudgetAlerts | None:
        """None when ``BUDGET_ALERT_AT`` is empty: no alerts."""
        threshold = AlertThreshold.parse(settings.budget_alert_at)
        return None if threshold is None else cls(database, budgets, threshold)

    async def after_result(self, provider: str, usage: Usage) -> None:
        """After ``ProviderBudgets.after_result``: only an answer with figures changes any."""
        if usage.remain is not None or usage.remain_times is not None:
            await self.review(provider)

    async def after_error(self, error: ProviderError) -> None:
        """After ``ProviderBudgets.after_error``: figures, a code that spends the budget, or
        a call of unknown outcome (counted as one spent)."""
        usage = error.usage
        figures = usage.remain is not None or usage.remain_times is not None
        if error.budget in _SPENT_EFFECTS or error.unknown or figures:
            await self.review(error.provider)

    async def after_clear(self, provider: str) -> None:
        """After ``ProviderBudgets.clear`` (/clearbudget): the provider is back."""
        await self.review(provider)

    async def review(self, provider: str) -> None:
        try:
            alert = await self._judge(provider)
        except Exception:
            log.exception("budget alert for %s: could not judge the figures", provider)
            return
        if alert is not None:
            task = asyncio.create_task(self._send(alert))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _judge(self, provider: str) -> BudgetAlert | None:
        """The transition this process claimed, if any.

        The figures, the high-water mark and the state last alerted come from one read of
        the row, fresh rather than ``ProviderBudgets``' cached copy, which this class's own
        writes do not refresh.
        """
        budgets = _BUDGETS.c
        row = await self.database.read(
            lambda connection: connection.execute(
                select(_BUDGETS).where(budgets.provider == provider)
            ).first()
        )
        if row is None:
            return None
        status = self.budgets.status_of(row._mapping)
        self.metrics.budget(status)
        remaining = remaining_of(status)
        last_seen = self._last_seen.get(provider)
        self._last_seen[provider] = remaining
        high_water: int | None = row.high_water
        alerted: str | None = row.alerted
        assessment = assess(remaining, status.spent, high_water, last_seen, self.threshold)
        previous = _state(alerted)
        moved = assessment.state is not previous and self.notify is not None
        if assessment.high_water == high_water and not moved:
            return None

        def write(connection: Connection) -> bool:
            mark = assessment.high_water
            if mark != high_water:
                where = [budgets.provider == provider]
                if not assessment.restart:  # only ever up, whichever process writes last
                    where.append(or_(budgets.high_water.is_(None), budgets.high_water < mark))
                connection.execute(update(_BUDGETS).where(*where).values(high_water=mark))
            if not moved:
                return False
            claimed = connection.execute(
                update(_BUDGETS)
                .where(
                    budgets.provider == provider,
                    budgets.alerted.is_not_distinct_from(alerted),
                )
                .values(alerted=assessment.state.value)
            )
            return claimed.rowcount == 1

        if not await self.database.run(write):
            return None
        return BudgetAlert(provider, assessment.state, previous, remaining)

    async def _send(self, alert: BudgetAlert) -> None:
        notify = self.notify
        if notify is None:
            return
        try:
            await notify(alert)
        except Exception:
            log.exception("budget alert for %s could not be sent", alert.provider)

    async def close(self) -> None:
        """Let the alerts being sent finish."""
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)
