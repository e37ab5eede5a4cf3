"""The ledger: per-user daily allowances, held exactly across any number of processes.

A call takes a unit first (``reserve``), then the provider is called, then the unit is
kept if the provider charged (``commit(charged=True)``) and given back otherwise
(``commit(charged=False)`` or ``release``). Taking a unit is one conditional upsert,

    INSERT INTO quota_counters (user_id, operation, day, used) VALUES (…, 1)
    ON CONFLICT (user_id, operation, day)
    DO UPDATE SET used = quota_counters.used + 1 WHERE quota_counters.used < :limit
    RETURNING used

so the database, not the process, decides who gets the last unit: never
read-then-write. Each unit taken has a row in ``reservations``; a unit whose call
never ends (a crashed process) expires after ``reservation_ttl`` and the next sweep
gives it back, exactly once (the sweep flips ``pending`` to ``expired`` with a
conditional UPDATE … RETURNING). A late commit of an expired reservation that the
provider did charge takes the unit again, so the count stays what was really spent.

Days are calendar days in ``QUOTA_TIMEZONE``; a reservation belongs to the day it was
taken on, even if it ends after midnight. ``USER_DAILY_LIMIT`` 0 means no limit;
admins have none either, but their calls are counted and recorded like anyone's.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Table, case, delete, func, select, update

from services.errors import ServiceError
from services.i18n import N_
from services.models import Operation
from services.storage import tables
from services.storage.db import Database, upsert

if TYPE_CHECKING:
    from services.config import ServiceSettings

Clock = Callable[[], datetime]

PENDING = "pending"
EXPIRED = "expired"

_COUNTERS: Table = tables.QuotaCounter.__table__  # type: ignore[assignment]
_RESERVATIONS: Table = tables.Reservation.__table__  # type: ignore[assignment]
_USAGE: Table = tables.UsageRecord.__table__  # type: ignore[assignment]
_USERS: Table = tables.User.__table__  # type: ignore[assignment]

# Expired reservations are kept this long so that a very late commit is still counted.
EXPIRED_KEPT = timedelta(days=1)


def utc_now() -> datetime:
    return datetime.now(UTC)


class QuotaExceeded(ServiceError):
    """The user has used today's allowance for this operation."""

    message_id = N_("quota.exceeded")

    def __init__(self, operation: Operation, limit: int, resets_at: datetime) -> None:
        super().__init__(
            f"{operation.value}: daily limit {limit} reached until {resets_at.isoformat()}",
            values={"operation": operation, "limit": limit, "resets_at": resets_at},
        )
        self.operation = operation
        self.limit = limit
        self.resets_at = resets_at


@dataclass(frozen=True, slots=True)
class Reservation:
    """One unit taken for one call; hand it back to ``commit`` or ``release``."""

    id: str
    user_id: int
    operation: Operation
    provider: str
    day: date
    admin: bool
    reserved_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class QuotaStatus:
    """Today's allowance for one operation; ``limit``/``remaining`` are None when unlimited.

    ``used`` counts charged calls and calls still in progress.
    """

    limit: int | None
    used: int
    remaining: int | None
    resets_at: datetime


@dataclass(frozen=True, slots=True)
class CallCount:
    calls: int = 0
    charged: int = 0

    @property
    def free(self) -> int:
        return self.calls - self.charged


@dataclass(frozen=True, slots=True)
class Stats:
    """One quota day of usage records."""

    day: date
    # (operation, provider) -> calls and how many of them the provider charged
    calls: dict[tuple[Operation, str], CallCount] = field(default_factory=dict)
    # (provider, code) -> calls that ended with that provider code
    errors: dict[tuple[str, str], int] = field(default_factory=dict)
    # (user id, calls), busiest first
    busiest: list[tuple[int, int]] = field(default_factory=list)

    @property
    def total(self) -> CallCount:
        return CallCount(
            calls=sum(c.calls for c in self.calls.values()),
            charged=sum(c.charged for c in self.calls.values()),
        )


class QuotaDay:
    """Calendar days in one time zone, as quota days."""

    def __init__(self, zone: str = "UTC") -> None:
        self.zone = ZoneInfo(zone)

    def day(self, moment: datetime) -> date:
        return moment.astimezone(self.zone).date()

    def start(self, day: date) -> datetime:
        """The UTC instant the day begins."""
        return datetime.combine(day, time(0), tzinfo=self.zone).astimezone(UTC)

    def resets_at(self, day: date) -> datetime:
        return self.start(day + timedelta(days=1))


class Ledger:
    def __init__(
        self,
        database: Database,
        *,
        daily_limit: int = 0,
        timezone: str = "UTC",
        reservation_ttl: float = 300.0,
        clock: Clock = utc_now,
    ) -> None:
        if daily_limit < 0:
            raise ValueError("daily_limit must be 0 (no limit) or more")
        if reservation_ttl <= 0:
            raise ValueError("reservation_ttl must be above 0")
        self.database = database
        self.daily_limit = daily_limit
        self.days = QuotaDay(timezone)
        self.reservation_ttl = timedelta(seconds=reservation_ttl)
        self.clock = clock

    @classmethod
    def from_settings(
        cls, database: Database, settings: ServiceSettings, *, clock: Clock = utc_now
    ) -> Ledger:
        return cls(
            database,
            daily_limit=settings.user_daily_limit,
            timezone=settings.quota_timezone,
            reservation_ttl=settings.reservation_ttl,
            clock=clock,
        )

    # ------------------------------------------------------------------ time

    def _now(self) -> datetime:
        now = self.clock()
        if now.tzinfo is None:
            raise ValueError("the clock must return an aware datetime")
        return now.astimezone(UTC)

    def today(self) -> date:
        return self.days.day(self._now())

    def resets_at(self, day: date | None = None) -> datetime:
        return self.days.resets_at(day if day is not None else self.today())

    # ------------------------------------------------------------ the ledger

    async def reserve(
        self, user_id: int, operation: Operation | str, provider: str, *, admin: bool
    ) -> Reservation:
        """Take one unit of today's allowance, or raise ``QuotaExceeded``."""
        operation = Operation(operation)
        now = self._now()
        day = self.days.day(now)
        unlimited = admin or self.daily_limit == 0
        reservation = Reservation(
            id=uuid.uuid4().hex,
            user_id=user_id,
            operation=operation,
            provider=provider,
            day=day,
            admin=admin,
            reserved_at=now,
            expires_at=now + self.reservation_ttl,
        )

        def work(connection: Connection) -> bool:
            _sweep(connection, now, user_id=user_id, operation=operation.value)
            counters = _COUNTERS.c
            statement = upsert(connection, _COUNTERS).values(
                user_id=user_id, operation=operation.value, day=day, used=1
            )
            statement = statement.on_conflict_do_update(
                index_elements=[counters.user_id, counters.operation, counters.day],
                set_={"used": counters.used + 1},
                where=None if unlimited else counters.used < self.daily_limit,
            ).returning(counters.used)
            if (connection.execute(statement)).first() is None:
                return False
            connection.execute(
                _RESERVATIONS.insert().values(
                    id=reservation.id,
                    user_id=user_id,
                    operation=operation.value,
                    provider=provider,
                    day=day,
                    admin=admin,
                    state=PENDING,
                    created=now,
                    expires_at=reservation.expires_at,
                )
            )
            return True

        if not await self.database.run(work):
            raise QuotaExceeded(operation, self.daily_limit, self.days.resets_at(day))
        return reservation

    async def commit(
        self,
        reservation: Reservation,
        *,
        charged: bool,
        code: int | str | None = None,
        latency_ms: int | None = None,
    ) -> bool:
        """End the call: keep the unit if the provider charged, give it back otherwise.

        Records the call against the reservation's provider (``code`` None for success).
        Returns False, recording nothing, when the reservation was already committed,
        released or forgotten.
        """
        now = self._now()

        def work(connection: Connection) -> bool:
            state = _take(connection, reservation.id)
            if state is None:
                return False
            if charged and state == EXPIRED:
                # The unit was given back on expiry, but the provider did charge.
                connection.execute(
                    upsert(connection, _COUNTERS)
                    .values(
                        user_id=reservation.user_id,
                        operation=reservation.operation.value,
                        day=reservation.day,
                        used=1,
                    )
                    .on_conflict_do_update(
                        index_elements=[
                            _COUNTERS.c.user_id,
                            _COUNTERS.c.operation,
                            _COUNTERS.c.day,
                        ],
                        set_={"used": _COUNTERS.c.used + 1},
                    )
                )
            elif not charged and state == PENDING:
                _give_back(connection, reservation.user_id, reservation.operation, reservation.day)
            connection.execute(
                _USAGE.insert().values(
                    user_id=reservation.user_id,
                    operation=reservation.operation.value,
                    provider=reservation.provider,
                    code=None if code is None else str(code)[: tables.CODE_LENGTH],
                    charged=charged,
                    latency_ms=latency_ms,
                    at=now,
                )
            )
            return True

        return await self.database.run(work)

    async def release(self, reservation: Reservation) -> bool:
        """Give the unit back without recording a call (the provider was never asked)."""

        def work(connection: Connection) -> bool:
            state = _take(connection, reservation.id)
            if state == PENDING:
                _give_back(connection, reservation.user_id, reservation.operation, reservation.day)
            return state is not None

        return await self.database.run(work)

    async def remaining(self, user_id: int, *, admin: bool = False) -> dict[Operation, QuotaStatus]:
        """Today's allowance for every operation."""
        now = self._now()
        day = self.days.day(now)

        def work(connection: Connection) -> dict[str, int]:
            _sweep(connection, now, user_id=user_id)
            rows = connection.execute(
                select(_COUNTERS.c.operation, _COUNTERS.c.used).where(
                    _COUNTERS.c.user_id == user_id, _COUNTERS.c.day == day
                )
            )
            return {operation: used for operation, used in rows}

        used = await self.database.run(work)
        limit = None if admin or self.daily_limit == 0 else self.daily_limit
        resets_at = self.days.resets_at(day)
        return {
            operation: QuotaStatus(
                limit=limit,
                used=used.get(operation.value, 0),
                remaining=None if limit is None else max(0, limit - used.get(operation.value, 0)),
                resets_at=resets_at,
            )
            for operation in Operation
        }

    async def expire_stale(self) -> int:
        """Give back every expired reservation and prune old rows; returns units given back.

        ``reserve`` and ``remaining`` already sweep the user they serve; run this now
        and then (at start-up, hourly) to keep the tables small.
        """
        now = self._now()
        oldest_day = self.days.day(now) - timedelta(days=1)

        def work(connection: Connection) -> int:
            released = _sweep(connection, now)
            connection.execute(
                delete(_RESERVATIONS).where(
                    _RESERVATIONS.c.state == EXPIRED,
                    _RESERVATIONS.c.expires_at < now - EXPIRED_KEPT,
                )
            )
            connection.execute(
                delete(_COUNTERS).where(
                    _COUNTERS.c.day < oldest_day,
                    ~select(_RESERVATIONS.c.id)
                    .where(
                        _RESERVATIONS.c.user_id == _COUNTERS.c.user_id,
                        _RESERVATIONS.c.operation == _COUNTERS.c.operation,
                        _RESERVATIONS.c.day == _COUNTERS.c.day,
                    )
                    .exists(),
                )
            )
            return released

        return await self.database.run(work)

    async def forget(self, user_id: int) -> None:
        """Delete what is kept about the user: settings, usage records, past counters.

        Today's counters stay (a number under the user's id): forgetting must not hand
        the user a fresh allowance. A call still in flight keeps its reservation and ends as
        any other: its unit given back if the provider did not charge, and its usage record
        written, since the books must hold every provider call.
        """
        today = self.today()

        def work(connection: Connection) -> None:
            connection.execute(delete(_USERS).where(_USERS.c.id == user_id))
            connection.execute(delete(_USAGE).where(_USAGE.c.user_id == user_id))
            connection.execute(
                delete(_RESERVATIONS).where(
                    (_RESERVATIONS.c.user_id == user_id) & (_RESERVATIONS.c.state != PENDING)
                )
            )
            connection.execute(
                delete(_COUNTERS).where(
                    (_COUNTERS.c.user_id == user_id) & (_COUNTERS.c.day < today)
                )
            )

        await self.database.run(work)

    async def stats(self, day: date | None = None, *, top: int = 5) -> Stats:
        """Calls on one quota day (today by default) from the usage records."""
        day = day if day is not None else self.today()
        start, end = self.days.start(day), self.days.resets_at(day)
        usage = _USAGE.c
        in_day = (usage.at >= start, usage.at < end)

        def work(connection: Connection) -> Stats:
            charged = func.sum(case((usage.charged, 1), else_=0))
            calls = connection.execute(
                select(usage.operation, usage.provider, func.count(), charged)
                .where(*in_day)
                .group_by(usage.operation, usage.provider)
            )
            errors = connection.execute(
                select(usage.provider, usage.code, func.count())
                .where(*in_day, usage.code.is_not(None))
                .group_by(usage.provider, usage.code)
            )
            count = func.count().label("calls")
            busiest = connection.execute(
                select(usage.user_id, count)
                .where(*in_day)
                .group_by(usage.user_id)
                .order_by(count.desc(), usage.user_id)
                .limit(top)
            )
            return Stats(
                day=day,
                calls={
                    (_operation(op), provider): CallCount(int(n), int(c or 0))
                    for op, provider, n, c in calls
                },
                errors={(provider, code): int(n) for provider, code, n in errors},
                busiest=[(int(user), int(n)) for user, n in busiest],
            )

        return await self.database.read(work)


def _operation(value: str) -> Operation:
    return Operation(value)


def _take(connection: Connection, reservation_id: str) -> str | None:
    """Delete the reservation; its state before, or None if it was already gone."""
    result = connection.execute(
        delete(_RESERVATIONS)
        .where(_RESERVATIONS.c.id == reservation_id)
        .returning(_RESERVATIONS.c.state)
    )
    return result.scalar_one_or_none()


def _give_back(
    connection: Connection, user_id: int, operation: Operation, day: date, units: int = 1
) -> None:
    connection.execute(
        update(_COUNTERS)
        .where(
            _COUNTERS.c.user_id == user_id,
            _COUNTERS.c.operation == operation.value,
            _COUNTERS.c.day == day,
        )
        .values(used=_COUNTERS.c.used - units)
    )


def _sweep(
    connection: Connection,
    now: datetime,
    *,
    user_id: int | None = None,
    operation: str | None = None,
) -> int:
    """Expire overdue reservations and give their units back; each one exactly once."""
    reservations = _RESERVATIONS.c
    statement = update(_RESERVATIONS).where(
        reservations.state == PENDING, reservations.expires_at <= now
    )
    if user_id is not None:
        statement = statement.where(reservations.user_id == user_id)
    if operation is not None:
        statement = statement.where(reservations.operation == operation)
    rows = (
        connection.execute(
            statement.values(state=EXPIRED).returning(
                reservations.user_id, reservations.operation, reservations.day
            )
        )
    ).all()
    by_counter = Counter((row.user_id, row.operation, row.day) for row in rows)
    for (user, operation_name, day), units in sorted(by_counter.items()):
        _give_back(connection, user, Operation(operation_name), day, units)
    return len(rows)
