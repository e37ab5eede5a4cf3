"""Per-user pacing of the requests that start a provider operation.

Without it one user could have thirty paid calls in flight within two seconds, and with
``USER_DAILY_LIMIT=0`` drain a provider budget. Two limits, both per user:

- at most ``USER_IN_FLIGHT`` operations running at once (an in-flight slot, held from
  before the download until the reply is sent);
- a token bucket: ``USER_BURST`` operations at once, refilled at ``USER_RATE`` a minute
  (0: no rate limit).

A request over either limit is answered at once (``pace.busy``, ``pace.slow``) and costs
no quota and no provider call. Admins are not paced.

The state lives in this process (``MemoryPaceStore``: polling, or webhook without Redis) or
in Redis (``RedisPaceStore``, when the FSM storage is Redis: every webhook process sees
the same limits). In Redis one Lua script does each admission atomically: the slots are a
sorted set of slot ids scored by their expiry, so a slot left by a process that died is
dropped after ``RESERVATION_TTL`` seconds; the bucket is a hash that expires once it would
be full again.

Only the operation entry points (``bot.operations``, the compare of a photo's own two
faces) ask: /start, /help, /lang and every other update cost one context variable set by
``Pacing.setup`` (``bot.middlewares.context``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from aiogram import Dispatcher
from aiogram.fsm.storage.base import BaseStorage
from aiogram.fsm.storage.redis import RedisStorage
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _
from redis.asyncio import Redis

from bot.config import Settings
from bot.middlewares.context import ContextValue
from bot.render.text import fill
from services.metering import Caller

log = logging.getLogger(__name__)

# The memory store drops full buckets this often (seconds), so it does not grow with users.
SWEEP_EVERY = 60.0


@dataclass(frozen=True, slots=True)
class Limits:
    in_flight: int
    per_second: float  # tokens a second; 0: no rate limit
    burst: int
    slot_ttl: float  # seconds after which a slot nobody gave back is dropped (Redis)

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            in_flight=settings.user_in_flight,
            per_second=settings.user_rate / 60,
            burst=settings.user_burst,
            slot_ttl=settings.reservation_ttl,
        )


class Refusal(Enum):
    BUSY = "busy"  # USER_IN_FLIGHT operations running
    SLOW = "slow"  # the bucket is empty


@dataclass(frozen=True, slots=True)
class Admission:
    """How many of the operations asked for may start now (0: refused, and why).

    ``slot`` is the in-flight slot taken (give it back with ``release``); ``running``
    the user's operations running, this one included; ``wait`` the seconds until the
    operations not granted could start.
    """

    granted: int
    slot: str | None = None
    refusal: Refusal | None = None
    running: int = 0
    wait: float = 0.0


def take_tokens(
    tokens: float, elapsed: float, limits: Limits, want: int
) -> tuple[int, float, float]:
    """The bucket after ``elapsed`` seconds of refill: (granted, tokens left, wait).

    Grants as many of ``want`` as whole tokens allow; ``wait`` is the time until the rest
    (at most a full bucket of them) could start. ``RedisPaceStore``'s script does the same.
    """
    tokens = min(limits.burst, tokens + max(0.0, elapsed) * limits.per_second)
    granted = min(want, math.floor(tokens))
    tokens -= granted
    rest = min(want - granted, limits.burst)
    wait = (rest - tokens) / limits.per_second if rest else 0.0
    return granted, tokens, wait


class PaceStore(Protocol):
    async def admit(self, user_id: int, want: int) -> Admission: ...

    async def release(self, user_id: int, slot: str) -> None: ...


class MemoryPaceStore:
    """The limits of this process's users."""

    def __init__(self, limits: Limits, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self._slots: dict[int, set[str]] = {}
        self._buckets: dict[int, tuple[float, float]] = {}  # user -> (tokens, at)
        self._ids = itertools.count(1)
        self._swept = clock()

    async def admit(self, user_id: int, want: int) -> Admission:
        now = self.clock()
        self._sweep(now)
        slots = self._slots.setdefault(user_id, set())
        if len(slots) >= self.limits.in_flight:
            return Admission(0, refusal=Refusal.BUSY, running=len(slots))
        granted, wait = want, 0.0
        if self.limits.per_second:
            tokens, at = self._buckets.get(user_id, (float(self.limits.burst), now))
            granted, tokens, wait = take_tokens(tokens, now - at, self.limits, want)
            if not granted:
                return Admission(0, refusal=Refusal.SLOW, wait=wait)
            self._buckets[user_id] = (tokens, now)
        slot = str(next(self._ids))
        slots.add(slot)
        return Admission(granted, slot, running=len(slots), wait=wait)

    async def release(self, user_id: int, slot: str) -> None:
        slots = self._slots.get(user_id)
        if slots is not None:
            slots.discard(slot)

    def _sweep(self, now: float) -> None:
        """Forget users with nothing running and a bucket that has filled up again."""
        if now - self._swept < SWEEP_EVERY:
            return
        self._swept = now
        rate, burst = self.limits.per_second, self.limits.burst
        self._buckets = {
            user: (tokens, at)
            for user, (tokens, at) in self._buckets.items()
            if tokens + (now - at) * rate < burst
        }
        self._slots = {user: slots for user, slots in self._slots.items() if slots}


# KEYS: the user's slots (sorted set: slot id -> expiry time), the user's bucket (hash).
# ARGV: now, slot id, slot ttl, in-flight limit, tokens a second (0: none), burst, wanted.
# Returns {status, granted, running, wait}: status 0 granted, 1 busy, 2 slow.
_ADMIT = """
local now = tonumber(ARGV[1])
local ttl = tonumber(ARGV[3])
local limit = tonumber(ARGV[4])
local rate = tonumber(ARGV[5])
local burst = tonumber(ARGV[6])
local want = tonumber(ARGV[7])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local running = redis.call('ZCARD', KEYS[1])
if running >= limit then
  return {1, 0, running, '0'}
end
local granted = want
local wait = 0
if rate > 0 then
  local state = redis.call('HMGET', KEYS[2], 'tokens', 'at')
  local tokens = tonumber(state[1]) or burst
  local at = tonumber(state[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
  granted = math.min(want, math.floor(tokens))
  tokens = tokens - granted
  local rest = math.min(want - granted, burst)
  if rest > 0 then
    wait = (rest - tokens) / rate
  end
  if granted == 0 then
    return {2, 0, running, string.format('%.6f', wait)}
  end
  redis.call('HSET', KEYS[2], 'tokens', string.format('%.17g', tokens),
             'at', string.format('%.17g', now))
  redis.call('EXPIRE', KEYS[2], math.ceil((burst - tokens) / rate) + 1)
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[2])
redis.call('EXPIRE', KEYS[1], math.ceil(ttl) + 1)
return {0, granted, running + 1, string.format('%.6f', wait)}
"""


class RedisPaceStore:
    """The limits shared by every process on one Redis.

    The clock is the wall clock of each process (expiry times and refills compare them):
    processes whose clocks agree within a second pace alike.
    """

    def __init__(
        self,
        redis: Redis,
        limits: Limits,
        *,
        prefix: str = "facecheck:pace:",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self.limits = limits
        self.prefix = prefix
        self.clock = clock
        self._admit = redis.register_script(_ADMIT)

    def _keys(self, user_id: int) -> list[str]:
        return [f"{self.prefix}{user_id}:slots", f"{self.prefix}{user_id}:bucket"]

    async def admit(self, user_id: int, want: int) -> Admission:
        slot = uuid.uuid4().hex
        limits = self.limits
        # An album runs its photos one after another under one slot: a TTL for each.
        ttl = limits.slot_ttl * want
        args: list[str | float] = [self.clock(), slot, ttl, limits.in_flight]
        args += [limits.per_second, limits.burst, want]
        status, granted, running, wait = await self._admit(keys=self._keys(user_id), args=args)
        if status == 1:
            return Admission(0, refusal=Refusal.BUSY, running=int(running))
        if status == 2:
            return Admission(0, refusal=Refusal.SLOW, wait=float(wait))
        return Admission(int(granted), slot, running=int(running), wait=float(wait))

    async def release(self, user_id: int, slot: str) -> None:
        await self.redis.zrem(self._keys(user_id)[0], slot)


class Pacing:
    """The per-user limits, in front of one store."""

    def __init__(self, store: PaceStore) -> None:
        self.store = store

    @classmethod
    def create(cls, settings: Settings, storage: BaseStorage) -> Pacing:
        """In Redis when the FSM storage is (``REDIS_URL``), else in this process."""
        limits = Limits.from_settings(settings)
        if isinstance(storage, RedisStorage):
            return cls(RedisPaceStore(storage.redis, limits))
        return cls(MemoryPaceStore(limits))

    def setup(self, dispatcher: Dispatcher) -> None:
        dispatcher["pacing"] = self
        dispatcher.update.outer_middleware(ContextValue(PACING, self))

    @asynccontextmanager
    async def hold(self, caller: Caller | None, want: int = 1) -> AsyncIterator[Admission]:
        """Admit up to ``want`` operations of the caller; the slot is given back when the
        block ends, however it ends. Admins and updates without a user are not paced."""
        if caller is None or caller.admin:
            yield Admission(want)
            return
        admission = await self.store.admit(caller.user_id, want)
        try:
            yield admission
        finally:
            if admission.slot is not None:
                await self._release(caller.user_id, admission.slot)

    async def _release(self, user_id: int, slot: str) -> None:
        """Give the slot back even when the operation was cancelled; a slot Redis did not
        take back expires with its ``slot_ttl``."""
        try:
            await asyncio.shield(self.store.release(user_id, slot))
        except Exception as error:  # Redis unreachable: the slot expires
            log.warning("could not give back user %s's slot: %s", user_id, type(error).__name__)


PACING: ContextVar[Pacing | None] = ContextVar("pacing", default=None)
"""The pacing of the dispatcher handling the current update (``setup``): the
operation entry points are reached from many handlers, as ``MAKE_KEEPER`` is. None outside
a dispatcher that set it up: nothing is paced then."""


def refusal_text(admission: Admission, want: int) -> str:
    """Why none, or not all, of ``want`` operations start now."""
    seconds = max(1, math.ceil(admission.wait))
    if admission.refusal is Refusal.BUSY:
        return fill(_("pace.busy"), count=admission.running)
    if admission.refusal is Refusal.SLOW:
        return fill(_("pace.slow"), seconds=seconds)
    return fill(_("pace.album_rest"), count=admission.granted, total=want, seconds=seconds)


@asynccontextmanager
async def paced(message: Message, caller: Caller | None, want: int = 1) -> AsyncIterator[Admission]:
    """Admit up to ``want`` operations for ``message`` (holding one in-flight slot for the
    block); when fewer are admitted, ``message`` has been answered why."""
    pacing = PACING.get()
    if pacing is None:
        yield Admission(want)
        return
    async with pacing.hold(caller, want) as admission:
        if admission.granted < want:
            await message.reply(refusal_text(admission, want))
        yield admission
