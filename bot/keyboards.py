"""Inline keyboards and their callback data."""

from __future__ import annotations

from functools import cache

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import get_i18n
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.i18n import LANGUAGE_NAMES, LOCALES
from bot.render.spec import flag, spec_name
from services.i18n import N_
from services.models import Operation
from services.specs import Medium, Spec, catalogue


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


class SpecChoice(CallbackData, prefix="spec"):
    """A /spec button: ``countries`` (the first screen), ``country`` (its documents),
    ``set`` (a spec id, or ``generic``). ``fresh``: the keyboard sits under a report (a
    check reply's offer), which a press must not edit: it answers with a new message."""

    action: str
    value: str = ""
    fresh: bool = False


GENERIC = "generic"

# The countries most asked about, first; the rest follow in the data file's order.
POPULAR_COUNTRIES = ("us", "gb", "eu", "cn", "ru", "in", "ca", "au", "jp", "kr", "de")


def spec_countries(current: Spec | None, *, fresh: bool = False) -> InlineKeyboardMarkup:
    """Countries (flag and code) four a row, the ICAO baseline, and the generic check (✓
    when ``current`` is None). ``fresh`` for a keyboard under a report (``SpecChoice.fresh``).

    The same few keyboards go under many replies, so each is built once per language.
    """
    current_id = None if current is None else current.id
    return _spec_countries(get_i18n().current_locale, current_id, fresh)


@cache  # a few languages times the specs: bounded
def _spec_countries(_locale: str, current_id: str | None, fresh: bool) -> InlineKeyboardMarkup:
    """Built row by row: aiogram's builder copies the whole keyboard on every button."""
    specs = catalogue()
    current = None if current_id is None else specs.get(current_id)
    with_specs = {spec.country for spec in specs.specs}
    order = [c for c in POPULAR_COUNTRIES if c in with_specs]
    order += [c for c in specs.countries if c in with_specs and c not in order]
    countries = [
        _button(
            ("✓ " if current is not None and current.country == alpha2 else "")
            + f"{flag(alpha2)} {alpha2.upper()}".strip(),
            SpecChoice(action="country", value=alpha2, fresh=fresh),
        )
        for alpha2 in order
    ]
    rows = [countries[i : i + 4] for i in range(0, len(countries), 4)]
    for spec in specs.of_country(""):
        mark = "✓ " if current is not None and current.id == spec.id else ""
        rows.append(
            [_button(mark + spec_name(spec), SpecChoice(action="set", value=spec.id, fresh=fresh))]
        )
    mark = "✓ " if current is None else ""
    generic = SpecChoice(action="set", value=GENERIC, fresh=fresh)
    rows.append([_button(mark + _("button.spec.generic"), generic)])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def _button(text: str, data: CallbackData) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=data.pack())


def spec_documents(alpha2: str, current: Spec | None) -> InlineKeyboardMarkup:
    """A country's documents, one a row, and the way back to the countries."""
    builder = InlineKeyboardBuilder()
    for spec in catalogue().of_country(alpha2):
        mark = "✓ " if current is not None and current.id == spec.id else ""
        office = "🏢 " if spec.medium is Medium.OFFICE else ""
        builder.button(
            text=mark + office + spec_name(spec),
            callback_data=SpecChoice(action="set", value=spec.id),
        )
    builder.button(text=_("button.spec.back"), callback_data=SpecChoice(action="countries"))
    builder.adjust(1)
    return builder.as_markup()


class MakeAction(CallbackData, prefix="make"):
    """A button under a check against a document: ``file`` makes the document's photo,
    ``sheet`` a 10x15 cm print sheet of it. ``message_id`` is the check reply that carries
    the buttons: what the check measured is kept under it (``bot.operations.MakeKeeper``)."""

    action: str
    message_id: int


MAKE_FILE = "file"
MAKE_SHEET = "sheet"


def can_make(spec: Spec) -> bool:
    """A spec the bot can make a file for: a print size or pixel limits, not an office spec."""
    if spec.medium is Medium.OFFICE:
        return False
    sized = spec.width_mm is not None and spec.height_mm is not None
    return sized or (spec.width_px is not None and spec.height_px is not None)


def can_print_sheet(spec: Spec) -> bool:
    return spec.medium is Medium.PRINT and spec.width_mm is not None and spec.height_mm is not None


def make_buttons(spec: Spec, message_id: int, *, made: bool = False) -> InlineKeyboardMarkup | None:
    """ "Make a US passport photo" and, for a print, "Print sheet (10×15 cm)"; once the
    file is ``made``, only the print sheet (None when that leaves no button)."""
    builder = InlineKeyboardBuilder()
    if not made:
        builder.button(
            text=_("button.make").format(document=spec_name(spec)),
            callback_data=MakeAction(action=MAKE_FILE, message_id=message_id),
        )
    if can_print_sheet(spec):
        builder.button(
            text=_("button.make_sheet"),
            callback_data=MakeAction(action=MAKE_SHEET, message_id=message_id),
        )
    builder.adjust(1)
    markup = builder.as_markup()
    return markup if markup.inline_keyboard else None
