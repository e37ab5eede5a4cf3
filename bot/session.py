"""The Bot API session: aiogram's aiohttp session, keeping the answer types it parses with,
sending a call again after Telegram's flood control asked to wait, and pacing the
messages sent into each chat so that flood control rarely has to ask.

aiogram reads every answer with ``Response[<the method's result type>]``. pydantic keeps
such parametrised classes only weakly, so once the garbage collector has run, the next
call builds the class again: about 6 ms of schema work, several times per update on a
busy bot. Holding each one for the life of the process makes it a dictionary lookup.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiogram import Bot, methods
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import Response, TelegramMethod

log = logging.getLogger(__name__)

# A 429 is waited out this many times, each wait at most this long; longer, the call fails.
FLOOD_ATTEMPTS = 3
FLOOD_LONGEST_WAIT = 60

_KEPT: dict[type, type] = {}


class ApiSession(AiohttpSession):
    def check_response(
        self, bot: Bot, method: TelegramMethod[Any], status_code: int, content: str
    ) -> Response[Any]:
        kind = type(method)
        if kind not in _KEPT:
            _KEPT[kind] = Response[method.__returning__]  # type: ignore[name-defined]
        return super().check_response(bot, method, status_code, content)


class FloodWait(BaseRequestMiddleware):
    """Telegram's 429 says the call was not done and when to try again: wait and send it
    again (a bounded number of times), so a reply the provider was paid for is not lost to
    a busy chat."""

    async def __call__(
        self, make_request: NextRequestMiddlewareType[Any], bot: Bot, method: TelegramMethod[Any]
    ) -> Response[Any]:
        for attempt in range(FLOOD_ATTEMPTS):
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as error:
                if attempt + 1 >= FLOOD_ATTEMPTS or error.retry_after > FLOOD_LONGEST_WAIT:
                    raise
                log.info(
                    "%s: flood control, again in %s s", method.__api_method__, error.retry_after
                )
                await asyncio.sleep(error.retry_after)
        raise AssertionError("unreachable")


@dataclass(frozen=True, slots=True)
class ChatRate:
    """A chat's token bucket: ``burst`` messages at once, then ``per_second``."""

    burst: int
    per_second: float


# Telegram: about one message a second in a private chat, 20 a minute in a group. A group's
# 5 at once plus 15 a minute keep any minute within 20.
PRIVATE_CHAT = ChatRate(burst=5, per_second=1.0)
GROUP_CHAT = ChatRate(burst=5, per_second=15 / 60)
# The methods that put a message into a chat (a chat action or an edit does not).
SENDS: frozenset[type[TelegramMethod[Any]]] = frozenset(
    {
        methods.CopyMessage,
        methods.CopyMessages,
        methods.ForwardMessage,
        methods.ForwardMessages,
        methods.SendAnimation,
        methods.SendAudio,
        methods.SendContact,
        methods.SendDice,
        methods.SendDocument,
        methods.SendLocation,
        methods.SendMediaGroup,
        methods.SendMessage,
        methods.SendPhoto,
        methods.SendPoll,
        methods.SendSticker,
        methods.SendVenue,
        methods.SendVideo,
        methods.SendVideoNote,
        methods.SendVoice,
    }
)
# Chats whose bucket has filled up again are forgotten once this many are kept.
KEEP_CHATS = 10_000


class ChatPacer(BaseRequestMiddleware):
    """Spaces the messages sent into one chat: an album's ten reports and their texts
    would otherwise meet Telegram's 429 (and ``FloodWait``'s seconds of waiting) in a
    burst. Each send takes a token of its chat, waiting for one when the bucket is
    empty; a single reply finds a full bucket and goes at once. Per process: the replies
    to one update come from the process that handles it."""

    def __init__(
        self,
        *,
        private: ChatRate = PRIVATE_CHAT,
        group: ChatRate = GROUP_CHAT,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.private = private
        self.group = group
        self.clock = clock
        self.sleep = sleep
        self._chats: dict[int, tuple[float, float]] = {}  # chat -> (tokens, at)
        self._keep = KEEP_CHATS

    async def __call__(
        self, make_request: NextRequestMiddlewareType[Any], bot: Bot, method: TelegramMethod[Any]
    ) -> Response[Any]:
        if type(method) in SENDS:
            chat_id = getattr(method, "chat_id", None)
            if isinstance(chat_id, int):
                delay = self.reserve(chat_id)
                if delay > 0:
                    await self.sleep(delay)
        return await make_request(bot, method)

    def reserve(self, chat_id: int) -> float:
        """Take the chat's next send: the seconds to wait before it (0 within the burst).
        The token is taken at once, so concurrent sends queue one behind the other."""
        rate = self.private if chat_id > 0 else self.group
        now = self.clock()
        tokens, at = self._chats.get(chat_id, (float(rate.burst), now))
        tokens = min(rate.burst, tokens + (now - at) * rate.per_second) - 1
        self._chats[chat_id] = (tokens, now)
        if len(self._chats) > self._keep:
            self._forget_idle(now)
        return 0.0 if tokens >= 0 else -tokens / rate.per_second

    def _forget_idle(self, now: float) -> None:
        def full(chat_id: int, tokens: float, at: float) -> bool:
            rate = self.private if chat_id > 0 else self.group
            return tokens + (now - at) * rate.per_second >= rate.burst

        self._chats = {c: (t, a) for c, (t, a) in self._chats.items() if not full(c, t, a)}
        self._keep = max(KEEP_CHATS, 2 * len(self._chats))
