"""Quotas and provider budgets around every provider call, and the local fallback.

For one request: the photo is prepared first (bad input costs nothing and reserves
nothing); the provider's budget is asked whether it may be called at all; a unit of
the user's daily allowance is reserved; the provider is called; the reservation is
committed only if the provider charged (an answer of a provider that bills no one,
the local engine, always counts), and released otherwise. With ``FALLBACK_TO_LOCAL``,
a cloud provider that is spent, backing off or failing hands the request to the local
engine, which answers in its place.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from services.budget import ProviderBackingOff, ProviderBudgets, ProviderSpent
from services.errors import (
    ProviderBudgetError,
    ProviderError,
    ProviderRateLimitError,
    ProviderUnavailableError,
)
from services.ledger import Ledger, Reservation
from services.models import Operation, Usage
from services.providers.base import Provider

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
    def __init__(self, ledger: Ledger, budgets: ProviderBudgets) -> None:
        self.ledger = ledger
        self.budgets = budgets

    async def run(
        self,
        operation: Operation,
        caller: Caller,
        providers: Sequence[P],
        prepare: Callable[[P], Awaitable[X]],
        call: Callable[[P, X], Awaitable[R]],
        then: Then[P, X, R] | None = None,
    ) -> Answered[P, X, R]:
        """Try ``providers`` in order (the configured one, then the local fallback); ``then``
        works on the answer while the ledger records the call."""
        fell_back_from: str | None = None
        for index, provider in enumerate(providers):
            last = index == len(providers) - 1
            name = provider.name
            prepared = await prepare(provider)
            if provider.billable:
                try:
                    await self.budgets.before_call(name, admin=caller.admin)
                except (ProviderSpent, ProviderBackingOff) as refusal:
                    if last:
                        raise
                    log.info(
                        "%s: %s refused before the call (%s); falling back",
                        operation.value,
                        name,
                        refusal.message_id,
                    )
                    fell_back_from = fell_back_from or name
                    continue
            reservation = await self.ledger.reserve(
                caller.user_id, operation, name, admin=caller.admin
            )
            started = time.perf_counter()
            try:
                result = await call(provider, prepared)
            except ProviderError as error:
                await self.ledger.commit(
                    reservation,
                    charged=error.charged,
                    code=error.code,
                    latency_ms=_ms(started),
                )
                if provider.billable:
                    await self.budgets.after_error(error)
                if last or not isinstance(error, _FALL_BACK_ON):
                    raise
                log.info("%s: %s failed with %s; falling back", operation.value, name, error.code)
                fell_back_from = fell_back_from or name
                continue
            except BaseException:
                await self.ledger.release(reservation)
                raise
            books = self._record(provider, reservation, result.usage, _ms(started))
            await _alongside(books, None if then is None else then(provider, prepared, result))
            return Answered(provider, prepared, result, fell_back_from)
        raise AssertionError("no provider to try")

    async def _record(
        self, provider: Provider, reservation: Reservation, usage: Usage, latency_ms: int
    ) -> None:
        """An answered call: the provider's figures, then the user's unit."""
        if provider.billable:
            await self.budgets.after_result(provider.name, usage)
        # A local answer is free for the operator but counts against the user's allowance.
        await self.ledger.commit(
            reservation, charged=usage.charged or not provider.billable, latency_ms=latency_ms
        )


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
