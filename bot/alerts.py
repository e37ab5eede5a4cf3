"""Budget alerts to the admins, each in their own language (``services.alerts`` decides when)."""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from bot.render.text import fill
from services.alerts import AlertState, BudgetAlert
from services.i18n import N_
from services.prefs import Preferences

log = logging.getLogger(__name__)

MESSAGES = {
    AlertState.LOW: N_("budget.alert.low"),
    AlertState.SPENT: N_("budget.alert.spent"),
    AlertState.OK: N_("budget.alert.back"),
}


class AdminNotifier:
    """Sends one alert to every admin in ``ADMIN_IDS``; an admin who blocked the bot or never
    started it is logged and skipped, the others still get it."""

    def __init__(
        self, bot: Bot, admin_ids: list[int], i18n: I18n, preferences: Preferences
    ) -> None:
        self.bot = bot
        self.admin_ids = admin_ids
        self.i18n = i18n
        self.preferences = preferences

    async def __call__(self, alert: BudgetAlert) -> None:
        log.info(
            "budget alert: %s %s -> %s (%s left)",
            alert.provider,
            alert.previous.value,
            alert.state.value,
            alert.remaining,
        )
        for admin in self.admin_ids:
            try:
                locale = await self.preferences.get_locale(admin)
            except Exception:  # the store is down: the alert still goes, in the default
                log.warning("budget alert: admin %s's language unreadable", admin)
                locale = None
            if locale not in self.i18n.available_locales:
                locale = self.i18n.default_locale
            with self.i18n.context(), self.i18n.use_locale(locale):
                text = fill(
                    _(MESSAGES[alert.state]),
                    provider=alert.provider,
                    remaining="—" if alert.remaining is None else alert.remaining,
                )
            try:
                await self.bot.send_message(admin, text)
            except TelegramAPIError as error:  # blocked the bot, never started it, …
                log.warning("budget alert not delivered to admin %s: %s", admin, error)
