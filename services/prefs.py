"""Per-user preferences (the chosen language).

The bot keeps them in the database (``services.storage.prefs.DbPreferences``);
``MemoryPreferences`` is the same shape for a bot or a script without storage.
"""

from __future__ import annotations

from typing import Protocol


class Preferences(Protocol):
    async def get_locale(self, user_id: int) -> str | None: ...

    async def set_locale(self, user_id: int, locale: str) -> None: ...


class MemoryPreferences:
    def __init__(self) -> None:
        self._locales: dict[int, str] = {}

    async def get_locale(self, user_id: int) -> str | None:
        return self._locales.get(user_id)

    async def set_locale(self, user_id: int, locale: str) -> None:
        self._locales[user_id] = locale
