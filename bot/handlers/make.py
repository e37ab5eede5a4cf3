""" "Make the file": the document's photo made from the user's own original, on a button.

Under a check reply against a document with a print size or pixel limits,
``bot.operations.offer_make`` puts "Make a ... photo" (and, for a print, "Print sheet
(10×15 cm)") and keeps what the check measured under the reply's message id
(``MakeKeeper``). A press downloads the original again by its Telegram file id (in
memory; nothing is kept on disk), makes the file off the event loop
(``services.specs.make``) and sends it as a document, which Telegram does not recompress.
The made file is then checked again, as an ordinary metered check, and that result is the
reply; the "Make" button leaves the check reply's keyboard (the print sheet's stays), and
the kept data says the file was made, so a press sent before the edit makes nothing. A
photo that cannot make the file gets the reason with its numbers (and keeps the button); no
provider is called for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    Message,
    ReplyParameters,
)
from aiogram.utils.chat_action import ChatActionSender
from aiogram.utils.i18n import gettext as _

from bot import render
from bot.config import Settings
from bot.handlers.spec import stored_spec
from bot.keyboards import (
    MAKE_FILE,
    MAKE_SHEET,
    MakeAction,
    can_make,
    can_print_sheet,
    make_buttons,
)
from bot.media import download
from bot.operations import Kept, MakeKeeper, send_report
from bot.pacing import paced
from bot.render.spec import (
    cannot_make_text,
    made_caption,
    made_file_name,
    sheet_caption,
    sheet_file_name,
)
from services import workers
from services.errors import ServiceError
from services.ledger import QuotaExceeded
from services.metering import Caller
from services.specs import Spec
from services.specs.judge import MM_PER_INCH
from services.specs.make import (
    GAP_MM,
    SHEET_DPI,
    SHEET_PX,
    CannotMake,
    make_photo,
    print_sheet,
)
from services.wiring import Services

log = logging.getLogger(__name__)
T = TypeVar("T")


def sheet_copies(spec: Spec) -> int:
    """How many copies ``print_sheet`` lays out: its grid, portrait or landscape."""
    if spec.width_mm is None or spec.height_mm is None:
        return 0
    sides = (spec.width_mm.middle, spec.height_mm.middle)
    cell = [round(mm / MM_PER_INCH * SHEET_DPI) for mm in sides]
    gap = round(GAP_MM / MM_PER_INCH * SHEET_DPI)
    best = 0
    for sheet in (SHEET_PX, (SHEET_PX[1], SHEET_PX[0])):
        columns = (sheet[0] + gap) // (cell[0] + gap)
        rows = (sheet[1] + gap) // (cell[1] + gap)
        best = max(best, columns * rows)
    return best


async def on_make(
    query: CallbackQuery,
    callback_data: MakeAction,
    bot: Bot,
    services: Services,
    settings: Settings,
    make_keeper: MakeKeeper,
    caller: Caller | None = None,
) -> None:
    """A "Make" button. The press is answered at once; a press while the same reply's file
    is being made is ignored (``MakeKeeper.claim``: an in-process lock per chat and reply
    message, enough since the process that took the first press makes the file), and so
    is one after it was made (``Kept.made``)."""
    message_id = callback_data.message_id
    chat_id = query.message.chat.id if query.message is not None else None
    if chat_id is None or callback_data.action not in (MAKE_FILE, MAKE_SHEET):
        await query.answer()
        return
    if not make_keeper.claim(chat_id, message_id):
        await query.answer()
        return
    try:
        key = make_keeper.key(bot.id, chat_id, query.from_user.id, message_id)
        kept = await make_keeper.load(key, settings.flow_timeout)
        spec = None if kept is None else stored_spec(kept.spec_id)
        sheet = callback_data.action == MAKE_SHEET
        usable = spec is not None and (can_print_sheet(spec) if sheet else can_make(spec))
        if kept is None or spec is None or not usable:
            await query.answer(_("make.expired"), show_alert=True)
            return
        await query.answer()
        if sheet:
            await _send_sheet(bot, chat_id, message_id, spec, kept)
            return
        if kept.made:  # its button was removed; a press sent before that makes nothing
            return
        sent = await _send_file(bot, chat_id, message_id, spec, kept)
        if sent is None:
            return
        # Made once per reply: a second press would make the same file and run (and
        # count) another check. The print sheet stays: it checks nothing.
        await make_keeper.mark_made(key)
        await _drop_make_button(bot, chat_id, message_id, spec)
        await _recheck(bot, *sent, spec, services, caller)
    finally:
        make_keeper.release(chat_id, message_id)


def _replying(message_id: int) -> ReplyParameters:
    return ReplyParameters(message_id=message_id, allow_sending_without_reply=True)


async def _made(
    bot: Bot, chat_id: int, reply_id: int, spec: Spec, kept: Kept, work: Callable[[bytes], T]
) -> T | None:
    """``work`` on the original, downloaded again, off the event loop; a refusal is
    answered here and gives None."""
    try:
        data = await download(bot, kept.image)
        return await workers.run(work, data)
    except CannotMake as error:
        log.info("make %s for chat %s: cannot: %s", spec.id, chat_id, error.reason.value)
        text = cannot_make_text(error)
    except ServiceError as error:
        text = render.error_text(error)
    await bot.send_message(chat_id, text, reply_parameters=_replying(reply_id))
    return None


async def _send_file(
    bot: Bot, chat_id: int, reply_id: int, spec: Spec, kept: Kept
) -> tuple[Message, bytes] | None:
    """The document's photo as a file replying to the check; the message and the file,
    or None when it could not be made (the reason has been answered)."""
    async with ChatActionSender.upload_document(bot=bot, chat_id=chat_id):
        made = await _made(
            bot,
            chat_id,
            reply_id,
            spec,
            kept,
            lambda data: make_photo(data, spec, kept.measurements),
        )
        if made is None:
            return None
        sent = await bot.send_document(
            chat_id,
            BufferedInputFile(made.data, filename=made_file_name(spec, made)),
            caption=made_caption(made, spec),
            reply_parameters=_replying(reply_id),
        )
    log.info(
        "made %s for chat %s: %dx%d %s %.0f KB q=%s icao=%s",
        spec.id,
        chat_id,
        made.width,
        made.height,
        made.format,
        made.kb,
        made.quality,
        made.icao_proportions,
    )
    return sent.as_(bot), made.data


async def _drop_make_button(bot: Bot, chat_id: int, reply_id: int, spec: Spec) -> None:
    """The check reply's keyboard without "Make": the print sheet's button alone, or none."""
    try:
        await bot.edit_message_reply_markup(
            chat_id=chat_id,
            message_id=reply_id,
            reply_markup=make_buttons(spec, reply_id, made=True),
        )
    except TelegramAPIError as error:
        log.info("could not remove the make button from message %s: %s", reply_id, error)


async def _recheck(
    bot: Bot, sent: Message, data: bytes, spec: Spec, services: Services, caller: Caller | None
) -> None:
    """The made file checked again, as an ordinary metered (and paced) check, replying to
    the file."""
    async with paced(sent, caller) as admission:
        if not admission.granted:
            return
        async with ChatActionSender.upload_photo(bot=bot, chat_id=sent.chat.id):
            try:
                outcome = await services.check.check(data, caller, spec=spec)
            except QuotaExceeded as error:
                await sent.reply(_("make.recheck_skipped") + "\n" + render.error_text(error))
                return
            except ServiceError as error:
                await sent.reply(render.error_text(error))
                return
        sections = render.check_report(
            outcome.result,
            outcome.image,
            compressed=False,
            fell_back_from=outcome.fell_back_from,
            judgement=outcome.judgement,
            passed=outcome.passed,
        )
        await send_report(sent, outcome.picture, "check.jpg", sections)


async def _send_sheet(bot: Bot, chat_id: int, reply_id: int, spec: Spec, kept: Kept) -> None:
    """A 10x15 cm sheet of print-size copies, as a file for a photo lab."""
    async with ChatActionSender.upload_document(bot=bot, chat_id=chat_id):
        sheet = await _made(
            bot,
            chat_id,
            reply_id,
            spec,
            kept,
            lambda data: print_sheet(make_photo(data, spec, kept.measurements), spec),
        )
        if sheet is None:
            return
        await bot.send_document(
            chat_id,
            BufferedInputFile(sheet, filename=sheet_file_name(spec)),
            caption=sheet_caption(spec, sheet_copies(spec)),
            reply_parameters=_replying(reply_id),
        )


def create_router() -> Router:
    router = Router(name="make")
    router.callback_query.register(on_make, MakeAction.filter())
    return router
