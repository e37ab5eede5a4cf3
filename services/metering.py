"""Quotas and provider budgets around every provider call, and the local fallback.

For one request: the user's unit is reserved first, in the same transaction as the
provider's admission (its budget, with the calls already in flight to it counted), so a
user over the limit or a spent provider costs no work; then the photo is prepared (bad
input gives the unit back and records nothing); the provider is called; the request
keeps its unit only if the provider charged (an answer of a provider that bills no one,
the local engine, always counts), and gives it back otherwise. A call sent and never
answered (``ProviderError.unknown``) counts against the provider's budget and gives the
unit back, unless ``KEEP_UNIT_ON_UNKNOWN``.

With ``FALLBACK_TO_LOCAL``, a cloud provider that is spent, backing off or failing hands
the request to the local engine, which answers in its place; the request still takes
one unit, whichever of its calls took it, and every call gets its usage row.
``RESERVATION_TTL`` must outlive the longest call (``timing_problems``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from services import metrics
from services.alerts import BudgetAlerts
from services.budget import ProviderBackingOff, ProviderBudgets, ProviderSpent
from services.errors import (
    ProviderBudgetError,
    ProviderError,
    ProviderRateLimitError,
    ProviderUnavailableError,
)
from services.ledger import Ledger, QuotaExceeded, Reservation
from services.models import Operation, Usage
from services.providers.base import Provider
from services.providers.http import MAX_ATTEMPTS, longest_call

if TYPE_CHECKING:
    from services.config import ServiceSettings

log = logging.getLogger(__name__)


class Result(Protocol):
    """What every provider result carries: who answered and what they said about billing."""

    @property
    def provider(self) -> str: ...

    @property
    def usage(self) -> Usage: ...


P = TypeVar("P", bound=Provider)
X = TypeVar("X")  # what was prepared for it (the fitted photos)
R = TypeVar("R", bound=Result)

# Work on an answer (drawing its picture) that may run while the call is recorded.
Then = Callable[[P, X, R], Awaitable[None]]

# Seconds of preparing a photo a reservation's TTL is meant to cover; a reservation whose
# preparing took longer is given a fresh TTL before the call (``timing_problems``).
PREPARE_GRACE = 1.0

# Failures after which another engine may well succeed.
_FALL_BACK_ON = (ProviderUnavailableError, ProviderRateLimitError, ProviderBudgetError)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asks: the allowance is theirs; admins have no limit and may use the reserve."""

    user_id: int
    admin: bool = False


@dataclass(frozen=True, slots=True)
class Answered(Generic[P, X, R]):
    provider: P
    prepared: X
    result: R
    fell_back_from: str | None  # the cloud provider that could not answer, if any


class Metering:
    def __init__(
        self, ledger: Ledger, budgets: ProviderBudgets, alerts: BudgetAlerts | None = None
    ) -> None:
        self.ledger = ledger
        self.budgets = budgets
        self.alerts = alerts

    async def run(
        self,
        operation: Operation,
        caller: Caller,
        providers: Sequence[P],
        prepare: Callable[[P], Awaitable[X]],
        call: Callable[[P, X], Awaitable[R]],
        then: Then[P, X, R] | None = None,
    ) -> Answered[P, X, R]:
        """Try ``providers`` in order (the configured one, then the local fallback) on one
        unit of the caller's allowance; ``then`` works on the answer while the ledger
        records the call."""
        reservation: Reservation | None = None
        fell_back_from: str | None = None
        for index, provider in enumerate(providers):
            last = index == len(providers) - 1
            name = provider.name
            admit = self.budgets.admission(name, admin=caller.admin) if provider.billable else None
            reserved = time.perf_counter()
            try:
                if reservation is None:
                    reservation = await self.ledger.reserve(
                        caller.user_id, operation, name, admin=caller.admin, admit=admit
                    )
                else:
                    reservation = await self.ledger.move(reservation, name, admit=admit)
            except QuotaExceeded:
                metrics.quota_refused(operation)
                raise
            except (ProviderSpent, ProviderBackingOff) as refusal:
                if last:
                    if reservation is not None:
                        await self.ledger.release(reservation)
                    raise
                log.info(
                    "%s: %s refused before the call (%s); falling back",
                    operation.value,
                    name,
                    refusal.message_id,
                )
                fell_back_from = fell_back_from or name
                continue
            try:
                prepared = await prepare(provider)
            except BaseException:
                await self.ledger.release(reservation)
                raise
            if time.perf_counter() - reserved > PREPARE_GRACE:
                # Preparing waited (image threads busy): the call gets a whole TTL of its own.
                reservation = await self.ledger.move(reservation, name)
            started = time.perf_counter()
            try:
                result = await call(provider, prepared)
            except ProviderError as error:
                latency_ms = _ms(started)
                billing = metrics.billing_of(error.usage)
                metrics.provider_call(name, operation, error.code, billing, latency_ms / 1000)
                if provider.billable:
                    # The figures before the unit, as for an answer: in between, a charged or
                    # unknown call would be neither in flight nor spent to another admission.
                    await self.budgets.after_error(error)
                falls_back = not last and isinstance(error, _FALL_BACK_ON)
                if falls_back:
                    reservation = await self.ledger.record(
                        reservation,
                        charged=error.charged,
                        unknown=error.unknown,
                        code=error.code,
                        latency_ms=latency_ms,
                    )
                else:
                    await self.ledger.commit(
                        reservation,
                        charged=error.charged,
                        unknown=error.unknown,
                        code=error.code,
                        latency_ms=latency_ms,
                    )
                if provider.billable and self.alerts is not None:
                    await self.alerts.after_error(error)
                if not falls_back:
                    raise
                log.info("%s: %s failed with %s; falling back", operation.value, name, error.code)
                fell_back_from = fell_back_from or name
                continue
            except BaseException:
                await self.ledger.release(reservation)
                raise
            latency_ms = _ms(started)
            billing = metrics.billing_of(result.usage)
            metrics.provider_call(name, operation, None, billing, latency_ms / 1000)
            books = self._record(provider, reservation, result.usage, latency_ms)
            await _alongside(books, None if then is None else then(provider, prepared, result))
            return Answered(provider, prepared, result, fell_back_from)
        raise AssertionError("no provider to try")

    async def _record(
        self, provider: Provider, reservation: Reservation, usage: Usage, latency_ms: int
    ) -> None:
        """An answered call: the provider's figures, then the user's unit."""
        if provider.billable:
            await self.budgets.after_result(provider.name, usage)
            if self.alerts is not None:
                await self.alerts.after_result(provider.name, usage)
        # A local answer is free for the operator but takes the user's unit, unless a
        # charged cloud call of the same request already took it: one request, one unit.
        takes_unit = usage.charged or (not provider.billable and not reservation.spent)
        await self.ledger.commit(reservation, charged=takes_unit, latency_ms=latency_ms)


async def _alongside(books: Awaitable[None], work: Awaitable[None] | None) -> None:
    """Both to the end, the books' failure raised before the work's: a call is recorded
    however its picture fares."""
    if work is None:
        await books
        return
    outcomes = await asyncio.gather(books, work, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


def _ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


async def run_unmetered(
    providers: Sequence[P],
    prepare: Callable[[P], Awaitable[X]],
    call: Callable[[P, X], Awaitable[R]],
    then: Then[P, X, R] | None = None,
) -> Answered[P, X, R]:
    """The same call with no ledger (a plain script): the first provider only."""
    provider = providers[0]
    prepared = await prepare(provider)
    result = await call(provider, prepared)
    if then is not None:
        await then(provider, prepared, result)
    return Answered(provider, prepared, result, None)


def timing_problems(settings: ServiceSettings) -> list[str]:
    """Start-up lines, one per problem, when ``RESERVATION_TTL`` does not outlive the longest
    call of a provider in use and the preparing it may be given (``PREPARE_GRACE``): a
    reservation expiring mid-call gives its unit back while the call may still charge."""
    ttl = settings.reservation_ttl
    chosen = {settings.provider_for(operation) for operation in Operation}
    problems: list[str] = []
    cloud = longest_call(settings.provider_timeout) + PREPARE_GRACE
    if chosen - {"local"} and ttl <= cloud:
        problems.append(
            f"RESERVATION_TTL is invalid: expected more than {cloud:g} seconds, the longest a "
            f"cloud call can take (PROVIDER_TIMEOUT {settings.provider_timeout:g} s x "
            f"{MAX_ATTEMPTS} attempts, the waits between them and {PREPARE_GRACE:g} s of "
            f"preparing the photo)"
        )
    local = settings.local_timeout + PREPARE_GRACE
    if ("local" in chosen or settings.fallback_to_local) and ttl <= local:
        problems.append(
            f"RESERVATION_TTL is invalid: expected more than {local:g} seconds, LOCAL_TIMEOUT "
            f"({settings.local_timeout:g} s, the longest the offline engine may take) and "
            f"{PREPARE_GRACE:g} s of preparing the photo"
        )
    return problems
