"""/compare: two photos in, a verdict and the two faces side by side out.

Ways in: ``/compare`` then two photos; an album of two with ``/compare`` in the
caption; a photo captioned ``/compare`` sent as a reply to another photo; the
"Compare" button under a photo, which then asks for the other one.

One photo with exactly two faces (a selfie holding an ID card, a printed photo held
next to the face), captioned ``/compare``, replied to with ``/compare`` or sent first
after ``/compare``, is answered at once: its two faces compared with each other, charged
as one compare. That needs a provider that can (``CompareService.compares_within``: the
local engine; JD's compare takes one face per image). Any other first photo, or any
failure of that attempt, is kept as photo 1 and the bot asks for photo 2, as always.
"""

from __future__ import annotations

import logging

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import Message
from aiogram.utils.chat_action import ChatActionSender
from aiogram.utils.i18n import gettext as _

from bot import render
from bot.filters import HasImage, OperationGate, RepliesToImage, is_album
from bot.flows import FlowTimers, end_flow, on_not_a_photo, start_flow
from bot.media import ImageRef, download, image_ref
from bot.operations import run_compare, send_report
from bot.pacing import paced
from bot.presses import Presses
from bot.states import CompareFlow
from services.errors import ServiceError
from services.metering import Caller
from services.models import Operation
from services.operations import CompareOutcome
from services.providers.base import NotAPair
from services.wiring import Services

log = logging.getLogger(__name__)

COMMAND = Command("compare")


async def wait_for_second(
    message: Message, first: ImageRef, state: FSMContext, bot: Bot, timers: FlowTimers
) -> None:
    """The first photo is known: keep it and ask for the other one."""
    await start_flow(state, timers, bot, message, CompareFlow.second, {"first": first.to_data()})
    await message.answer(_("compare.send_second"))


async def first_photo(
    message: Message,
    photo_message: Message,
    first: ImageRef,
    bot: Bot,
    services: Services,
    state: FSMContext,
    timers: FlowTimers,
    caller: Caller | None = None,
) -> None:
    """The first photo is known: with exactly two faces, and a provider that can compare
    them, answer with the two compared; otherwise keep it and ask for the other one.

    ``message`` is what the flow answers, ``photo_message`` the photo's own message, which
    a report replies to (they differ for ``/compare`` sent as a reply to the photo).
    Looking for two faces is a provider call, so the user's pacing must let it start;
    refused, the user is told so and no flow starts (photo 1 is sent again later).
    """
    if not services.compare.compares_within:
        await wait_for_second(message, first, state, bot, timers)
        return
    async with paced(photo_message, caller) as admission:
        if admission.granted:
            await _pair_or_wait(message, photo_message, first, bot, services, state, timers, caller)


async def _pair_or_wait(
    message: Message,
    photo_message: Message,
    first: ImageRef,
    bot: Bot,
    services: Services,
    state: FSMContext,
    timers: FlowTimers,
    caller: Caller | None,
) -> None:
    # Photo 2 is awaited from now on, so one sent while this photo is looked at is taken
    # as photo 2 rather than as another first photo.
    await start_flow(state, timers, bot, message, CompareFlow.second, {"first": first.to_data()})
    token = (await state.get_data()).get("flow_token")
    outcome = await _compare_within(photo_message, first, bot, services, caller)
    waiting = (
        await state.get_state() == CompareFlow.second.state
        and (await state.get_data()).get("flow_token") == token
    )
    if outcome is None:
        if waiting:
            await message.answer(_("compare.send_second"))
        return
    if waiting:
        await end_flow(state, timers, message)
    sections = render.compare_report(outcome)
    await send_report(photo_message, outcome.picture, "compare.jpg", sections)


async def _compare_within(
    message: Message, ref: ImageRef, bot: Bot, services: Services, caller: Caller | None
) -> CompareOutcome | None:
    """The photo's two faces compared, or None: not two faces, or a failure that the
    compare with photo 2 will meet and report (a damaged file, no allowance left)."""
    async with ChatActionSender.upload_photo(bot=bot, chat_id=message.chat.id):
        try:
            data = await download(bot, ref)
            return await services.compare.compare_within(data, caller)
        except NotAPair as error:
            log.info("compare: the first photo is no pair (%s); waiting for photo 2", error)
        except ServiceError as error:
            log.info("compare: the first photo alone failed (%r); waiting for photo 2", error)
    return None


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
    services: Services,
    state: FSMContext,
    timers: FlowTimers,
    image: ImageRef | None = None,
    replied_image: ImageRef | None = None,
    replied_message: Message | None = None,
    caller: Caller | None = None,
) -> None:
    """``/compare`` on a photo (its caption) or replying to one: that photo comes first."""
    first = image or replied_image
    assert first is not None  # one of the filters put it there
    photo_message = message if image is not None or replied_message is None else replied_message
    await first_photo(message, photo_message, first, bot, services, state, timers, caller)


async def on_command(message: Message, bot: Bot, state: FSMContext, timers: FlowTimers) -> None:
    await start_flow(state, timers, bot, message, CompareFlow.first, {})
    await message.answer(_("compare.send_first"))


async def on_first_photo(
    message: Message,
    image: ImageRef,
    state: FSMContext,
    bot: Bot,
    services: Services,
    timers: FlowTimers,
    caller: Caller | None = None,
) -> None:
    await first_photo(message, message, image, bot, services, state, timers, caller)


async def on_second_photo(
    message: Message,
    image: ImageRef,
    bot: Bot,
    services: Services,
    state: FSMContext,
    timers: FlowTimers,
    presses: Presses,
    caller: Caller | None = None,
) -> None:
    data = await state.get_data()
    if "first" not in data:  # another second photo, just before, ended the flow
        return
    first = ImageRef.from_data(data["first"])
    token = data.get("flow_token")

    async def start() -> bool:
        """One second photo per flow: of two sent at once (maybe to two processes), the
        first to claim the flow compares, the other does nothing."""
        claim = f"compare:{message.chat.id}:{token}"
        if token is not None and not await presses.claim_once(claim):
            return False
        await end_flow(state, timers, message)
        return True

    # Refused by pacing, the flow goes on waiting: the user sends the second photo again.
    await run_compare(message, first, image, bot, services, caller, admitted=start)


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
