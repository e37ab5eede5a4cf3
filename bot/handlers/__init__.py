"""One router per feature; the order is the order updates are offered to them.

Routers are built per dispatcher (an aiogram router belongs to one parent), so a
process can run several dispatchers: the tests and the benchmarks do.
"""

from aiogram import Router

from bot.handlers import check, common, fallback, language, photo_menu


def routers() -> list[Router]:
    return [
        common.create_router(),
        language.create_router(),
        check.create_router(),
        photo_menu.create_router(),
        fallback.create_router(),
    ]
