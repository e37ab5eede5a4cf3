"""/start, /help and /cancel."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _

router = Router(name="common")


def help_text() -> str:
    return "\n\n".join(
        [
            _("help.intro"),
            _("help.commands"),
            _("help.tip_file"),
        ]
    )


@router.message(CommandStart())
async def on_start(message: Message, state: FSMContext) -> None:
    await state.clear()
    await message.answer(_("start.greeting").format(name=_html(message)) + "\n\n" + help_text())


@router.message(Command("help"))
async def on_help(message: Message) -> None:
    await message.answer(help_text())


@router.message(Command("cancel"))
@router.message(F.text.casefold() == "cancel")
async def on_cancel(message: Message, state: FSMContext) -> None:
    if await state.get_state() is None:
        await message.answer(_("cancel.nothing"))
        return
    await state.clear()
    await message.answer(_("cancel.done"))


def _html(message: Message) -> str:
    from html import escape

    user = message.from_user
    return escape(user.first_name) if user and user.first_name else ""
