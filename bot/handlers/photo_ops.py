"""/check, /faces and /analyze: one photo in, an annotated photo and a report out.

The three features take their photo the same ways (after the command, in the
caption, as a reply, in an album), so their handlers are shared: each feature's
router hands them its ``operation`` (``OperationAvailable`` injects it).
"""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _

from bot.config import Settings
from bot.filters import HasImage, OperationGate, RepliesToImage
from bot.flows import FlowTimers, end_flow, on_not_a_photo, start_flow
from bot.handlers.spec import spec_for_check
from bot.media import ImageRef
from bot.operations import COMMANDS, Options, run_album, run_single
from bot.states import PhotoFlow
from services.i18n import N_
from services.metering import Caller
from services.models import Operation
from services.prefs import Preferences
from services.wiring import Services

_SEND_PHOTO = {
    Operation.CHECK: N_("check.send_photo"),
    Operation.DETECT: N_("faces.send_photo"),
    Operation.ANALYZE: N_("analyze.send_photo"),
}


async def _options(
    message: Message,
    command: CommandObject,
    operation: Operation,
    preferences: Preferences,
    settings: Settings,
) -> Options | None:
    """What the command asks for; for /check the spec too (``/check CODE``, else the stored
    one). None when an unknown code or an office spec has been answered: no download."""
    if operation is not Operation.CHECK:
        return Options.parse(command.args)
    go_on, spec, offer = await spec_for_check(message, command.args, preferences, settings)
    if not go_on:
        return None
    return Options().with_spec(spec, offer=offer)


async def with_photo(
    message: Message,
    command: CommandObject,
    operation: Operation,
    image: ImageRef,
    bot: Bot,
    services: Services,
    settings: Settings,
    state: FSMContext,
    timers: FlowTimers,
    preferences: Preferences,
    album: list[Message] | None = None,
    caller: Caller | None = None,
) -> None:
    """The command in a photo's caption (or an album's): that photo, or each of the album's."""
    await end_flow(state, timers, message)
    options = await _options(message, command, operation, preferences, settings)
    if options is None:
        return
    if album:
        await run_album(operation, album, bot, services, settings, options, caller)
    else:
        await run_single(operation, message, image, bot, services, settings, options, caller)


async def as_reply(
    message: Message,
    command: CommandObject,
    operation: Operation,
    replied_image: ImageRef,
    replied_message: Message,
    bot: Bot,
    services: Services,
    settings: Settings,
    state: FSMContext,
    timers: FlowTimers,
    preferences: Preferences,
    caller: Caller | None = None,
) -> None:
    """The command sent as a reply to a photo: the answer replies to that photo."""
    await end_flow(state, timers, message)
    options = await _options(message, command, operation, preferences, settings)
    if options is None:
        return
    await run_single(
        operation, replied_message, replied_image, bot, services, settings, options, caller
    )


async def ask_for_photo(
    message: Message,
    command: CommandObject,
    operation: Operation,
    bot: Bot,
    state: FSMContext,
    timers: FlowTimers,
    preferences: Preferences,
    settings: Settings,
) -> None:
    """The command alone: wait for the photo (``on_awaited_photo``)."""
    options = await _options(message, command, operation, preferences, settings)
    if options is None:
        return
    data = {"operation": operation.value, **options.to_data()}
    await start_flow(state, timers, bot, message, PhotoFlow.waiting, data)
    await message.answer(_(_SEND_PHOTO[operation]))


def create_router(operation: Operation) -> Router:
    gate = OperationGate(operation.value, operation, Command(COMMANDS[operation]))
    gate.register(with_photo, HasImage(), ends_flow=True)
    gate.register(as_reply, RepliesToImage(), ends_flow=True)
    gate.register(ask_for_photo)
    return gate.router


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
    await end_flow(state, timers, message)
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
