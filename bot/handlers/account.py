"""/quota for everyone, /stats for admins, /forget with a confirmation."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot import render
from bot.filters import IsAdmin
from bot.flows import FlowTimers, end_flow
from bot.storage import forget_user
from services.metering import Caller
from services.prefs import Preferences
from services.wiring import Services


class ForgetChoice(CallbackData, prefix="forget"):
    confirm: bool


async def on_quota(message: Message, services: Services, caller: Caller) -> None:
    if services.metering is None:
        await message.answer(_("quota.not_tracked"))
        return
    statuses = await services.metering.ledger.remaining(caller.user_id, admin=caller.admin)
    budgets = await services.metering.budgets.status()
    await message.answer(render.quota_text(statuses, budgets, services))


async def on_stats(message: Message, services: Services) -> None:
    if services.metering is None:
        await message.answer(_("quota.not_tracked"))
        return
    stats = await services.metering.ledger.stats()
    budgets = await services.metering.budgets.status()
    for text in render.stats_texts(stats, budgets):
        await message.answer(text)


async def on_clear_budget(message: Message, command: CommandObject, services: Services) -> None:
    """An operator topped up or fixed a provider account: let calls through again."""
    providers = services.billable_providers()
    provider = (command.args or "").strip().lower()
    if services.metering is None or provider not in providers:
        await message.answer(_("budget.clear_usage").format(providers=", ".join(providers) or "—"))
        return
    await services.metering.budgets.clear(provider)
    if services.alerts is not None:
        await services.alerts.after_clear(provider)
    await message.answer(_("budget.cleared").format(provider=provider))


async def on_forget(message: Message) -> None:
    builder = InlineKeyboardBuilder()
    builder.button(text=_("forget.yes"), callback_data=ForgetChoice(confirm=True))
    builder.button(text=_("forget.no"), callback_data=ForgetChoice(confirm=False))
    await message.answer(_("forget.confirm"), reply_markup=builder.as_markup())


async def on_forget_choice(
    query: CallbackQuery,
    callback_data: ForgetChoice,
    services: Services,
    preferences: Preferences,
    state: FSMContext,
    timers: FlowTimers,
) -> None:
    text = _("forget.kept")
    if callback_data.confirm:
        await end_flow(state, timers, query)
        await forget_user(state.storage, state.key.bot_id, query.from_user.id)
        await preferences.forget(query.from_user.id)
        if services.metering is not None:
            await services.metering.ledger.forget(query.from_user.id)
        text = _("forget.done")
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.edit_text(text)


def create_router() -> Router:
    router = Router(name="account")
    router.message.register(on_quota, Command("quota"))
    router.message.register(on_stats, Command("stats"), IsAdmin())
    router.message.register(on_clear_budget, Command("clearbudget"), IsAdmin())
    router.message.register(on_forget, Command("forget"))
    router.callback_query.register(on_forget_choice, ForgetChoice.filter(F.confirm.is_not(None)))
    return router
