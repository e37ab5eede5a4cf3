"""Albums arrive as one update per photo; handlers should see them once, together."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import Message, TelegramObject


class AlbumMiddleware(BaseMiddleware):
    """Holds an album's messages for ``latency`` seconds, then calls the handler once.

    The handler gets the message that carries the caption (the command, if any) as
    the event and every message of the album, in order, as ``album``.
    """

    def __init__(self, latency: float = 0.6) -> None:
        self.latency = latency
        self._groups: dict[tuple[int, str], list[Message]] = {}

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        if not isinstance(event, Message) or not event.media_group_id:
            return await handler(event, data)
        key = (event.chat.id, event.media_group_id)
        group = self._groups.get(key)
        if group is not None:
            group.append(event)
            return None
        self._groups[key] = group = [event]
        try:
            await asyncio.sleep(self.latency)
        finally:
            self._groups.pop(key, None)
        group.sort(key=lambda m: m.message_id)
        lead = next((m for m in group if m.caption), group[0])
        data["album"] = group
        return await handler(lead, data)
