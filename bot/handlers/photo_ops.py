"""/check, /faces and /analyze: one photo in, an annotated photo and a report out.

The three features take their photo the same ways (after the command, in the
caption, as a reply, in an album), so one factory builds each feature's router.
"""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _

from bot.config import Settings
from bot.filters import HasImage, RepliesToImage
from bot.flows import FlowTimers
from bot.media import ImageRef
from bot.operations import (
    COMMANDS,
    Options,
    on_not_a_photo,
    refuse_if_unavailable,
    run_album,
    run_single,
)
from bot.states import PhotoFlow
from services.facecheck import Services
from services.metering import Caller
from services.models import Operation

_SEND_PHOTO = {
    Operation.CHECK: lambda: _("check.send_photo"),
    Operation.DETECT: lambda: _("faces.send_photo"),
    Operation.ANALYZE: lambda: _("analyze.send_photo"),
}


def create_router(operation: Operation) -> Router:
    router = Router(name=operation.value)
    command = Command(COMMANDS[operation])

    async def with_photo(
        message: Message,
        command: CommandObject,
        image: ImageRef,
        bot: Bot,
        services: Services,
        settings: Settings,
        state: FSMContext,
        album: list[Message] | None = None,
        caller: Caller | None = None,
    ) -> None:
        await state.clear()
        if await refuse_if_unavailable(message, services, operation):
            return
        options = Options.parse(command.args)
        if album:
            await run_album(operation, album, bot, services, settings, options, caller)
        else:
            await run_single(operation, message, image, bot, services, settings, options, caller)

    async def as_reply(
        message: Message,
        command: CommandObject,
        replied_image: ImageRef,
        replied_message: Message,
        bot: Bot,
        services: Services,
        settings: Settings,
        state: FSMContext,
        caller: Caller | None = None,
    ) -> None:
        await state.clear()
        if await refuse_if_unavailable(message, services, operation):
            return
        await run_single(
            operation,
            replied_message,
            replied_image,
            bot,
            services,
            settings,
            Options.parse(command.args),
            caller,
        )

    async def ask_for_photo(
        message: Message,
        command: CommandObject,
        bot: Bot,
        services: Services,
        state: FSMContext,
        timers: FlowTimers,
    ) -> None:
        if await refuse_if_unavailable(message, services, operation):
            return
        await state.set_state(PhotoFlow.waiting)
        await state.set_data(
            {"operation": operation.value, **Options.parse(command.args).to_data()}
        )
        if message.from_user is not None:
            await timers.arm(state, bot, message.chat.id, message.from_user.id)
        await message.answer(_SEND_PHOTO[operation]())

    router.message.register(with_photo, command, HasImage())
    router.message.register(as_reply, command, RepliesToImage())
    router.message.register(ask_for_photo, command)
    return router


async def on_awaited_photo(
    message: Message,
    image: ImageRef,
    bot: Bot,
    services: Services,
    settings: Settings,
    state: FSMContext,
    timers: FlowTimers,
    caller: Caller | None = None,
) -> None:
    data = await state.get_data()
    await state.clear()
    if message.from_user is not None:
        timers.disarm(message.chat.id, message.from_user.id)
    operation = Operation(data.get("operation", Operation.CHECK.value))
    await run_single(
        operation, message, image, bot, services, settings, Options.from_data(data), caller
    )


def create_flow_router() -> Router:
    """The photo a waiting flow asked for, whichever operation it was."""
    router = Router(name="photo_flow")
    router.message.register(on_awaited_photo, PhotoFlow.waiting, HasImage())
    router.message.register(on_not_a_photo, PhotoFlow.waiting, ~F.text.startswith("/"))
    return router
