"""One router per feature; the order is the order updates are offered to them.

Routers are built per dispatcher (an aiogram router belongs to one parent), so a
process can run several dispatchers: the tests and the benchmarks do.
"""

from aiogram import Router

from bot.handlers import (
    account,
    common,
    compare,
    fallback,
    language,
    make,
    photo_menu,
    photo_ops,
    spec,
)
from services.models import Operation


def routers() -> list[Router]:
    return [
        common.create_router(),
        language.create_router(),
        spec.create_router(),
        make.create_router(),
        account.create_router(),
        photo_ops.create_router(Operation.CHECK),
        photo_ops.create_router(Operation.DETECT),
        photo_ops.create_router(Operation.ANALYZE),
        compare.create_router(),
        photo_ops.create_flow_router(),
        photo_menu.create_router(),
        fallback.create_router(),
    ]
