"""Messages into one chat paced by the Bot API session (``bot.session.ChatPacer``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.telegram import TelegramAPIServer
from aiogram.methods import SendChatAction, SendMessage, TelegramMethod

from bot.session import GROUP_CHAT, PRIVATE_CHAT, ApiSession, ChatPacer, ChatRate, FloodWait
from tests.fakes.telegram import FakeTelegram

USER = 4242


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def test_a_private_chat_gets_five_at_once_then_one_a_second() -> None:
    clock = FakeClock()
    pacer = ChatPacer(clock=clock)
    assert [pacer.reserve(USER) for _ in range(8)] == [0, 0, 0, 0, 0, 1.0, 2.0, 3.0]
    clock.now += 3.0  # the three waited out: the bucket is empty again
    assert pacer.reserve(USER) == pytest.approx(1.0)
    clock.now += 60
    assert [pacer.reserve(USER) for _ in range(6)] == [0, 0, 0, 0, 0, 1.0]
    assert pacer.reserve(USER + 1) == 0  # each chat has its own bucket
    assert PRIVATE_CHAT == ChatRate(burst=5, per_second=1.0)


def test_a_group_keeps_any_minute_within_twenty() -> None:
    pacer = ChatPacer(clock=FakeClock())
    waits = [pacer.reserve(-100123) for _ in range(25)]
    assert waits[:5] == [0] * 5
    assert waits[5:8] == pytest.approx([4.0, 8.0, 12.0])
    sent_in_first_minute = sum(1 for wait in waits if wait <= 60)
    assert sent_in_first_minute == 20
    assert GROUP_CHAT.burst + GROUP_CHAT.per_second * 60 == 20


async def test_only_sends_are_paced_and_a_lone_reply_does_not_wait() -> None:
    clock = FakeClock()
    pacer = ChatPacer(clock=clock, sleep=clock.sleep)
    made: list[str] = []

    async def make_request(bot: Bot, method: TelegramMethod[Any]) -> Any:
        made.append(method.__api_method__)
        return True

    bot: Any = None
    for _ in range(10):
        await pacer(make_request, bot, SendChatAction(chat_id=USER, action="upload_photo"))
    await pacer(make_request, bot, SendMessage(chat_id="@channel", text="by name"))
    await pacer(make_request, bot, SendMessage(chat_id=USER, text="the reply"))
    assert clock.slept == []
    for _ in range(5):
        await pacer(make_request, bot, SendMessage(chat_id=USER, text="more"))
    assert clock.slept == [1.0]
    assert made.count("sendMessage") == 7


def test_chats_whose_bucket_filled_up_again_are_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bot.session.KEEP_CHATS", 3)
    clock = FakeClock()
    pacer = ChatPacer(clock=clock)
    for chat in (1, 2, 3):
        pacer.reserve(chat)
    clock.now += 10
    pacer.reserve(4)
    pacer.reserve(4)
    pacer.reserve(5)  # four chats kept: the full ones (1, 2, 3) go
    assert pacer.reserve(4) == 0  # 4 keeps its count: two taken, this the third
    assert sorted(pacer._chats) == [4, 5]


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        yield fake


async def test_paced_sends_meet_a_429_once_and_take_one_token_each(tg: FakeTelegram) -> None:
    """Pacing sits outside ``FloodWait``: a send waited out after a 429 is not paced twice."""
    clock = FakeClock()
    waits: list[float] = []

    async def note(seconds: float) -> None:  # the clock stands still: all seven start at once
        waits.append(seconds)

    session = ApiSession(api=TelegramAPIServer.from_base(tg.base_url))
    session.middleware(ChatPacer(clock=clock, sleep=note))
    session.middleware(FloodWait())
    bot = Bot(tg.token, session=session)
    try:
        tg.user_message(USER, text="hi")
        tg.fail_next("sendMessage", retry_after=1)
        sent = await asyncio.gather(*(bot.send_message(USER, f"part {n}") for n in range(7)))
    finally:
        await session.close()
    assert sorted(m.text or "" for m in sent) == [f"part {n}" for n in range(7)]
    calls = tg.sent(USER, "sendmessage")
    assert [c.error["error_code"] for c in calls if c.error] == [429]
    assert sum(c.ok for c in calls) == 7
    assert sorted(waits) == [1.0, 2.0]  # the sixth and the seventh, once each
