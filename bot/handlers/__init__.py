"""One router per feature; the order is the order updates are offered to them."""

from aiogram import Router

from bot.handlers import check, common, fallback, language, photo_menu


def routers() -> list[Router]:
    return [common.router, language.router, check.router, photo_menu.router, fallback.router]
