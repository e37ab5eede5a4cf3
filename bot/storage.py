"""Where conversation state lives, keyed so that everything of one user can be found.

aiogram's default Redis keys start with the chat (``fsm:<chat>:<user>``) and refuse any
destiny but the default; a check reply's "Make" data has a destiny of its own
(``make:<message id>``), and ``/forget`` must find a user's state in every chat. So the
keys here start with the user: ``fsm:<bot>:<user>:<chat>[:<thread>]:<destiny>:<part>``.
"""

from __future__ import annotations

from typing import Literal

from aiogram.fsm.storage.base import BaseStorage, KeyBuilder, StorageKey
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.fsm.storage.redis import RedisStorage

PREFIX = "fsm"


class UserFirstKeyBuilder(KeyBuilder):
    def build(self, key: StorageKey, part: Literal["data", "state", "lock"] | None = None) -> str:
        parts = [PREFIX, str(key.bot_id), str(key.user_id), str(key.chat_id)]
        if key.thread_id:
            parts.append(f"t{key.thread_id}")
        if key.business_connection_id:
            parts.append(f"b{key.business_connection_id}")
        parts.append(key.destiny)
        if part:
            parts.append(part)
        return ":".join(parts)


def redis_storage(url: str, ttl: int) -> RedisStorage:
    """Every key expires ``ttl`` seconds after its last write, whichever process wrote it."""
    return RedisStorage.from_url(
        url, key_builder=UserFirstKeyBuilder(), state_ttl=ttl, data_ttl=ttl
    )


async def forget_user(storage: BaseStorage, bot_id: int, user_id: int) -> int:
    """Delete the user's state and data in every chat (a waiting flow's photo id, the
    "Make" data of their check replies); returns how many records went."""
    if isinstance(storage, RedisStorage):
        pattern = f"{PREFIX}:{bot_id}:{user_id}:*"
        keys = [key async for key in storage.redis.scan_iter(match=pattern, count=500)]
        if keys:
            await storage.redis.delete(*keys)
        return len(keys)
    if isinstance(storage, MemoryStorage):
        mine = [k for k in storage.storage if k.bot_id == bot_id and k.user_id == user_id]
        for key in mine:
            del storage.storage[key]
        return len(mine)
    raise TypeError(f"cannot forget users in {type(storage).__name__}")
