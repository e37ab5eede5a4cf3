"""Conversation state: the keys a check reply's "Make" data needs, and /forget in every chat."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiogram.fsm.storage.base import BaseStorage, StorageKey
from aiogram.fsm.storage.redis import RedisStorage
from aiogram.methods import SendMessage

from bot.app import create_storage
from bot.config import Settings
from bot.storage import forget_user
from services.models import Operation
from tests.db import REDIS_URL, unavailable
from tests.unit.recording import TOKEN, Conversation, FakeProvider, dispatcher_with

USER, OTHER = 501, 502
GROUP = -100123


@asynccontextmanager
async def redis_store(bot_id: int) -> AsyncIterator[RedisStorage]:
    built = create_storage(Settings.model_validate({"bot_token": TOKEN, "redis_url": REDIS_URL}))
    assert isinstance(built, RedisStorage)
    try:
        await built.redis.ping()
    except Exception as error:
        await built.close()
        unavailable(f"Redis not reachable at {REDIS_URL}: {type(error).__name__}: {error}")
    try:
        yield built
    finally:
        await forget_user(built, bot_id, USER)
        await forget_user(built, bot_id, OTHER)
        await built.close()


@pytest.fixture(params=["memory", "redis"])
async def storage(request: pytest.FixtureRequest) -> AsyncIterator[tuple[BaseStorage, int]]:
    """The storage ``create_storage`` builds, and a bot id no other test uses."""
    bot_id = random.randrange(10**9, 10**10)
    if request.param == "memory":
        yield create_storage(Settings.model_validate({"bot_token": TOKEN})), bot_id
        return
    async with redis_store(bot_id) as built:
        yield built, bot_id


def key(bot_id: int, chat: int, user: int, destiny: str = "default") -> StorageKey:
    return StorageKey(bot_id=bot_id, chat_id=chat, user_id=user, destiny=destiny)


async def test_make_data_has_a_key_of_its_own(storage: tuple[BaseStorage, int]) -> None:
    """aiogram's default Redis keys refuse any destiny but the default (a ValueError when
    a check reply kept its "Make" data)."""
    store, bot_id = storage
    await store.set_state(key(bot_id, USER, USER), "Flow:waiting")
    await store.set_data(key(bot_id, USER, USER, "make:77"), {"spec": "us-passport"})
    assert await store.get_data(key(bot_id, USER, USER, "make:77")) == {"spec": "us-passport"}
    assert await store.get_data(key(bot_id, USER, USER)) == {}
    assert await store.get_state(key(bot_id, USER, USER)) == "Flow:waiting"


async def test_forgetting_a_user_clears_every_chat_and_no_one_else(
    storage: tuple[BaseStorage, int],
) -> None:
    store, bot_id = storage
    for chat in (USER, GROUP):
        await store.set_state(key(bot_id, chat, USER), "Compare:second")
        await store.set_data(key(bot_id, chat, USER), {"first": "file-id-of-the-first-photo"})
    await store.set_data(key(bot_id, USER, USER, "make:77"), {"spec": "us-passport"})
    await store.set_state(key(bot_id, GROUP, OTHER), "Compare:second")
    await store.set_data(key(bot_id, GROUP, OTHER), {"first": "someone-else"})

    assert await forget_user(store, bot_id, USER) > 0
    for chat in (USER, GROUP):
        assert await store.get_state(key(bot_id, chat, USER)) is None
        assert await store.get_data(key(bot_id, chat, USER)) == {}
    assert await store.get_data(key(bot_id, USER, USER, "make:77")) == {}
    assert await store.get_state(key(bot_id, GROUP, OTHER)) == "Compare:second"
    assert await store.get_data(key(bot_id, GROUP, OTHER)) == {"first": "someone-else"}


async def test_forget_in_a_private_chat_ends_the_users_flow_in_a_group() -> None:
    dispatcher, bot, session = dispatcher_with({op: FakeProvider() for op in Operation})
    user = Conversation(dispatcher, bot, session, user_id=USER)
    group = dispatcher.fsm.get_context(bot, GROUP, USER)
    await group.set_state("Compare:second")
    await group.update_data(first="file-id-of-the-first-photo")

    [confirm] = await user.send("/forget")
    await user.press("forget:1", under=user.sent[-1])
    assert await group.get_state() is None
    assert await group.get_data() == {}
    assert isinstance(confirm, SendMessage)  # asked before anything was deleted


async def test_redis_state_expires_after_twice_the_flow_timeout() -> None:
    """The first photo's file id during /compare must not stay in Redis for good."""
    bot_id = random.randrange(10**9, 10**10)
    async with redis_store(bot_id) as store:
        await store.set_state(key(bot_id, USER, USER), "Compare:second")
        await store.set_data(key(bot_id, USER, USER), {"first": "file-id"})
        await store.set_data(key(bot_id, USER, USER, "make:9"), {"spec": "us-passport"})
        keys = [k async for k in store.redis.scan_iter(match=f"fsm:{bot_id}:{USER}:*")]
        assert len(keys) == 3
        for name in keys:
            assert 0 < await store.redis.ttl(name) <= 2 * 600  # FLOW_TIMEOUT's default
