"""Provider budgets: what each cloud provider has left, and whether to call it at all.

``admission`` refuses, without calling the provider, when the provider is spent
(``ProviderSpent``) or backing off (``ProviderBackingOff``); ``after_result`` and
``after_error`` record what the provider said. Rules:

- JD Cloud answers carry ``remain`` (calls left today: it resets at the next
  midnight Asia/Shanghai, or after ``remainSeconds`` when the answer says so) and
  ``remainTimes`` (calls left in the package). A known figure at 0 refuses calls
  until it resets (``remainTimes`` only with ``clear``); at ``PROVIDER_RESERVE`` or
  below, only admins may still call.
- An error's ``budget`` (set by the vendor's code table) says the rest: spent until
  an operator clears it (``clear``), spent until the reset, or back off for the
  error's ``backoff`` seconds (5 s when the code gives none, as a gateway's 429).

Every write is one conditional UPDATE, so answers arriving out of order from several
processes never raise a figure within its period: within one reset period the stored
``remain`` only goes down (the smallest figure is the latest), a new period replaces
it, an older period's answer is ignored, and a back-off is only ever extended.

The metering admits a call with ``admission``: run inside the transaction that reserves
the user's unit, it locks the provider's row (``SELECT … FOR UPDATE`` on PostgreSQL;
SQLite has one writer) and counts the calls in flight to that provider (its pending
reservations) against the known figures, so a burst cannot overshoot
``PROVIDER_RESERVE``: with ``remain`` 3 and a reserve of 2, one non-admin call is admitted,
not ten. A call of unknown outcome (``ProviderError.unknown``: sent and never answered,
or answered with a body that cannot be read) is counted as spent:
the known ``remain`` and ``remainTimes`` drop by one, so the estimate of what is left is
never above the truth.

Times (resets, back-offs) are judged against the clock of the moment, and every read
(``admission``, ``get``, ``status``) goes to the database: no process keeps a copy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Connection,
    Integer,
    RowMapping,
    String,
    Table,
    and_,
    case,
    func,
    literal,
    null,
    or_,
    select,
    update,
)

from services.errors import BudgetEffect, ProviderError, ServiceError
from services.i18n import N_
from services.ledger import IN_FLIGHT, Admission
from services.models import Usage
from services.storage import tables
from services.storage.db import Database, upsert

if TYPE_CHECKING:
    from services.config import ServiceSettings

Clock = Callable[[], datetime]

_BUDGETS: Table = tables.ProviderBudget.__table__  # type: ignore[assignment]
_RESERVATIONS: Table = tables.Reservation.__table__  # type: ignore[assignment]

PROVIDER_DAY_ZONE = ZoneInfo("Asia/Shanghai")
# Two reset times closer than this are the same period (remainSeconds drifts with latency).
SAME_PERIOD = timedelta(minutes=10)
DEFAULT_BACKOFF = 5.0


def utc_now() -> datetime:
    return datetime.now(UTC)


class ProviderSpent(ServiceError):
    """No calls left with this provider until ``resets_at``.

    ``resets_at`` None means until an operator tops up or clears it; the message is
    then ``budget.spent_until_cleared``, which names no time.
    """

    message_id = N_("budget.spent")

    def __init__(self, provider: str, resets_at: datetime | None) -> None:
        super().__init__(
            f"{provider} is spent until {resets_at.isoformat() if resets_at else 'cleared'}",
            values={"provider": provider, "resets_at": resets_at},
        )
        if resets_at is None:
            self.message_id = N_("budget.spent_until_cleared")
        self.provider = provider
        self.resets_at = resets_at


class ProviderBackingOff(ServiceError):
    """The provider asked us to slow down; no call until ``until``."""

    message_id = N_("budget.backing_off")

    def __init__(self, provider: str, until: datetime) -> None:
        super().__init__(
            f"{provider} is backing off until {until.isoformat()}",
            values={"provider": provider, "until": until},
        )
        self.provider = provider
        self.until = until


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """One provider's budget as of now; a figure is None when unknown or its period is over."""

    provider: str
    remain: int | None
    remain_times: int | None
    resets_at: datetime | None
    spent: bool  # refusing every call now (an operator must clear it, or until resets_at)
    spent_code: str | None
    spent_until: datetime | None  # when ``spent`` ends by itself; None: when cleared
    backoff_until: datetime | None
    backoff_code: str | None
    updated: datetime

    @property
    def available(self) -> bool:
        return not self.spent and self.backoff_until is None


def next_provider_midnight(now: datetime) -> datetime:
    local = now.astimezone(PROVIDER_DAY_ZONE)
    midnight = datetime.combine(local.date() + timedelta(days=1), time(0), PROVIDER_DAY_ZONE)
    return midnight.astimezone(UTC)


class ProviderBudgets:
    def __init__(
        self,
        database: Database,
        *,
        reserve: int = 0,
        clock: Clock = utc_now,
        default_backoff: float = DEFAULT_BACKOFF,
    ) -> None:
        if reserve < 0:
            raise ValueError("reserve must be 0 or more")
        self.database = database
        self.reserve = reserve
        self.clock = clock
        self.default_backoff = default_backoff

    @classmethod
    def from_settings(
        cls, database: Database, settings: ServiceSettings, *, clock: Clock = utc_now
    ) -> ProviderBudgets:
        return cls(database, reserve=settings.provider_reserve, clock=clock)

    def _now(self) -> datetime:
        now = self.clock()
        if now.tzinfo is None:
            raise ValueError("the clock must return an aware datetime")
        return now.astimezone(UTC)

    # ----------------------------------------------------------------- reads

    async def get(self, provider: str) -> BudgetStatus | None:
        """One provider's budget as of now; None when nothing is known about it."""
        row = await self.database.read(
            lambda connection: connection.execute(
                select(_BUDGETS).where(_BUDGETS.c.provider == provider)
            ).first()
        )
        return None if row is None else self._status(row._mapping, self._now())

    async def status(self) -> list[BudgetStatus]:
        """Every provider we have heard about, by name."""
        rows = await self.database.read(
            lambda connection: connection.execute(
                select(_BUDGETS).order_by(_BUDGETS.c.provider)
            ).all()
        )
        now = self._now()
        return [self._status(row._mapping, now) for row in rows]

    def admission(self, provider: str, *, admin: bool) -> Admission:
        """The check ``Ledger.reserve`` (and ``move``) runs in its transaction: raise
        ``ProviderSpent`` or ``ProviderBackingOff`` instead of a pointless call, with the
        provider's row locked and the calls in flight to it counted against its known
        figures. Non-admins are refused while a known figure is at ``reserve`` or below,
        so the last ``reserve`` calls stay for admins."""

        def admit(connection: Connection, now: datetime) -> None:
            row = connection.execute(
                select(_BUDGETS).where(_BUDGETS.c.provider == provider).with_for_update()
            ).first()
            if row is None:
                return
            status = self._status(row._mapping, now)
            in_flight = 0
            if status.remain is not None or status.remain_times is not None:
                reservations = _RESERVATIONS.c
                in_flight = connection.execute(
                    select(func.count()).where(
                        reservations.provider == provider,
                        reservations.state.in_(IN_FLIGHT),
                        reservations.expires_at > now,
                    )
                ).scalar_one()
            self._admit(status, admin=admin, in_flight=in_flight)

        return admit

    def _admit(self, status: BudgetStatus, *, admin: bool, in_flight: int) -> None:
        """Refuse a call the provider would refuse, or one that would eat into the reserve
        kept for admins once the calls in flight have taken their share."""
        provider = status.provider
        if status.spent:
            raise ProviderSpent(provider, status.spent_until)
        if status.backoff_until is not None:
            raise ProviderBackingOff(provider, status.backoff_until)
        floor = in_flight + (0 if admin else self.reserve)
        if status.remain_times is not None and status.remain_times <= floor:
            raise ProviderSpent(provider, None)
        if status.remain is not None and status.remain <= floor:
            raise ProviderSpent(provider, status.resets_at)

    def status_of(self, row: RowMapping) -> BudgetStatus:
        """A row read by someone else (``services.alerts`` reads the whole row once), as of now."""
        return self._status(row, self._now())

    def _status(self, row: RowMapping, now: datetime) -> BudgetStatus:
        resets_at = row["resets_at"]
        current = resets_at is None or now < resets_at
        remain = row["remain"] if current else None
        remain_times = row["remain_times"]
        backoff_until = row["backoff_until"]
        if backoff_until is not None and backoff_until <= now:
            backoff_until = None
        spent_until: datetime | None = None
        if row["spent"]:
            spent = True
        elif remain is not None and remain <= 0:
            # Today's calls are used up: that ends at the reset, whatever remainTimes says.
            spent, spent_until = True, resets_at
        elif remain_times is not None and remain_times <= 0:
            spent = True
        else:
            spent = False
        return BudgetStatus(
            provider=row["provider"],
            remain=remain,
            remain_times=remain_times,
            resets_at=resets_at if current else None,
            spent=spent,
            spent_code=row["spent_code"] if spent else None,
            spent_until=spent_until,
            backoff_until=backoff_until,
            backoff_code=row["backoff_code"] if backoff_until is not None else None,
            updated=row["updated"],
        )

    # ---------------------------------------------------------------- writes

    async def after_result(self, provider: str, usage: Usage) -> None:
        """Record the figures a result carried (JD: ``remain``, ``remainTimes``)."""
        if usage.remain is None and usage.remain_times is None:
            return
        now = self._now()

        def work(connection: Connection) -> None:
            self._figures(
                connection,
                provider,
                now,
                remain=usage.remain,
                remain_times=usage.remain_times,
                remain_seconds=usage.remain_seconds,
            )

        await self.database.run(work)

    async def after_error(self, error: ProviderError) -> None:
        """Record what a failed call says about the provider's budget or pace; a call of
        unknown outcome is counted as one spent."""
        provider = error.provider
        code = None if error.code is None else str(error.code)[: tables.CODE_LENGTH]
        now = self._now()
        remain, remain_times = error.usage.remain, error.usage.remain_times
        remain_seconds = error.usage.remain_seconds
        if error.budget is BudgetEffect.SPENT_UNTIL_RESET:
            remain = 0
        spent = error.budget is BudgetEffect.SPENT_UNTIL_CLEARED
        backoff: datetime | None = None
        if error.budget is BudgetEffect.BACK_OFF:
            seconds = error.backoff if error.backoff is not None else self.default_backoff
            backoff = now + timedelta(seconds=seconds)
        unknown = error.unknown
        if remain is None and remain_times is None and not (spent or unknown or backoff):
            return

        def work(connection: Connection) -> None:
            if unknown:
                _spend_one(connection, provider, now)
            if remain is not None or remain_times is not None:
                self._figures(
                    connection,
                    provider,
                    now,
                    remain=remain,
                    remain_times=remain_times,
                    remain_seconds=remain_seconds,
                )
            elif spent or backoff is not None:
                self._ensure(connection, provider, now)
            budgets = _BUDGETS.c
            if spent:
                connection.execute(
                    update(_BUDGETS)
                    .where(budgets.provider == provider)
                    .values(spent=True, spent_code=code, updated=now)
                )
            if backoff is not None:
                until = literal(backoff, tables.UtcDateTime())
                longer = or_(budgets.backoff_until.is_(None), budgets.backoff_until < until)
                connection.execute(
                    update(_BUDGETS)
                    .where(budgets.provider == provider)
                    .values(
                        backoff_until=case((longer, until), else_=budgets.backoff_until),
                        backoff_code=case(
                            (longer, literal(code, String())), else_=budgets.backoff_code
                        ),
                        updated=now,
                    )
                )

        await self.database.run(work)

    async def clear(self, provider: str) -> None:
        """The operator topped up or fixed the account: forget everything known about it."""
        now = self._now()

        def work(connection: Connection) -> None:
            connection.execute(
                update(_BUDGETS)
                .where(_BUDGETS.c.provider == provider)
                .values(
                    remain=None,
                    remain_times=None,
                    resets_at=None,
                    spent=False,
                    spent_code=None,
                    backoff_until=None,
                    backoff_code=None,
                    updated=now,
                )
            )

        await self.database.run(work)

    def _ensure(self, connection: Connection, provider: str, now: datetime) -> None:
        connection.execute(
            upsert(connection, _BUDGETS)
            .values(provider=provider, spent=False, updated=now)
            .on_conflict_do_nothing(index_elements=[_BUDGETS.c.provider])
        )

    def _figures(
        self,
        connection: Connection,
        provider: str,
        now: datetime,
        *,
        remain: int | None,
        remain_times: int | None,
        remain_seconds: int | None,
    ) -> None:
        """One UPDATE: a newer period replaces, the same period keeps the minimum."""
        self._ensure(connection, provider, now)
        if remain_seconds is not None and remain_seconds > 0:
            resets = now + timedelta(seconds=remain_seconds)
        else:
            resets = next_provider_midnight(now)
        budgets = _BUDGETS.c
        resets_at = literal(resets, tables.UtcDateTime())
        is_new = or_(
            budgets.resets_at.is_(None),
            budgets.resets_at < literal(resets - SAME_PERIOD, tables.UtcDateTime()),
        )
        is_same = and_(
            budgets.resets_at >= literal(resets - SAME_PERIOD, tables.UtcDateTime()),
            budgets.resets_at <= literal(resets + SAME_PERIOD, tables.UtcDateTime()),
        )

        def figure(column: Any, value: int | None) -> Any:
            if value is None:
                return case((is_new, null()), else_=column)
            new = literal(value, Integer())
            lower = and_(is_same, or_(column.is_(None), column > new))
            return case((is_new, new), (lower, new), else_=column)

        connection.execute(
            update(_BUDGETS)
            .where(budgets.provider == provider)
            .values(
                remain=figure(budgets.remain, remain),
                remain_times=figure(budgets.remain_times, remain_times),
                resets_at=case((is_new, resets_at), else_=budgets.resets_at),
                updated=now,
            )
        )


def _spend_one(connection: Connection, provider: str, now: datetime) -> None:
    """One call that may have been billed: the known figures drop by one (never below 0)."""
    budgets = _BUDGETS.c
    connection.execute(
        update(_BUDGETS)
        .where(budgets.provider == provider)
        .values(
            remain=case((budgets.remain > 0, budgets.remain - 1), else_=budgets.remain),
            remain_times=case(
                (budgets.remain_times > 0, budgets.remain_times - 1), else_=budgets.remain_times
            ),
            updated=now,
        )
    )
