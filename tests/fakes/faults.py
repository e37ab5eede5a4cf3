"""Fault injection for the fake providers, and the ledger of what each fake billed.

A soak sets ``fake.faults = Faults(...)``: every authenticated call is then given a
fault chosen by its photo, so the retries of one call (the same bytes, signed afresh)
meet the same fault and a call is one photo. The faults are the ones a real provider
shows under load:

- ``UNAVAILABLE``: an HTTP 503 from the gateway before the API saw the call (not billed;
  the client may retry it);
- ``BILL_THEN_HANG``: the call is processed and billed, then the answer never comes
  until the client gives up (its timeout): the provider kept the money, the client
  cannot know;
- ``RATE_LIMITED``: the vendor's own "slow down" code (not billed), at most once every
  ``rate_limit_every`` seconds, since each one backs the provider off for a while.

Whatever the fault, a billed call goes in ``Faults.bills`` with whether its answer
reached the client, which is what the books of the bot must agree with.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from aiohttp import web


class Fault(StrEnum):
    NONE = "none"
    UNAVAILABLE = "unavailable"
    BILL_THEN_HANG = "bill_then_hang"
    RATE_LIMITED = "rate_limited"


@dataclass(frozen=True, slots=True)
class Bill:
    """One billed call: its path, the photo it was for, whether the answer got back."""

    path: str
    photo: str
    answered: bool


def photo_key(data: bytes | str) -> str:
    """What groups a call's attempts: the digest of the photo as sent."""
    raw = data.encode() if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()[:32]


@dataclass
class Faults:
    """Shares of calls (by photo) that meet each fault; the rest are answered normally."""

    unavailable: float = 0.0
    bill_then_hang: float = 0.0
    rate_limited: float = 0.0
    rate_limit_every: float = 30.0
    """Seconds at least between two rate-limited photos."""
    hang_limit: float = 60.0
    """Seconds a billed call waits for its client to give up before answering anyway."""
    seed: int = 0
    clock: Callable[[], float] = time.monotonic
    chosen: dict[str, Fault] = field(default_factory=dict)
    """The fault of every photo seen, by ``photo_key``."""
    bills: list[Bill] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    """(path, photo) of every authenticated request, retries included."""
    _rng: random.Random = field(init=False, repr=False)
    _last_rate_limit: float = field(default=float("-inf"), init=False, repr=False)

    def __post_init__(self) -> None:
        if self.unavailable + self.bill_then_hang + self.rate_limited > 1:
            raise ValueError("the shares add up to more than 1")
        self._rng = random.Random(self.seed)

    def choose(self, path: str, photo: str) -> Fault:
        """The fault of the call for ``photo``: drawn once, the same for every attempt."""
        self.requests.append((path, photo))
        known = self.chosen.get(photo)
        if known is not None:
            return known
        draw = self._rng.random()
        fault = Fault.NONE
        if draw < self.unavailable:
            fault = Fault.UNAVAILABLE
        elif draw < self.unavailable + self.bill_then_hang:
            fault = Fault.BILL_THEN_HANG
        elif draw < self.unavailable + self.bill_then_hang + self.rate_limited:
            now = self.clock()
            if now - self._last_rate_limit >= self.rate_limit_every:
                fault, self._last_rate_limit = Fault.RATE_LIMITED, now
        self.chosen[photo] = fault
        return fault

    def bill(self, path: str, photo: str, request: web.BaseRequest) -> None:
        """Enter a billed answer about to be sent; it counts as answered while the client
        is still connected."""
        self.bills.append(Bill(path, photo, answered=not client_gone(request)))

    async def hang(self, request: web.BaseRequest, stopping: asyncio.Event) -> None:
        """Hold the answer until the client has given up (or ``hang_limit``, or the fake stops)."""
        deadline = self.clock() + self.hang_limit
        while not client_gone(request) and self.clock() < deadline:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), 0.05)
            if stopping.is_set():
                return

    def billed(self, path: str, *, answered: bool) -> int:
        return sum(1 for bill in self.bills if bill.path == path and bill.answered == answered)

    def calls(self, path: str) -> int:
        """Calls to ``path``: the distinct photos of its authenticated requests."""
        return len({photo for at, photo in self.requests if at == path})


def client_gone(request: web.BaseRequest) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()
