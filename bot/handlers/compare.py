"""/compare: two photos in, a verdict and the two faces side by side out.

Ways in: ``/compare`` then two photos; an album of two with ``/compare`` in the
caption; a photo captioned ``/compare`` sent as a reply to another photo; the
"Compare" button under a photo, which then asks for the other one.
"""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _

from bot.filters import HasImage, OperationGate, RepliesToImage, is_album
from bot.flows import FlowTimers, end_flow, on_not_a_photo, start_flow
from bot.media import ImageRef, image_ref
from bot.operations import run_compare
from bot.states import CompareFlow
from services.metering import Caller
from services.models import Operation
from services.wiring import Services

COMMAND = Command("compare")


async def wait_for_second(
    message: Message, first: ImageRef, state: FSMContext, bot: Bot, timers: FlowTimers
) -> None:
    """The first photo is known: keep it and ask for the other one."""
    await start_flow(state, timers, bot, message, CompareFlow.second, {"first": first.to_data()})
    await message.answer(_("compare.send_second"))


async def on_album(
    message: Message,
    album: list[Message],
    bot: Bot,
    services: Services,
    state: FSMContext,
    timers: FlowTimers,
    caller: Caller | None = None,
) -> None:
    await end_flow(state, timers, message)
    refs = [(item, ref) for item in album if (ref := image_ref(item)) is not None]
    if len(refs) == 1:
        await wait_for_second(refs[0][0], refs[0][1], state, bot, timers)
        return
    if len(refs) > 2:
        await message.answer(_("compare.album_first_two"))
    (_first_message, first), (second_message, second) = refs[0], refs[1]
    await run_compare(second_message, first, second, bot, services, caller)


async def on_photo_replying_to_photo(
    message: Message,
    image: ImageRef,
    replied_image: ImageRef,
    bot: Bot,
    services: Services,
    state: FSMContext,
    timers: FlowTimers,
    caller: Caller | None = None,
) -> None:
    await end_flow(state, timers, message)
    await run_compare(message, replied_image, image, bot, services, caller)


async def on_command_with_first(
    message: Message,
    bot: Bot,
    state: FSMContext,
    timers: FlowTimers,
    image: ImageRef | None = None,
    replied_image: ImageRef | None = None,
) -> None:
    """``/compare`` on a photo (its caption) or replying to one: that photo comes first."""
    first = image or replied_image
    assert first is not None  # one of the filters put it there
    await wait_for_second(message, first, state, bot, timers)


async def on_command(message: Message, bot: Bot, state: FSMContext, timers: FlowTimers) -> None:
    await start_flow(state, timers, bot, message, CompareFlow.first, {})
    await message.answer(_("compare.send_first"))


async def on_first_photo(
    message: Message, image: ImageRef, state: FSMContext, bot: Bot, timers: FlowTimers
) -> None:
    await wait_for_second(message, image, state, bot, timers)


async def on_second_photo(
    message: Message,
    image: ImageRef,
    bot: Bot,
    services: Services,
    state: FSMContext,
    timers: FlowTimers,
    caller: Caller | None = None,
) -> None:
    data = await state.get_data()
    await end_flow(state, timers, message)
    first = ImageRef.from_data(data["first"])
    await run_compare(message, first, image, bot, services, caller)


def create_router() -> Router:
    """What calls the provider, or starts a flow that will, runs only while compare is
    available; the photos of a flow already under way are taken as they come."""
    command = OperationGate("compare.command", Operation.COMPARE, COMMAND)
    command.register(on_album, HasImage(), is_album, ends_flow=True)
    command.register(on_photo_replying_to_photo, HasImage(), RepliesToImage(), ends_flow=True)
    command.register(on_command_with_first, HasImage())
    command.register(on_command_with_first, RepliesToImage())
    command.register(on_command)
    album = OperationGate(
        "compare.album", Operation.COMPARE, CompareFlow.first, HasImage(), is_album
    )
    album.register(on_album, ends_flow=True)
    flow = Router(name="compare.flow")
    flow.message.register(on_first_photo, CompareFlow.first, HasImage())
    flow.message.register(on_second_photo, CompareFlow.second, HasImage())
    flow.message.register(on_not_a_photo, CompareFlow.first, ~F.text.startswith("/"))
    flow.message.register(on_not_a_photo, CompareFlow.second, ~F.text.startswith("/"))
    router = Router(name="compare")
    router.include_routers(command.router, album.router, flow)
    return router
