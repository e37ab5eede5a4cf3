"""Counts every update handled, by kind, and those that ended in an unexpected error."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update

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
        kind = event.event_type if isinstance(event, Update) else type(event).__name__
        try:
            result = await handler(event, data)
        except Exception:
            self.metrics.update_handled(kind, failed=True)
            raise
        self.metrics.update_handled(kind)
        return result
