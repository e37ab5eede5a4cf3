""" "Make the file" through the real dispatcher (see ``recording``): the buttons under a check
against a document, the made file, the print sheet, the refusals, stale and double presses.

The checker is a fake answering with chosen measurements; ``make_photo`` works from them, so a
plain background with an ellipse head is photo enough.
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy
import pytest
from aiogram import Bot, Dispatcher
from aiogram.methods import (
    AnswerCallbackQuery,
    EditMessageReplyMarkup,
    SendDocument,
    SendMessage,
    SendPhoto,
    TelegramMethod,
)
from aiogram.types import BufferedInputFile
from PIL import Image

import bot.handlers.make as make_handlers
from bot.keyboards import MAKE_FILE, MAKE_SHEET, MakeAction
from bot.operations import MakeKeeper
from services.images import PreparedImage
from services.ledger import QuotaExceeded
from services.models import CheckResult, Operation
from services.specs import catalogue
from services.specs.make import MadePhoto, print_sheet
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
from tests.unit.test_spec_replies import US_GOOD, FakeChecker

# Square, so that the crop US_GOOD's head asks for (0.935 of the height) fits across.
PHOTO = portrait_jpeg(1000, 1000)


class QuotaChecker(FakeChecker):
    """``FakeChecker`` with a daily allowance, as the metering would enforce it."""

    def __init__(self) -> None:
        super().__init__()
        self.allowance: int | None = None

    async def check(self, image: PreparedImage) -> CheckResult:
        if self.allowance is not None:
            if self.allowance <= 0:
                raise QuotaExceeded(Operation.CHECK, 1, datetime.now(UTC) + timedelta(hours=3))
            self.allowance -= 1
        return await super().check(image)


@dataclass
class App:
    dispatcher: Dispatcher
    bot: Bot
    session: RecordingSession
    checker: QuotaChecker

    def chat(self, language_code: str = "en") -> Conversation:
        return Conversation(self.dispatcher, self.bot, self.session, language_code=language_code)


async def _app(**settings: Any) -> App:
    checker = QuotaChecker()
    providers = {
        op: checker if op is Operation.CHECK else FakeProvider(op.value) for op in Operation
    }
    dispatcher, bot, session = dispatcher_with(providers, **settings)
    return App(dispatcher, bot, session, checker)


@pytest.fixture
async def app() -> AsyncIterator[App]:
    made = await _app()
    yield made
    await made.dispatcher["timers"].close()


def text_of(request: TelegramMethod[Any]) -> str:
    return str(getattr(request, "text", None) or getattr(request, "caption", None) or "")


def make_buttons_of(requests: list[TelegramMethod[Any]]) -> list[tuple[str, MakeAction]]:
    return [
        (text, MakeAction.unpack(data))
        for request in replies(requests)
        for text, data in buttons(request)
        if data.startswith(MakeAction.__prefix__ + ":")
    ]


async def checked(chat: Conversation, code: str, photo: bytes = PHOTO) -> int:
    """Check ``photo`` against ``code``; the id of the reply that carries the make buttons."""
    requests = await chat.send(caption=f"/check {code}", document=photo)
    [edit] = [r for r in requests if isinstance(r, EditMessageReplyMarkup)]
    assert edit.message_id is not None
    return edit.message_id


def press_data(action: str, message_id: int) -> str:
    return MakeAction(action=action, message_id=message_id).pack()


def documents(requests: list[TelegramMethod[Any]]) -> list[SendDocument]:
    return [r for r in requests if isinstance(r, SendDocument)]


def document_bytes(request: SendDocument) -> tuple[str, bytes]:
    assert isinstance(request.document, BufferedInputFile)
    return request.document.filename or "", request.document.data


def alert_of(requests: list[TelegramMethod[Any]]) -> AnswerCallbackQuery:
    [answer] = [r for r in requests if isinstance(r, AnswerCallbackQuery)]
    return answer


# --- the buttons ----------------------------------------------------------------------------


async def test_buttons_under_a_spec_check_and_not_under_a_generic_one(app: App) -> None:
    chat = app.chat()
    requests = await chat.send(caption="/check us-passport", document=PHOTO)
    shown = make_buttons_of(requests)
    [edit] = [r for r in requests if isinstance(r, EditMessageReplyMarkup)]
    assert [text for text, _data in shown] == ["Make a US passport photo", "Print sheet (10×15 cm)"]
    assert [data.action for _text, data in shown] == [MAKE_FILE, MAKE_SHEET]
    assert {data.message_id for _text, data in shown} == {edit.message_id}

    assert make_buttons_of(await chat.send(caption="/check generic", document=PHOTO)) == []
    # An upload with pixel limits gets the file but no print sheet; one without, nothing.
    visa = make_buttons_of(await chat.send(caption="/check us-visa", document=PHOTO))
    assert [data.action for _text, data in visa] == [MAKE_FILE]
    online = await chat.send(caption="/check us-passport-online", document=PHOTO)
    assert make_buttons_of(online) == []


async def test_the_button_speaks_the_users_language(app: App) -> None:
    chat = app.chat(language_code="ru")
    shown = make_buttons_of(await chat.send(caption="/check us-passport", document=PHOTO))
    assert shown[0][0] == tr("ru", "button.make").format(document="Паспорт США")
    assert shown[1][0] == tr("ru", "button.make_sheet")


# --- making the file ------------------------------------------------------------------------


async def test_make_sends_the_file_then_checks_it_again(app: App) -> None:
    chat = app.chat()
    reply_id = await checked(chat, "us-passport")
    original = chat.sent[-1].document
    assert original is not None
    # A later command takes the chat's flow slot; the reply's data is kept apart from it.
    await chat.send("/check")

    requests = await chat.press(press_data(MAKE_FILE, reply_id), under=chat.sent[-1])
    seen = api_names(replies(requests))
    assert seen[0] == "answerCallbackQuery"
    assert seen.index("sendDocument") < seen.index("sendPhoto")
    [document] = documents(requests)
    assert replied_to(document) == reply_id
    name, data = document_bytes(document)
    assert name == "us-passport.jpg"
    with Image.open(io.BytesIO(data)) as made:
        assert made.format == "JPEG"
        assert made.size == (602, 602)
        assert tuple(round(d) for d in made.info["dpi"]) == (300, 300)
    caption = text_of(document)
    assert "<b>US passport</b>" in caption and "51×51" in caption and "300 dpi" in caption
    assert fragment("en", "make.icao") not in caption  # the US passport gives a head size

    # The original came from Telegram again, by its file id; the made file was checked.
    assert app.session.downloads.count(original.file_id) == 2
    assert len(app.checker.calls) == 2
    assert app.checker.calls[1][1] == data
    [recheck] = [r for r in requests if isinstance(r, SendPhoto)]
    report = "\n\n".join(text_of(r) for r in requests if isinstance(r, SendPhoto | SendMessage))
    assert fragment("en", "check.spec.title") in report and "<b>US passport</b>" in report
    assert recheck.reply_parameters is not None


async def test_an_upload_is_made_within_its_pixel_and_kb_limits(app: App) -> None:
    chat = app.chat()
    reply_id = await checked(chat, "us-visa")
    requests = await chat.press(press_data(MAKE_FILE, reply_id), under=chat.sent[-1])
    [document] = documents(requests)
    name, data = document_bytes(document)
    assert name == "us-visa.jpg"
    with Image.open(io.BytesIO(data)) as made:
        assert 600 <= made.width <= 1200 and made.width == made.height
        size = made.size
    assert len(data) <= 240 * 1024
    kb = round(len(data) / 1024, 1)  # with its decimal, as a limit in KB is read
    assert text_of(document) == tr("en", "make.caption.digital").format(
        name="<b>US visa (DS-160)</b>", w=size[0], h=size[1], kb=f"{kb:g}"
    )
    # Made: the "Make" button goes, and a visa has no print sheet, so the keyboard goes.
    [edit] = [r for r in requests if isinstance(r, EditMessageReplyMarkup)]
    assert (edit.message_id, edit.reply_markup) == (reply_id, None)


async def test_a_spec_without_a_head_size_uses_icao_and_says_so(app: App) -> None:
    chat = app.chat()
    reply_id = await checked(chat, "sa-visa")
    requests = await chat.press(press_data(MAKE_FILE, reply_id), under=chat.sent[-1])
    [document] = documents(requests)
    assert document_bytes(document)[0] == "sa-visa.jpg"
    assert tr("en", "make.icao") in text_of(document)


async def test_the_print_sheet(app: App) -> None:
    chat = app.chat()
    reply_id = await checked(chat, "us-passport")
    requests = await chat.press(press_data(MAKE_SHEET, reply_id), under=chat.sent[-1])
    [document] = documents(requests)
    name, data = document_bytes(document)
    assert name == "us-passport-sheet.jpg"
    with Image.open(io.BytesIO(data)) as sheet:
        assert sheet.size in {(1200, 1800), (1800, 1200)}
    caption = text_of(document)
    assert caption == tr("en", "make.sheet.caption").format(
        name="<b>US passport</b>", copies=2, dpi=300
    )
    assert len(app.checker.calls) == 1  # a sheet is not checked


@pytest.mark.parametrize(("code", "copies"), [("us-passport", 2), ("schengen", 8)])
def test_sheet_copies_match_the_sheet(code: str, copies: int) -> None:
    """``sheet_copies`` counts what ``print_sheet`` draws: copies on white, outlined grey."""
    spec = catalogue().get(code)
    assert make_handlers.sheet_copies(spec) == copies
    assert spec.width_mm is not None and spec.height_mm is not None
    cell = (round(spec.width_mm.middle / 25.4 * 300), round(spec.height_mm.middle / 25.4 * 300))
    red = io.BytesIO()
    Image.new("RGB", cell, (230, 20, 20)).save(red, "JPEG", quality=95, dpi=(300, 300))
    photo = MadePhoto(red.getvalue(), "JPEG", *cell, 300, 1.0, 95, False, (0, 0, *cell))
    with Image.open(io.BytesIO(print_sheet(photo, spec))) as sheet:
        rgb = numpy.asarray(sheet.convert("RGB")).astype(int)
    drawn = int(((rgb[..., 0] > 180) & (rgb[..., 1] < 80) & (rgb[..., 2] < 80)).sum())
    assert round(drawn / (cell[0] * cell[1])) == copies


async def test_a_small_original_says_how_many_pixels_and_sends_no_file(app: App) -> None:
    chat = app.chat()
    reply_id = await checked(chat, "us-passport", portrait_jpeg(300, 300))
    requests = await chat.press(press_data(MAKE_FILE, reply_id), under=chat.sent[-1])
    assert documents(requests) == []
    [answer] = [r for r in requests if isinstance(r, SendMessage)]
    text = text_of(answer)
    # 0.55 of 300 px is the head; sized to 30 of 51 mm (the band's middle) the crop is 280 px.
    assert text == tr("en", "make.cannot.too_few_pixels").format(
        have_w=280, have_h=280, w=602, h=602
    )
    assert "this document needs at least 602×602 px. Send a larger original." in text
    assert len(app.checker.calls) == 1  # no provider for a refusal


async def test_a_head_near_the_edges_says_which_in_russian(app: App) -> None:
    chat = app.chat(language_code="ru")
    reply_id = await checked(chat, "us-passport", portrait_jpeg(600, 800))
    requests = await chat.press(press_data(MAKE_FILE, reply_id), under=chat.sent[-1])
    assert documents(requests) == []
    [answer] = [r for r in requests if isinstance(r, SendMessage)]
    text = text_of(answer)
    assert text.startswith("Голова слишком близко к левому краю (не хватает ")
    assert "правому краю (не хватает " in text


async def test_used_up_allowance_still_sends_the_file(app: App) -> None:
    chat = app.chat()
    app.checker.allowance = 1
    reply_id = await checked(chat, "us-passport")
    requests = await chat.press(press_data(MAKE_FILE, reply_id), under=chat.sent[-1])
    assert len(documents(requests)) == 1
    [answer] = [r for r in requests if isinstance(r, SendMessage)]
    assert tr("en", "make.recheck_skipped") in text_of(answer)
    assert fragment("en", "quota.exceeded") in text_of(answer)


async def test_the_recheck_of_a_made_file_is_paced_like_any_check() -> None:
    app = await _app(user_burst=1, user_rate=1)
    try:
        chat = app.chat()
        reply_id = await checked(chat, "us-passport")  # the one token of the burst
        requests = await chat.press(press_data(MAKE_FILE, reply_id), under=chat.sent[-1])
        assert len(documents(requests)) == 1  # making the file calls no provider
        [answer] = [r for r in requests if isinstance(r, SendMessage)]
        assert text_of(answer) == tr("en", "pace.slow").format(seconds=60)
        assert len(app.checker.calls) == 1  # the first check only
    finally:
        await app.dispatcher["timers"].close()


# --- stale and double presses -------------------------------------------------------------


async def test_a_press_with_nothing_kept_gets_the_alert(app: App) -> None:
    chat = app.chat()
    await chat.send("/start")
    requests = await chat.press(press_data(MAKE_FILE, 987654), under=chat.sent[-1])
    answer = alert_of(requests)
    assert answer.text == tr("en", "make.expired") and answer.show_alert
    assert documents(requests) == [] and app.session.downloads == []


async def test_a_press_after_the_timeout_gets_the_alert() -> None:
    app = await _app(flow_timeout=0.2)
    try:
        chat = app.chat(language_code="zh-hans")
        reply_id = await checked(chat, "us-passport")
        await asyncio.sleep(0.3)
        requests = await chat.press(press_data(MAKE_FILE, reply_id), under=chat.sent[-1])
        answer = alert_of(requests)
        assert answer.text == tr("zh_Hans", "make.expired") and answer.show_alert
        assert documents(requests) == []
        assert len(app.session.downloads) == 1  # only the check's
    finally:
        await app.dispatcher["timers"].close()


async def test_a_second_press_while_making_makes_no_second_file(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[int] = []
    started = threading.Event()
    real = make_handlers.make_photo

    def slow_make(data: bytes, spec: Any, measurements: Any) -> Any:
        made.append(1)
        started.set()
        threading.Event().wait(0.3)  # in the worker thread: the loop takes the second press
        return real(data, spec, measurements)

    monkeypatch.setattr(make_handlers, "make_photo", slow_make)
    chat = app.chat()
    reply_id = await checked(chat, "us-passport")
    data = press_data(MAKE_FILE, reply_id)
    first = asyncio.create_task(chat.press(data, under=chat.sent[-1]))
    await asyncio.to_thread(started.wait, 5)
    second = await chat.press(data, under=chat.sent[-1])
    assert api_names(replies(second)) == ["answerCallbackQuery"]
    assert alert_of(second).text is None
    requests = await first
    assert len(documents(requests)) == 1 and made == [1]
    assert len(app.checker.calls) == 2

    # Once the first is done the button is gone; a press sent before that makes nothing.
    again = await chat.press(data, under=chat.sent[-1])
    assert api_names(replies(again)) == ["answerCallbackQuery"]
    assert made == [1] and len(app.checker.calls) == 2


async def test_made_once_the_make_button_goes_and_the_sheet_stays(app: App) -> None:
    chat = app.chat()
    reply_id = await checked(chat, "us-passport")
    first = await chat.press(press_data(MAKE_FILE, reply_id), under=chat.sent[-1])
    assert len(documents(first)) == 1
    [edit] = [r for r in first if isinstance(r, EditMessageReplyMarkup)]
    assert edit.message_id == reply_id
    assert [MakeAction.unpack(data).action for _text, data in buttons(edit)] == [MAKE_SHEET]
    # The edit comes after the file and before the check of it.
    seen = api_names(replies(first))
    assert (
        seen.index("sendDocument") < seen.index("editMessageReplyMarkup") < seen.index("sendPhoto")
    )

    second = await chat.press(press_data(MAKE_FILE, reply_id), under=chat.sent[-1])
    assert api_names(replies(second)) == ["answerCallbackQuery"]
    assert alert_of(second).text is None
    assert len(app.checker.calls) == 2  # the check, and one check of the one file

    sheet = await chat.press(press_data(MAKE_SHEET, reply_id), under=chat.sent[-1])
    assert [document_bytes(d)[0] for d in documents(sheet)] == ["us-passport-sheet.jpg"]


async def test_a_refused_make_keeps_the_button(app: App) -> None:
    chat = app.chat()
    reply_id = await checked(chat, "us-passport", portrait_jpeg(300, 300))
    requests = await chat.press(press_data(MAKE_FILE, reply_id), under=chat.sent[-1])
    assert documents(requests) == []
    assert not any(isinstance(r, EditMessageReplyMarkup) for r in requests)
    key = MakeKeeper.key(app.bot.id, chat.chat.id, chat.user.id, reply_id)
    assert (await app.dispatcher.storage.get_data(key))["made"] is False


async def test_the_kept_data_is_the_measurements_not_the_photo(app: App) -> None:
    chat = app.chat()
    reply_id = await checked(chat, "us-passport")
    key = MakeKeeper.key(app.bot.id, chat.chat.id, chat.user.id, reply_id)
    kept = await app.dispatcher.storage.get_data(key)
    assert set(kept) == {"spec", "image", "measurements", "at", "made"}
    assert kept["spec"] == "us-passport" and kept["made"] is False
    assert kept["image"]["file_id"] == chat.sent[-1].document.file_id  # type: ignore[union-attr]
    assert kept["measurements"]["head_top"] == US_GOOD["head_top"]
    assert kept["measurements"]["size_pix"] == [600, 600]  # the fake's profile, as it answered
