"""Counts every update handled, by kind, and those that ended in an unexpected error."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update
from aiogram.types.update import UpdateTypeLookupError

from services.metrics import METRICS, Metrics


class MetricsMiddleware(BaseMiddleware):
    """An outer middleware of ``dispatcher.update``: one counter increment per update."""

    def __init__(self, metrics: Metrics = METRICS) -> None:
        self.metrics = metrics

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        kind = _kind(event)
        try:
            result = await handler(event, data)
        except Exception:
            self.metrics.update_handled(kind, failed=True)
            raise
        self.metrics.update_handled(kind)
        return result


def _kind(event: TelegramObject) -> str:
    """The update's kind; ``unknown`` for one newer than this aiogram, which the dispatcher
    then warns about and skips rather than failing here first."""
    if not isinstance(event, Update):
        return type(event).__name__
    try:
        return event.event_type
    except UpdateTypeLookupError:
        return "unknown"
