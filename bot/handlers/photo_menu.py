"""A photo sent with no command: offer what the bot can do with it."""

from __future__ import annotations

from contextlib import suppress

from aiogram import Bot, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot.config import Settings
from bot.filters import HasImage, refuse_if_unavailable
from bot.flows import FlowTimers
from bot.handlers.compare import first_photo
from bot.handlers.spec import spec_choice
from bot.keyboards import PhotoAction, photo_actions
from bot.media import image_ref
from bot.operations import Options, run_single
from bot.presses import Presses
from services.metering import Caller
from services.models import Operation
from services.prefs import Preferences
from services.wiring import Services


async def on_unsolicited_photo(message: Message, services: Services) -> None:
    operations = [op for op in Operation if services.available(op)]
    if not operations:
        await message.reply(_("menu.nothing_available"))
        return
    await message.reply(_("menu.choose"), reply_markup=photo_actions(operations))


async def on_photo_action(
    query: CallbackQuery,
    callback_data: PhotoAction,
    bot: Bot,
    services: Services,
    settings: Settings,
    state: FSMContext,
    timers: FlowTimers,
    preferences: Preferences,
    presses: Presses,
    caller: Caller | None = None,
) -> None:
    menu = query.message
    photo_message = menu.reply_to_message if isinstance(menu, Message) else None
    ref = image_ref(photo_message)
    if photo_message is None or ref is None:
        await query.answer(_("menu.photo_gone"), show_alert=True)
        return
    operation = callback_data.operation
    await query.answer()
    if isinstance(menu, Message) and not await presses.claim(menu.chat.id, menu.message_id):
        return  # a second tap: the first one runs the operation
    if isinstance(menu, Message):
        with suppress(TelegramBadRequest):  # already edited by a second press
            await menu.edit_reply_markup(reply_markup=None)
    if await refuse_if_unavailable(photo_message, services, operation):
        return
    if operation is Operation.COMPARE:  # two faces in it are compared at once
        await first_photo(photo_message, photo_message, ref, bot, services, state, timers, caller)
        return
    options = Options()
    if operation is Operation.CHECK:
        # The document of whoever pressed, as their /check with no code would use it.
        spec, offer = await spec_choice(query.from_user.id, preferences, settings)
        options = options.with_spec(spec, offer=offer)
    await run_single(operation, photo_message, ref, bot, services, settings, options, caller)


def create_router() -> Router:
    router = Router(name="photo_menu")
    router.message.register(on_unsolicited_photo, HasImage(any_document=False))
    router.callback_query.register(on_photo_action, PhotoAction.filter())
    return router
