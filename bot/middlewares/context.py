"""A value the update's handlers reach through a context variable, as aiogram's i18n does
with the locale: for what the operation entry points need (``bot.operations``) and would
otherwise have to travel through every handler that can start an operation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, Generic, TypeVar

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject

T = TypeVar("T")


class ContextValue(BaseMiddleware, Generic[T]):
    """Sets ``var`` to ``value`` while an update is handled."""

    def __init__(self, var: ContextVar[T | None], value: T) -> None:
        self.var = var
        self.value = value

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        token = self.var.set(self.value)
        try:
            return await handler(event, data)
        finally:
            self.var.reset(token)
