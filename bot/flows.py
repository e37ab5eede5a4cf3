"""Flows that wait for a photo: starting and ending one, and its expiry after
``FLOW_TIMEOUT`` seconds.

Every handler starts and ends flows through ``start_flow`` and ``end_flow``, so a
flow's state and its timer never disagree.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

log = logging.getLogger(__name__)


async def start_flow(
    state: FSMContext,
    timers: FlowTimers,
    bot: Bot,
    message: Message,
    flow_state: State,
    data: dict[str, Any],
) -> None:
    """Wait in ``flow_state`` with ``data``, replacing any flow the user had; it expires."""
    await state.set_state(flow_state)
    await state.set_data(data)
    if message.from_user is not None:
        await timers.arm(state, bot, message.chat.id, message.from_user.id)


async def end_flow(state: FSMContext, timers: FlowTimers, event: Message | CallbackQuery) -> None:
    """Forget the user's flow, if any, and cancel its timer."""
    await state.clear()
    if isinstance(event, CallbackQuery):
        if event.message is not None:
            timers.disarm(event.message.chat.id, event.from_user.id)
    elif event.from_user is not None:
        timers.disarm(event.chat.id, event.from_user.id)


async def on_not_a_photo(message: Message) -> None:
    """A flow waiting for a photo got something else."""
    await message.answer(_("flow.expecting_photo"))


class FlowTimers:
    """One timer per waiting flow; a newer flow of the same user replaces the older timer.

    A flow is identified by a random token kept in its state data, so a timer never
    ends a flow the user started after it.
    """

    def __init__(self, timeout: float, i18n: I18n) -> None:
        self.timeout = timeout
        self.i18n = i18n
        self._timers: dict[tuple[int, int], asyncio.Task[None]] = {}

    async def arm(self, state: FSMContext, bot: Bot, chat_id: int, user_id: int) -> None:
        token = secrets.token_hex(8)
        await state.update_data(flow_token=token)
        key = (chat_id, user_id)
        previous = self._timers.pop(key, None)
        if previous is not None:
            previous.cancel()
        locale = self.i18n.current_locale
        task = asyncio.create_task(self._expire(state, bot, chat_id, token, locale))
        self._timers[key] = task
        task.add_done_callback(lambda done: self._forget(key, done))

    def disarm(self, chat_id: int, user_id: int) -> None:
        task = self._timers.pop((chat_id, user_id), None)
        if task is not None:
            task.cancel()

    def _forget(self, key: tuple[int, int], task: asyncio.Task[None]) -> None:
        if self._timers.get(key) is task:
            del self._timers[key]

    async def _expire(
        self, state: FSMContext, bot: Bot, chat_id: int, token: str, locale: str
    ) -> None:
        await asyncio.sleep(self.timeout)
        data = await state.get_data()
        if data.get("flow_token") != token or await state.get_state() is None:
            return
        await state.clear()
        with self.i18n.context(), self.i18n.use_locale(locale):
            text = _("flow.expired")
        try:
            await bot.send_message(chat_id, text)
        except TelegramAPIError as error:
            log.info("could not tell chat %s its flow expired: %s", chat_id, error)

    async def close(self) -> None:
        tasks = list(self._timers.values())
        self._timers.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
