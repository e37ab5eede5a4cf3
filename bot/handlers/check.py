"""/check: the ID-photo compliance check, however the photo arrives."""

from __future__ import annotations

import logging

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import BufferedInputFile, Message
from aiogram.utils.chat_action import ChatActionSender
from aiogram.utils.i18n import gettext as _

from bot.filters import HasImage, RepliesToImage
from bot.media import ImageRef, download, image_ref
from bot.render import check_report, error_text, split_for_caption
from bot.states import CheckFlow
from services.errors import ImageError, OperationUnavailable, ProviderError, ServiceError
from services.facecheck import Services
from services.models import Operation

log = logging.getLogger(__name__)

MAX_ALBUM_PHOTOS = 10


async def run_check(message: Message, image: ImageRef, bot: Bot, services: Services) -> None:
    """Download, check, and answer with the annotated photo and the report."""
    async with ChatActionSender.upload_photo(bot=bot, chat_id=message.chat.id):
        try:
            data = await download(bot, image)
            outcome = await services.check.check(data)
        except ServiceError as error:
            _log_failure(message, error)
            await message.reply(error_text(error))
            return
    sections = check_report(outcome.result, outcome.image, compressed=not image.as_document)
    caption, rest = split_for_caption(sections)
    await message.reply_photo(
        BufferedInputFile(outcome.annotated, filename="check.jpg"), caption=caption
    )
    for text in rest:
        await message.answer(text)


def _log_failure(message: Message, error: ServiceError) -> None:
    user = message.from_user.id if message.from_user else None
    if isinstance(error, ProviderError):
        log.warning(
            "check for user %s: %s code=%s charged=%s msg=%r task=%s",
            user,
            error.provider,
            error.code,
            error.charged,
            error.provider_msg,
            error.task_no,
        )
    elif isinstance(error, ImageError):
        log.info("check for user %s: refused input: %s", user, error.problem.value)
    else:
        log.info("check for user %s: %s", user, error)


async def _unavailable(message: Message, services: Services) -> bool:
    if services.check.available:
        return False
    await message.reply(
        error_text(OperationUnavailable(Operation.CHECK.value, services.check.provider.name))
    )
    return True


async def on_check_with_photo(
    message: Message,
    image: ImageRef,
    bot: Bot,
    services: Services,
    state: FSMContext,
    album: list[Message] | None = None,
) -> None:
    await state.clear()
    if await _unavailable(message, services):
        return
    if not album:
        await run_check(message, image, bot, services)
        return
    for item in album[:MAX_ALBUM_PHOTOS]:
        ref = image_ref(item)
        if ref is not None:
            await run_check(item, ref, bot, services)


async def on_check_reply(
    message: Message,
    image: ImageRef,
    image_message: Message,
    bot: Bot,
    services: Services,
    state: FSMContext,
) -> None:
    await state.clear()
    if await _unavailable(message, services):
        return
    await run_check(image_message, image, bot, services)


async def on_check_command(message: Message, services: Services, state: FSMContext) -> None:
    if await _unavailable(message, services):
        return
    await state.set_state(CheckFlow.waiting_photo)
    await message.answer(_("check.send_photo"))


async def on_awaited_photo(
    message: Message, image: ImageRef, bot: Bot, services: Services, state: FSMContext
) -> None:
    await state.clear()
    await run_check(message, image, bot, services)


async def on_not_a_photo(message: Message) -> None:
    await message.answer(_("check.expecting_photo"))


def create_router() -> Router:
    router = Router(name="check")
    router.message.register(on_check_with_photo, Command("check"), HasImage())
    router.message.register(on_check_reply, Command("check"), RepliesToImage())
    router.message.register(on_check_command, Command("check"))
    router.message.register(on_awaited_photo, CheckFlow.waiting_photo, HasImage())
    router.message.register(on_not_a_photo, CheckFlow.waiting_photo, ~F.text.startswith("/"))
    return router
