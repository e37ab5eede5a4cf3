"""Albums arrive as one update per photo; handlers should see them once, together.

In one process the parts are gathered in memory. Behind a load balancer that does not
route by chat, the parts of one album reach different webhook processes; when the FSM
storage is Redis (``REDIS_URL``) they are gathered there instead: every process appends
its part (``RPUSH``, as the message's JSON) under the album's ``media_group_id``, the one
whose part comes first (``SET NX``) waits the window and handles the whole album, and the
others' parts end there (Telegram still gets its 200).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.fsm.storage.redis import RedisStorage
from aiogram.types import Message, TelegramObject
from redis.asyncio import Redis

# An album's keys outlive any window; a process that dies while waiting leaves them this long.
REDIS_TTL_SECONDS = 60
# The window is waited again while parts keep coming (a slow delivery must not split an
# album), at most this many times.
MAX_WINDOWS = 5


class AlbumMiddleware(BaseMiddleware):
    """Holds an album's messages until none has come for ``latency`` seconds (at most
    ``MAX_WINDOWS`` such windows), then calls the handler once.

    The handler gets the message that carries the caption (the command, if any) as
    the event and every message of the album, in order, as ``album``.
    """

    def __init__(
        self,
        latency: float = 0.6,
        *,
        prefix: str = "facecheck:album:",
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.latency = latency
        self.prefix = prefix
        self.sleep = sleep
        self._groups: dict[tuple[int, str], list[Message]] = {}

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        if not isinstance(event, Message) or not event.media_group_id:
            return await handler(event, data)
        storage = data.get("fsm_storage")
        if isinstance(storage, RedisStorage):
            group = await self._gather_in_redis(storage.redis, event, data["bot"])
        else:
            group = await self._gather_here(event)
        if group is None:
            return None
        group.sort(key=lambda m: m.message_id)
        lead = next((m for m in group if m.caption), group[0])
        data["album"] = group
        return await handler(lead, data)

    async def _gather_here(self, event: Message) -> list[Message] | None:
        """The album's parts that reach this process; None for all but the first."""
        key = (event.chat.id, event.media_group_id or "")
        group = self._groups.get(key)
        if group is not None:
            group.append(event)
            return None
        self._groups[key] = group = [event]
        try:
            seen = 0
            for _ in range(MAX_WINDOWS):
                if len(group) == seen:
                    break
                seen = len(group)
                await self.sleep(self.latency)
        finally:
            self._groups.pop(key, None)
        return group

    async def _gather_in_redis(
        self, redis: Redis, event: Message, bot: Bot
    ) -> list[Message] | None:
        """The album's parts from every process; None in all but the one that came first.

        A part that comes after the window starts an album of its own, as in memory.
        """
        base = f"{self.prefix}{event.chat.id}:{event.media_group_id}"
        parts, lead = f"{base}:parts", f"{base}:lead"
        async with redis.pipeline(transaction=True) as pipe:
            pipe.rpush(parts, event.model_dump_json(exclude_none=True))
            pipe.expire(parts, REDIS_TTL_SECONDS)
            pipe.set(lead, 1, nx=True, ex=REDIS_TTL_SECONDS)
            _length, _expiring, leading = await pipe.execute()
        if not leading:
            return None
        seen = 0
        for _ in range(MAX_WINDOWS):
            if (count := await redis.llen(parts)) == seen:
                break
            seen = count
            await self.sleep(self.latency)
        async with redis.pipeline(transaction=True) as pipe:
            pipe.lrange(parts, 0, -1)
            pipe.delete(parts, lead)
            stored, _deleted = await pipe.execute()
        group = {event.message_id: event}
        for raw in stored:
            message = Message.model_validate_json(raw)
            group.setdefault(message.message_id, message.as_(bot))  # a repeated update once
        return list(group.values())
