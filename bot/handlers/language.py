"""/lang: buttons, or ``/lang ru`` directly."""

from __future__ import annotations

from contextlib import suppress

from aiogram import Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from bot.i18n import LANGUAGE_NAMES, match_locale
from bot.keyboards import LanguageChoice, languages
from services.prefs import Preferences


async def on_lang(
    message: Message, command: CommandObject, i18n: I18n, preferences: Preferences
) -> None:
    if command.args:
        locale = match_locale(command.args)
        if locale is None or message.from_user is None:
            await message.answer(
                _("lang.unknown").format(choices=", ".join(LANGUAGE_NAMES.values())),
                reply_markup=languages(i18n.current_locale),
            )
            return
        await preferences.set_locale(message.from_user.id, locale)
        with i18n.use_locale(locale):
            await message.answer(_("lang.set"))
        return
    await message.answer(_("lang.choose"), reply_markup=languages(i18n.current_locale))


async def on_lang_button(
    query: CallbackQuery, callback_data: LanguageChoice, i18n: I18n, preferences: Preferences
) -> None:
    if callback_data.locale not in i18n.available_locales:
        await query.answer()
        return
    await preferences.set_locale(query.from_user.id, callback_data.locale)
    with i18n.use_locale(callback_data.locale):
        await query.answer(_("lang.set"))
        if query.message is not None and hasattr(query.message, "edit_text"):
            with suppress(TelegramBadRequest):  # the same button pressed twice
                await query.message.edit_text(
                    _("lang.set"), reply_markup=languages(callback_data.locale)
                )


def create_router() -> Router:
    router = Router(name="language")
    router.message.register(on_lang, Command("lang", "language"))
    router.callback_query.register(on_lang_button, LanguageChoice.filter())
    return router
