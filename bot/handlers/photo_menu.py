"""A photo sent with no command: offer what the bot can do with it."""

from __future__ import annotations

from contextlib import suppress

from aiogram import Bot, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot.filters import HasImage
from bot.handlers.check import run_check
from bot.keyboards import PhotoAction, photo_actions
from bot.media import image_ref
from bot.render import error_text
from services.errors import OperationUnavailable
from services.facecheck import Services
from services.models import Operation


def available_operations(services: Services) -> list[Operation]:
    return [Operation.CHECK] if services.check.available else []


async def on_unsolicited_photo(message: Message, services: Services) -> None:
    operations = available_operations(services)
    if not operations:
        await message.reply(_("menu.nothing_available"))
        return
    await message.reply(_("menu.choose"), reply_markup=photo_actions(operations))


async def on_photo_action(
    query: CallbackQuery, callback_data: PhotoAction, bot: Bot, services: Services
) -> None:
    menu = query.message
    photo_message = getattr(menu, "reply_to_message", None)
    ref = image_ref(photo_message)
    if photo_message is None or ref is None:
        await query.answer(_("menu.photo_gone"), show_alert=True)
        return
    if callback_data.operation is Operation.CHECK and not services.check.available:
        await query.answer()
        await photo_message.reply(
            error_text(OperationUnavailable(Operation.CHECK.value, services.check.provider.name))
        )
        return
    await query.answer(_("menu.working"))
    if isinstance(menu, Message):
        with suppress(TelegramBadRequest):  # already edited by a second press
            await menu.edit_reply_markup(reply_markup=None)
    if callback_data.operation is Operation.CHECK:
        await run_check(photo_message, ref, bot, services)


def create_router() -> Router:
    router = Router(name="photo_menu")
    router.message.register(on_unsolicited_photo, HasImage(any_document=False))
    router.callback_query.register(on_photo_action, PhotoAction.filter())
    return router
