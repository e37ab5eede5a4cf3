"""The handlers, through the real dispatcher, without a network: each update is fed to
``Dispatcher.feed_update`` and the bot's requests are recorded (see ``recording``).

The HTTP-level tests in ``tests/e2e`` prove the bot speaks to Telegram and the providers;
these pin down which handler answers what, in which language, with which buttons.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.methods import TelegramMethod

from bot.keyboards import PhotoAction
from bot.states import CompareFlow, PhotoFlow
from services.models import Operation
from tests.conftest import fragment, portrait_jpeg, tr
from tests.unit.recording import (
    Conversation,
    FakeProvider,
    RecordingSession,
    api_names,
    buttons,
    dispatcher_with,
    replied_to,
    replies,
)

PHOTO = portrait_jpeg()
COMMANDS = {
    Operation.CHECK: "/check",
    Operation.COMPARE: "/compare",
    Operation.DETECT: "/faces",
    Operation.ANALYZE: "/analyze",
}


@dataclass
class App:
    dispatcher: Dispatcher
    bot: Bot
    session: RecordingSession
    providers: dict[Operation, FakeProvider]

    def chat(self, language_code: str = "en") -> Conversation:
        return Conversation(self.dispatcher, self.bot, self.session, language_code=language_code)

    def unavailable(self, *operations: Operation) -> None:
        for operation in operations:
            self.providers[operation].unavailable_reason = "no model files"

    def calls(self) -> list[str]:
        return [name for provider in self.providers.values() for name, _data in provider.calls]


@pytest.fixture
async def app() -> AsyncIterator[App]:
    """The bot as ``create_dispatcher`` builds it, each operation on its own fake provider."""
    providers = {operation: FakeProvider(f"fake-{operation.value}") for operation in Operation}
    dispatcher, bot, session = dispatcher_with(providers)
    yield App(dispatcher, bot, session, providers)
    await dispatcher["timers"].close()


def text_of(request: TelegramMethod[Any]) -> str:
    return str(getattr(request, "text", None) or getattr(request, "caption", None) or "")


def report_of(requests: list[TelegramMethod[Any]]) -> str:
    """An operation's answer: the photo's caption and any text after it."""
    return "\n\n".join(text_of(r) for r in replies(requests))


# --- /start, /help, /cancel, fallback -----------------------------------------------------


@pytest.mark.parametrize(
    ("language_code", "locale"), [("en", "en"), ("ru", "ru"), ("zh-hans", "zh_Hans")]
)
async def test_start_and_help_answer_in_the_users_language(
    app: App, language_code: str, locale: str
) -> None:
    chat = app.chat(language_code=language_code)
    [start] = await chat.send("/start")
    assert api_names([start]) == ["sendMessage"]
    assert replied_to(start) is None
    greeting = tr(locale, "start.greeting").format(name="Ann")
    expected = [greeting, *(tr(locale, m) for m in ("help.intro", "start.begin", "help.tip_file"))]
    assert text_of(start) == "\n\n".join(expected)  # the commands are in the menu and /help

    [help_] = await chat.send("/help")
    expected = "\n\n".join(tr(locale, m) for m in ("help.intro", "help.commands", "help.tip_file"))
    assert text_of(help_) == expected


async def test_unknown_command_and_stray_text_point_to_help(app: App) -> None:
    chat = app.chat(language_code="ru")
    [unknown] = await chat.send("/nope")
    assert text_of(unknown) == tr("ru", "fallback.unknown_command")
    [hint] = await chat.send("hello")
    assert text_of(hint) == tr("ru", "fallback.hint")


async def test_cancel_ends_a_waiting_flow(app: App) -> None:
    chat = app.chat()
    [nothing] = await chat.send("/cancel")
    assert text_of(nothing) == tr("en", "cancel.nothing")

    await chat.send("/faces")
    assert await chat.state.get_state() == PhotoFlow.waiting.state
    [done] = await chat.send("/cancel")
    assert text_of(done) == tr("en", "cancel.done")
    assert await chat.state.get_state() is None

    [menu] = await chat.send(photo=PHOTO)  # no longer the photo /faces waited for
    assert text_of(menu) == tr("en", "menu.choose")
    assert app.calls() == []


# --- /check, /faces, /analyze -------------------------------------------------------------


async def test_check_without_a_photo_waits_for_it_then_checks_it(app: App) -> None:
    chat = app.chat()
    [ask] = await chat.send("/check")
    assert text_of(ask) == tr("en", "check.send_photo")
    assert await chat.state.get_state() == PhotoFlow.waiting.state

    [not_a_photo] = await chat.send("a moment")
    assert text_of(not_a_photo) == tr("en", "flow.expecting_photo")

    requests = await chat.send(photo=PHOTO)
    photo = chat.sent[-1]
    assert "getFile" in api_names(requests)
    assert app.session.downloads == [photo.photo[-1].file_id]  # type: ignore[index]
    [answer] = replies(requests)
    assert api_names([answer]) == ["sendPhoto"]
    assert replied_to(answer) == photo.message_id
    assert tr("en", "check.verdict.pass") in text_of(answer)
    assert tr("en", "check.tip.send_as_file") in text_of(answer)  # a photo, not a file
    assert app.providers[Operation.CHECK].calls == [("check", PHOTO)]
    assert await chat.state.get_state() is None


async def test_faces_in_a_caption_with_and_without_attributes(app: App) -> None:
    chat = app.chat()
    plain = report_of(await chat.send(photo=PHOTO, caption="/faces"))
    assert fragment("en", "faces.count") in plain
    assert tr("en", "faces.tip_all") in plain
    assert tr("en", "attr.female") not in plain

    full = report_of(await chat.send(document=PHOTO, caption="/faces all"))
    assert tr("en", "attr.female") in full
    assert tr("en", "faces.tip_all") not in full
    assert app.calls() == ["detect", "detect"]


async def test_analyze_as_a_reply_answers_the_photo(app: App) -> None:
    chat = app.chat(language_code="zh-hans")
    [menu] = await chat.send(photo=PHOTO)
    photo = chat.sent[-1]
    assert text_of(menu) == tr("zh_Hans", "menu.choose")
    requests = await chat.send("/analyze", reply_to=photo)
    [answer] = replies(requests)
    assert api_names([answer]) == ["sendPhoto"]
    assert replied_to(answer) == photo.message_id
    assert fragment("zh_Hans", "analyze.count") in text_of(answer)
    assert app.calls() == ["analyze"]


# --- /compare -----------------------------------------------------------------------------


async def test_compare_waits_for_two_photos(app: App) -> None:
    chat = app.chat()
    [first] = await chat.send("/compare")
    assert text_of(first) == tr("en", "compare.send_first")
    [second] = await chat.send(photo=PHOTO)
    assert text_of(second) == tr("en", "compare.send_second")
    assert await chat.state.get_state() == CompareFlow.second.state

    [answer] = replies(await chat.send(photo=PHOTO))
    assert api_names([answer]) == ["sendPhoto"]
    assert replied_to(answer) == chat.sent[-1].message_id
    assert fragment("en", "compare.similarity") in text_of(answer)
    assert app.calls() == ["compare"]
    assert await chat.state.get_state() is None


# --- an operation without a working provider ----------------------------------------------


@pytest.mark.parametrize("operation", list(Operation))
async def test_unavailable_operation_is_refused_once_and_never_called(
    app: App, operation: Operation
) -> None:
    app.unavailable(operation)
    chat = app.chat(language_code="ru")
    for message in (
        {"text": COMMANDS[operation]},
        {"photo": PHOTO, "caption": COMMANDS[operation]},
    ):
        requests = await chat.send(**message)
        [refusal] = requests  # no download, no menu, no fallback after it
        assert api_names([refusal]) == ["sendMessage"]
        assert replied_to(refusal) == chat.sent[-1].message_id
        assert fragment("ru", "error.operation_unavailable") in text_of(refusal)
    assert app.calls() == []
    assert app.session.downloads == []
    assert await chat.state.get_state() is None


async def test_a_refused_command_with_its_photo_ends_the_flow_one_without_does_not(
    app: App,
) -> None:
    """As before the refusal became a filter: only the ways that run at once end the flow."""
    app.unavailable(Operation.CHECK)
    chat = app.chat()
    await chat.send("/faces")
    await chat.send("/check")
    assert await chat.state.get_state() == PhotoFlow.waiting.state
    await chat.send(photo=PHOTO, caption="/check")
    assert await chat.state.get_state() is None

    await chat.send("/compare")
    await chat.send("/check", reply_to=chat.sent[0])
    assert await chat.state.get_state() == CompareFlow.first.state


async def test_photo_without_a_command_offers_only_the_available_operations(app: App) -> None:
    app.unavailable(Operation.DETECT, Operation.ANALYZE)
    chat = app.chat(language_code="ru")
    [menu] = await chat.send(photo=PHOTO)
    assert api_names([menu]) == ["sendMessage"]
    assert replied_to(menu) == chat.sent[-1].message_id
    assert text_of(menu) == tr("ru", "menu.choose")
    assert buttons(menu) == [
        (tr("ru", "button.check"), PhotoAction(operation=Operation.CHECK).pack()),
        (tr("ru", "button.compare"), PhotoAction(operation=Operation.COMPARE).pack()),
    ]

    app.unavailable(Operation.CHECK, Operation.COMPARE)
    [nothing] = await chat.send(photo=PHOTO)
    assert text_of(nothing) == tr("ru", "menu.nothing_available")
    assert buttons(nothing) == []


async def test_a_double_tap_on_a_menu_runs_the_operation_once(app: App) -> None:
    """Two callback queries for one menu, handled at once: one provider call, one reply."""
    chat = app.chat()
    await chat.send(photo=PHOTO)
    photo = chat.sent[-1]
    data = PhotoAction(operation=Operation.CHECK).pack()
    mark = len(chat.session.requests)
    await asyncio.gather(
        chat.press(data, under=photo, menu_id=9000), chat.press(data, under=photo, menu_id=9000)
    )
    sent = api_names(replies(chat.session.requests[mark:]))
    assert app.calls() == ["check"]
    assert sent.count("sendPhoto") == 1
    # Both taps are answered (Telegram shows a spinner until then); a new menu works again.
    assert sent.count("answerCallbackQuery") == 2
    await chat.press(data, under=photo)
    assert app.calls() == ["check", "check"]


async def test_menu_button_runs_the_operation_on_the_photo(app: App) -> None:
    chat = app.chat()
    await chat.send(photo=PHOTO)
    photo = chat.sent[-1]
    requests = await chat.press(PhotoAction(operation=Operation.CHECK).pack(), under=photo)
    assert api_names(replies(requests)) == [
        "answerCallbackQuery",
        "editMessageReplyMarkup",
        "sendPhoto",
    ]
    assert replied_to(replies(requests)[-1]) == photo.message_id
    assert app.calls() == ["check"]

    app.unavailable(Operation.DETECT)
    requests = await chat.press(PhotoAction(operation=Operation.DETECT).pack(), under=photo)
    refusal = replies(requests)[-1]
    assert api_names(replies(requests)) == [
        "answerCallbackQuery",
        "editMessageReplyMarkup",
        "sendMessage",
    ]
    assert replied_to(refusal) == photo.message_id
    assert fragment("en", "error.operation_unavailable") in text_of(refusal)
    assert app.calls() == ["check"]
