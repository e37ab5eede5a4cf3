"""The Bot API session: aiogram's aiohttp session, keeping the answer types it parses with,
and sending a call again after Telegram's flood control asked to wait.

aiogram reads every answer with ``Response[<the method's result type>]``. pydantic keeps
such parametrised classes only weakly, so once the garbage collector has run, the next
call builds the class again: about 6 ms of schema work, several times per update on a
busy bot. Holding each one for the life of the process makes it a dictionary lookup.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiogram import Bot
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
