"""``bot.presses.Presses``: the first press of a menu claims it, in one process or, through
Redis, in all of them."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.fsm.storage.redis import RedisStorage

from bot.presses import Presses

if TYPE_CHECKING:
    from tests.db import RedisTarget

pytest_plugins = ["tests.db"]


async def test_in_one_process_the_first_press_wins_and_others_are_apart() -> None:
    presses = Presses(MemoryStorage(), ttl=60)
    assert await presses.claim(1, 10) is True
    assert await presses.claim(1, 10) is False
    assert await presses.claim(1, 11) is True  # another menu
    assert await presses.claim(2, 10) is True  # another chat


async def test_a_claim_ends_after_its_time() -> None:
    now = [100.0]
    presses = Presses(MemoryStorage(), ttl=60, clock=lambda: now[0])
    assert await presses.claim(1, 10) is True
    now[0] += 60
    assert await presses.claim(1, 10) is False  # still within its time
    now[0] += 1
    assert await presses.claim(1, 10) is True  # swept, claimed afresh


async def test_through_redis_two_processes_see_one_claim(redis_target: RedisTarget) -> None:
    storages = [RedisStorage.from_url(redis_target.url) for _ in range(2)]
    chat = random.randrange(10**9, 10**10)  # keys expire on their own (ttl), and never collide
    try:
        first, second = (Presses(storage, ttl=5) for storage in storages)
        assert await first.claim(chat, 10) is True
        assert await second.claim(chat, 10) is False
        assert await second.claim(chat, 11) is True
    finally:
        for storage in storages:
            await storage.close()
