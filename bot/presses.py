"""One press of a menu acts once, however fast the user taps.

Telegram delivers every tap of a button as its own callback query, a double tap as two,
possibly to two processes; removing the keyboard after the first comes too late for the
second. The first press of a menu message claims it; a later one finds it claimed and does
nothing. Claims live in Redis (``SET NX`` with an expiry) when the FSM storage is Redis, so
every process sees them, else in this process; either way for ``ttl`` seconds. The same
claim makes other once-only steps once-only (``claim_once``: the second photo of a
``/compare`` flow).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from aiogram.fsm.storage.base import BaseStorage
from aiogram.fsm.storage.redis import RedisStorage


class Presses:
    def __init__(
        self, storage: BaseStorage, ttl: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.storage = storage
        self.ttl = ttl
        self.clock = clock
        self._claimed: set[str] = set()
        self._order: deque[tuple[float, str]] = deque()

    async def claim(self, chat_id: int, message_id: int) -> bool:
        """True for the first press of the message's buttons, False for any later one."""
        return await self.claim_once(f"press:{chat_id}:{message_id}")

    async def claim_once(self, key: str) -> bool:
        """True the first time ``key`` is claimed within ``ttl`` seconds, in any process."""
        if isinstance(self.storage, RedisStorage):
            name = f"facecheck:{key}"
            return bool(await self.storage.redis.set(name, 1, nx=True, ex=max(1, round(self.ttl))))
        now = self.clock()
        while self._order and now - self._order[0][0] > self.ttl:
            self._claimed.discard(self._order.popleft()[1])
        if key in self._claimed:
            return False
        self._claimed.add(key)
        self._order.append((now, key))
        return True
