"""The Bot API session: aiogram's aiohttp session, keeping the answer types it parses with.

aiogram reads every answer with ``Response[<the method's result type>]``. pydantic keeps
such parametrised classes only weakly, so once the garbage collector has run, the next
call builds the class again: about 6 ms of schema work, several times per update on a
busy bot. Holding each one for the life of the process makes it a dictionary lookup.
"""

from __future__ import annotations

from typing import Any

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.methods import Response, TelegramMethod

_KEPT: dict[type, type] = {}


class ApiSession(AiohttpSession):
    def check_response(
        self, bot: Bot, method: TelegramMethod[Any], status_code: int, content: str
    ) -> Response[Any]:
        kind = type(method)
        if kind not in _KEPT:
            _KEPT[kind] = Response[method.__returning__]  # type: ignore[name-defined]
        return super().check_response(bot, method, status_code, content)
