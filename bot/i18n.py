"""gettext catalogues and the choice of each user's language.

Message ids are symbolic (``check.verdict.pass``); every locale, English
included, translates each one, and a test fails when any is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiogram.types import TelegramObject, User
from aiogram.utils.i18n import I18n, I18nMiddleware

from services.prefs import Preferences

LOCALES_DIR = Path(__file__).parent / "locales"
DOMAIN = "messages"
LOCALES = ("en", "ru", "zh_Hans")
LANGUAGE_NAMES = {"en": "English", "ru": "Русский", "zh_Hans": "简体中文"}


def match_locale(code: str | None) -> str | None:
    """Map a Telegram ``language_code`` or a user's ``/lang`` argument to a catalogue.

    ``zh``, ``zh-hans``, ``zh-cn`` (and other Chinese tags) mean Simplified Chinese.
    """
    if not code:
        return None
    tag = code.strip().replace("_", "-").lower()
    language = tag.split("-", 1)[0]
    if language == "zh" or tag in {"cn", "chinese", "中文", "简体中文"}:
        return "zh_Hans"
    if language in {"ru", "rus", "russian", "русский"}:
        return "ru"
    if language in {"en", "eng", "english"}:
        return "en"
    return None


def create_i18n(default_locale: str) -> I18n:
    return I18n(path=LOCALES_DIR, default_locale=default_locale, domain=DOMAIN)


class LocaleMiddleware(I18nMiddleware):
    """The user's ``/lang`` choice first, then Telegram's ``language_code``, then the default."""

    def __init__(self, i18n: I18n, preferences: Preferences) -> None:
        super().__init__(i18n=i18n)
        self.preferences = preferences

    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        user: User | None = data.get("event_from_user")
        if user is None:
            return self.i18n.default_locale
        chosen = await self.preferences.get_locale(user.id)
        if chosen in self.i18n.available_locales:
            return chosen
        matched = match_locale(user.language_code)
        if matched in self.i18n.available_locales:
            return matched
        return self.i18n.default_locale
