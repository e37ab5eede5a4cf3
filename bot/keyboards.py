"""Inline keyboards and their callback data."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.i18n import LANGUAGE_NAMES, LOCALES
from services.i18n import N_
from services.models import Operation


class PhotoAction(CallbackData, prefix="photo"):
    """A button under an unsolicited photo; the photo is the message the keyboard replies to."""

    operation: Operation


class LanguageChoice(CallbackData, prefix="lang"):
    locale: str


_OPERATION_BUTTONS = {
    Operation.CHECK: N_("button.check"),
    Operation.COMPARE: N_("button.compare"),
    Operation.DETECT: N_("button.detect"),
    Operation.ANALYZE: N_("button.analyze"),
}


def photo_actions(operations: list[Operation]) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for operation in operations:
        builder.button(
            text=_(_OPERATION_BUTTONS[operation]), callback_data=PhotoAction(operation=operation)
        )
    builder.adjust(2)
    return builder.as_markup()


def languages(current: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for locale in LOCALES:
        mark = "✓ " if locale == current else ""
        builder.button(
            text=mark + LANGUAGE_NAMES[locale], callback_data=LanguageChoice(locale=locale)
        )
    builder.adjust(3)
    return builder.as_markup()
