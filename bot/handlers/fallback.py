"""Whatever no feature took: unknown commands and stray text get a pointer to /help."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _


async def on_unknown_command(message: Message) -> None:
    await message.answer(_("fallback.unknown_command"))


async def on_anything(message: Message) -> None:
    await message.answer(_("fallback.hint"))


def create_router() -> Router:
    router = Router(name="fallback")
    router.message.register(on_unknown_command, F.text.startswith("/"))
    router.message.register(on_anything)
    return router
