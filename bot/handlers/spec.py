"""/spec: which document /check judges photos against; and the spec a /check uses.

``/spec`` shows the current choice with buttons (countries, then a country's documents);
``/spec CODE`` sets it (an id, an alias, a country code or a country's name in English,
Russian or Chinese, through ``catalogue().get``); ``/spec generic`` goes back to the
generic check. ``/check CODE`` uses a spec once: ``spec_for_check`` resolves it before
any download, and answers an unknown code or an office spec itself.

The stored choice is a spec id, ``GENERIC`` for the generic check chosen outright, or
None for a user who never chose: only that user gets ``DEFAULT_SPEC`` (and, without
one, the line offering /spec under a check).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress

from aiogram import Bot, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

from bot.config import Settings
from bot.keyboards import GENERIC, SpecChoice, spec_countries, spec_documents
from bot.render.spec import country_text, office_text, set_text, spec_text, unknown_text
from services.prefs import Preferences
from services.specs import Medium, Spec, UnknownSpec, catalogue

log = logging.getLogger(__name__)

# What ``/spec`` accepts for "no document, the generic check".
GENERIC_WORDS = frozenset({GENERIC, "none", "off", "reset", "default"})


def find_spec(code: str) -> Spec:
    """The spec a user typed; ``UnknownSpec`` with suggestions when there is none."""
    return catalogue().get(code)


def stored_spec(spec_id: str | None) -> Spec | None:
    """A stored or configured spec id; one the data file no longer has counts as none."""
    if not spec_id:
        return None
    try:
        return catalogue().get(spec_id)
    except UnknownSpec:
        log.warning("spec %r is not in the catalogue; using the generic check", spec_id)
        return None


def default_spec(settings: Settings) -> Spec | None:
    """``DEFAULT_SPEC``: checked at start-up, so it is a known id or empty."""
    return stored_spec(settings.default_spec)


async def spec_choice(
    user_id: int | None, preferences: Preferences, settings: Settings
) -> tuple[Spec | None, bool]:
    """The spec a /check without a code uses, and whether its reply offers /spec.

    The stored spec; the generic check for ``GENERIC`` (never ``DEFAULT_SPEC``); else,
    for a user who never chose (or whose spec the data file no longer has), the default.
    The offer goes only to a user who never chose and has no default.
    """
    stored = None if user_id is None else await preferences.get_spec(user_id)
    if stored == GENERIC:
        return None, False
    chosen = stored_spec(stored)
    if chosen is not None:
        return chosen, False
    default = default_spec(settings)
    return default, default is None


async def current_spec(
    user_id: int | None, preferences: Preferences, settings: Settings
) -> Spec | None:
    """The spec a /check without a code uses: ``spec_choice`` without the offer."""
    spec, _offer = await spec_choice(user_id, preferences, settings)
    return spec


async def answer_unknown(message: Message, error: UnknownSpec, current: Spec | None) -> None:
    await message.answer(unknown_text(error), reply_markup=spec_countries(current))


async def answer_office(message: Message, spec: Spec) -> None:
    await message.answer(office_text(spec), reply_markup=spec_documents(spec.country, None))


async def spec_for_check(
    message: Message,
    code: str | None,
    preferences: Preferences,
    settings: Settings,
) -> tuple[bool, Spec | None, bool]:
    """The spec a /check uses: ``(go_on, spec, offer)``.

    ``code`` (``/check CODE``) wins for this check alone; otherwise the stored choice,
    then ``DEFAULT_SPEC``; with neither, the generic check and ``offer`` to pick one.
    An unknown code or an office spec is answered here and ``go_on`` is False.
    """
    user_id = message.from_user.id if message.from_user else None
    code = (code or "").strip()
    if code and code.lower() in GENERIC_WORDS:
        return True, None, False
    if code:
        try:
            spec = find_spec(code)
        except UnknownSpec as error:
            await answer_unknown(message, error, await current_spec(user_id, preferences, settings))
            return False, None, False
        if spec.medium is Medium.OFFICE:
            await answer_office(message, spec)
            return False, None, False
        return True, spec, False
    chosen, offer = await spec_choice(user_id, preferences, settings)
    return True, chosen, offer


async def on_spec(
    message: Message, command: CommandObject, preferences: Preferences, settings: Settings
) -> None:
    user_id = message.from_user.id if message.from_user else None
    code = (command.args or "").strip()
    if not code or user_id is None:
        current = await current_spec(user_id, preferences, settings)
        await message.answer(spec_text(current), reply_markup=spec_countries(current))
        return
    if code.lower() in GENERIC_WORDS:
        await preferences.set_spec(user_id, GENERIC)  # not None: that means "the default"
        await message.answer(set_text(None), reply_markup=spec_countries(None))
        return
    try:
        spec = find_spec(code)
    except UnknownSpec as error:
        await answer_unknown(message, error, await current_spec(user_id, preferences, settings))
        return
    if spec.medium is Medium.OFFICE:
        await answer_office(message, spec)
        return
    await preferences.set_spec(user_id, spec.id)
    await message.answer(set_text(spec))


Show = Callable[[str, InlineKeyboardMarkup | None], Awaitable[object]]


def _shower(query: CallbackQuery, bot: Bot, fresh: bool) -> Show:
    """How a press shows its answer: in the /spec menu by editing the menu; under a
    report (``SpecChoice.fresh``) as a new message, which leaves the report as it was
    (a photo's caption cannot be edited into text, nor should a report's tail be)."""

    async def edit(text: str, markup: InlineKeyboardMarkup | None) -> None:
        if isinstance(query.message, Message):
            with suppress(TelegramBadRequest):  # the same button pressed twice
                await query.message.edit_text(text, reply_markup=markup)

    async def send(text: str, markup: InlineKeyboardMarkup | None) -> None:
        chat_id = query.message.chat.id if query.message is not None else query.from_user.id
        await bot.send_message(chat_id, text, reply_markup=markup)

    return send if fresh else edit


async def on_spec_button(
    query: CallbackQuery,
    callback_data: SpecChoice,
    bot: Bot,
    preferences: Preferences,
    settings: Settings,
) -> None:
    user_id = query.from_user.id
    current = await current_spec(user_id, preferences, settings)
    action, value = callback_data.action, callback_data.value
    show = _shower(query, bot, callback_data.fresh)
    if action == "countries":
        await query.answer()
        await show(spec_text(current), spec_countries(current))
        return
    if action == "country" and catalogue().of_country(value):
        await query.answer()
        await show(country_text(value), spec_documents(value, current))
        return
    if action != "set":
        await query.answer()
        return
    if value == GENERIC:
        await preferences.set_spec(user_id, GENERIC)
        await query.answer()
        await show(set_text(None), spec_countries(None))
        return
    spec = stored_spec(value)
    if spec is None:
        await query.answer()
        return
    if spec.medium is Medium.OFFICE:
        await query.answer()
        await show(office_text(spec), spec_documents(spec.country, current))
        return
    await preferences.set_spec(user_id, spec.id)
    await query.answer()
    await show(set_text(spec), spec_documents(spec.country, spec))


def create_router() -> Router:
    router = Router(name="spec")
    router.message.register(on_spec, Command("spec", "document", "doc"))
    router.callback_query.register(on_spec_button, SpecChoice.filter())
    return router
