"""The ledger: per-user daily allowances, held exactly across any number of processes.

A request takes a unit first (``reserve``), then the provider is called, then the unit
is kept if the provider charged (``commit(charged=True)``) and given back otherwise
(``commit(charged=False)`` or ``release``). A call sent and never answered (``unknown``)
gives the unit back too, unless ``KEEP_UNIT_ON_UNKNOWN``. Taking a unit is one
conditional upsert,

    INSERT INTO quota_counters (user_id, operation, day, used) VALUES (…, 1)
    ON CONFLICT (user_id, operation, day)
    DO UPDATE SET used = quota_counters.used + 1 WHERE quota_counters.used < :limit
    RETURNING used

so the database, not the process, decides who gets the last unit: never
read-then-write. ``reserve`` takes an ``admit`` check that runs in the same transaction
(the provider budgets' atomic admission, ``ProviderBudgets.admission``).

One request, one unit: when a call fails and the request goes on to the local fallback,
``record`` books the failed call and ``move`` hands the same unit to the next provider.
A call that charged marks the unit ``spent``: however the request then ends, the unit
is kept, and only once. So the quota counter is the units taken, and the usage rows
carry one row per provider call, of which the charged ones are the units (an unknown
call kept by ``KEEP_UNIT_ON_UNKNOWN`` is the exception: it is not ``charged``).

Each unit taken has a row in ``reservations`` (``pending``, or ``spent``); a unit whose
call never ends (a crashed process) expires after ``reservation_ttl`` and the next
sweep gives a ``pending`` one back, exactly once (the sweep flips it to ``expired``
with a conditional UPDATE … RETURNING), and keeps a ``spent`` one (``lapsed``). A late
commit of an expired reservation that the provider did charge takes the unit again
only if it is still free: the user may have used it meanwhile, and a count over the
limit is worse than one call not counted (its usage row is written either way).
``RESERVATION_TTL`` must outlive any call (``services.metering.timing_problems``).

Days are calendar days in ``QUOTA_TIMEZONE``; a reservation belongs to the day it was
taken on, even if it ends after midnight. ``USER_DAILY_LIMIT`` 0 means no limit;
admins have none either, but their calls are counted and recorded like anyone's.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
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
# A check run in the reservation's transaction before the unit is taken; it raises to refuse.
Admission = Callable[[Connection, datetime], None]

PENDING = "pending"  # the unit is held for a call in flight
SPENT = "spent"  # held, and a call of this request charged: the unit is kept however it ends
EXPIRED = "expired"  # a pending unit past its expiry, given back
LAPSED = "lapsed"  # a spent unit past its expiry, kept
IN_FLIGHT = (PENDING, SPENT)

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
    spent: bool = False  # a call of this request charged: the unit is already the provider's


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
        keep_unit_on_unknown: bool = False,
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
        self.keep_unit_on_unknown = keep_unit_on_unknown
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
            keep_unit_on_unknown=settings.keep_unit_on_unknown,
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
        self,
        user_id: int,
        operation: Operation | str,
        provider: str,
        *,
        admin: bool,
        admit: Admission | None = None,
    ) -> Reservation:
        """Take one unit of today's allowance, or raise ``QuotaExceeded``; ``admit`` (the
        provider's budget) runs first in the same transaction and may refuse instead."""
        operation = Operation(operation)
        now = self._now()
        day = self.days.day(now)
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
            if admit is not None:
                admit(connection, now)
            _sweep(connection, now, user_id=user_id, operation=operation.value)
            if not _take_unit(connection, user_id, operation, day, self._limit(admin)):
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

    async def move(
        self, reservation: Reservation, provider: str, *, admit: Admission | None = None
    ) -> Reservation:
        """Hand the request's unit to the next provider (the fallback) with a fresh expiry:
        one request, one unit. ``admit`` may refuse, and the unit stays where it was."""
        now = self._now()
        moved = replace(reservation, provider=provider, expires_at=now + self.reservation_ttl)

        def work(connection: Connection) -> None:
            if admit is not None:
                admit(connection, now)
            connection.execute(
                update(_RESERVATIONS)
                .where(_RESERVATIONS.c.id == reservation.id)
                .values(provider=provider, expires_at=moved.expires_at)
            )

        await self.database.run(work)
        return moved

    async def record(
        self,
        reservation: Reservation,
        *,
        charged: bool,
        unknown: bool = False,
        code: int | str | None = None,
        latency_ms: int | None = None,
    ) -> Reservation:
        """Book a failed call of a request that goes on (to the fallback) and keep its
        reservation; a call that took the unit marks it ``spent``."""
        now = self._now()

        def work(connection: Connection) -> bool | None:
            state = connection.execute(
                select(_RESERVATIONS.c.state)
                .where(_RESERVATIONS.c.id == reservation.id)
                .with_for_update()
            ).scalar_one_or_none()
            if state is None:
                return None
            if self._keeps(charged, unknown):
                after = self._keep_unit(connection, reservation, state)
                if after != state:
                    connection.execute(
                        update(_RESERVATIONS)
                        .where(_RESERVATIONS.c.id == reservation.id)
                        .values(state=after)
                    )
                state = after
            _record_call(connection, reservation, charged, unknown, code, latency_ms, now)
            return state in (SPENT, LAPSED)

        spent = await self.database.run(work)
        return reservation if spent is None else replace(reservation, spent=spent)

    async def commit(
        self,
        reservation: Reservation,
        *,
        charged: bool,
        unknown: bool = False,
        code: int | str | None = None,
        latency_ms: int | None = None,
    ) -> bool:
        """End the request: keep the unit if the provider charged (or an earlier call of the
        request did), give it back otherwise. ``unknown``: sent and never answered, kept
        only with ``keep_unit_on_unknown``.

        Records the call against the reservation's provider (``code`` None for success).
        Returns False, recording nothing, when the reservation was already committed,
        released or forgotten.
        """
        now = self._now()
        keep = self._keeps(charged, unknown)

        def work(connection: Connection) -> bool:
            state = _take(connection, reservation.id)
            if state is None:
                return False
            if keep:
                self._keep_unit(connection, reservation, state)
            elif state == PENDING:
                _give_back(connection, reservation.user_id, reservation.operation, reservation.day)
            _record_call(connection, reservation, charged, unknown, code, latency_ms, now)
            return True

        return await self.database.run(work)

    async def release(self, reservation: Reservation) -> bool:
        """End the request without recording a call (the provider was never asked): the
        unit comes back, unless an earlier call of the request charged."""

        def work(connection: Connection) -> bool:
            state = _take(connection, reservation.id)
            if state == PENDING:
                _give_back(connection, reservation.user_id, reservation.operation, reservation.day)
            return state is not None

        return await self.database.run(work)

    def _keeps(self, charged: bool, unknown: bool) -> bool:
        return charged or (unknown and self.keep_unit_on_unknown)

    def _limit(self, admin: bool) -> int | None:
        return None if admin or self.daily_limit == 0 else self.daily_limit

    def _keep_unit(self, connection: Connection, reservation: Reservation, state: str) -> str:
        """The reservation's state once a call that took its unit is booked: a pending unit
        is spent; one given back on expiry is taken again (and spent) only if the allowance
        still has it, since the user may have used it meanwhile."""
        if state == PENDING:
            return SPENT
        if state == EXPIRED and _take_unit(
            connection,
            reservation.user_id,
            reservation.operation,
            reservation.day,
            self._limit(reservation.admin),
        ):
            return SPENT
        return state

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
                    _RESERVATIONS.c.state.in_((EXPIRED, LAPSED)),
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
                    (_RESERVATIONS.c.user_id == user_id) & _RESERVATIONS.c.state.not_in(IN_FLIGHT)
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


def _take_unit(
    connection: Connection, user_id: int, operation: Operation, day: date, limit: int | None
) -> bool:
    """One unit of the day's allowance if one is left (``limit`` None: no limit), by one
    conditional upsert: the database, not the process, decides who gets the last unit."""
    counters = _COUNTERS.c
    statement = (
        upsert(connection, _COUNTERS)
        .values(user_id=user_id, operation=operation.value, day=day, used=1)
        .on_conflict_do_update(
            index_elements=[counters.user_id, counters.operation, counters.day],
            set_={"used": counters.used + 1},
            where=None if limit is None else counters.used < limit,
        )
        .returning(counters.used)
    )
    return connection.execute(statement).first() is not None


def _record_call(
    connection: Connection,
    reservation: Reservation,
    charged: bool,
    unknown: bool,
    code: int | str | None,
    latency_ms: int | None,
    now: datetime,
) -> None:
    connection.execute(
        _USAGE.insert().values(
            user_id=reservation.user_id,
            operation=reservation.operation.value,
            provider=reservation.provider,
            code=None if code is None else str(code)[: tables.CODE_LENGTH],
            charged=charged,
            unknown=unknown,
            latency_ms=latency_ms,
            at=now,
        )
    )


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
    """Expire overdue reservations and give the pending ones' units back, each exactly once;
    a spent one keeps its unit (a call of it charged)."""
    reservations = _RESERVATIONS.c
    statement = update(_RESERVATIONS).where(
        reservations.state.in_(IN_FLIGHT), reservations.expires_at <= now
    )
    if user_id is not None:
        statement = statement.where(reservations.user_id == user_id)
    if operation is not None:
        statement = statement.where(reservations.operation == operation)
    rows = (
        connection.execute(
            statement.values(
                state=case((reservations.state == PENDING, EXPIRED), else_=LAPSED)
            ).returning(
                reservations.user_id, reservations.operation, reservations.day, reservations.state
            )
        )
    ).all()
    by_counter = Counter(
        (row.user_id, row.operation, row.day) for row in rows if row.state == EXPIRED
    )
    for (user, operation_name, day), units in sorted(by_counter.items()):
        _give_back(connection, user, Operation(operation_name), day, units)
    return by_counter.total()
