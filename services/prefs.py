"""Per-user preferences: the chosen language and the chosen document spec.

The bot keeps them in the database (``services.storage.prefs.DbPreferences``);
``MemoryPreferences`` is the same shape for a bot or a script without storage.
A spec is a ``services.specs`` id (``"us-passport"``); None means the generic check,
and ``set_spec(user, None)`` goes back to it. Setting one never changes the other.
"""

from __future__ import annotations

from typing import Protocol


class Preferences(Protocol):
    async def get_locale(self, user_id: int) -> str | None: ...

    async def set_locale(self, user_id: int, locale: str) -> None: ...

    async def get_spec(self, user_id: int) -> str | None: ...

    async def set_spec(self, user_id: int, spec: str | None) -> None: ...


class MemoryPreferences:
    def __init__(self) -> None:
        self._locales: dict[int, str] = {}
        self._specs: dict[int, str] = {}

    async def get_locale(self, user_id: int) -> str | None:
        return self._locales.get(user_id)

    async def set_locale(self, user_id: int, locale: str) -> None:
        self._locales[user_id] = locale

    async def get_spec(self, user_id: int) -> str | None:
        return self._specs.get(user_id)

    async def set_spec(self, user_id: int, spec: str | None) -> None:
        if spec is None:
            self._specs.pop(user_id, None)
        else:
            self._specs[user_id] = spec
