"""/start, /help and /cancel."""

from __future__ import annotations

from html import escape

from aiogram import F, Router
from aiogram.filters import Command, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _

from bot.flows import FlowTimers, end_flow


def help_text() -> str:
    return "\n\n".join(
        [
            _("help.intro"),
            _("help.commands"),
            _("help.tip_file"),
        ]
    )


def start_text(name: str) -> str:
    """What the bot does and how to begin; the commands are in Telegram's menu and /help."""
    return "\n\n".join(
        [
            _("start.greeting").format(name=name),
            _("help.intro"),
            _("start.begin"),
            _("help.tip_file"),
        ]
    )


async def on_start(message: Message, state: FSMContext, timers: FlowTimers) -> None:
    await end_flow(state, timers, message)
    await message.answer(start_text(_html(message)))


async def on_help(message: Message) -> None:
    await message.answer(help_text())


async def on_cancel(message: Message, state: FSMContext, timers: FlowTimers) -> None:
    if await state.get_state() is None:
        await message.answer(_("cancel.nothing"))
        return
    await end_flow(state, timers, message)
    await message.answer(_("cancel.done"))


def _html(message: Message) -> str:
    user = message.from_user
    return escape(user.first_name) if user and user.first_name else ""


def create_router() -> Router:
    router = Router(name="common")
    router.message.register(on_start, CommandStart())
    router.message.register(on_help, Command("help"))
    router.message.register(on_cancel, Command("cancel"))
    router.message.register(on_cancel, F.text.casefold() == "cancel")
    return router
