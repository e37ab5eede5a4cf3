"""Tests of the fake Telegram Bot API server, driven by a real aiogram Bot over HTTP.

They pin the fake to the real server's behaviour (status codes, error wording, object
shapes), so e2e tests of the bot built on it can be trusted.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.filters import Command
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaDocument,
    InputMediaPhoto,
    Message,
    ReplyParameters,
)
from PIL import Image

from tests.fakes.telegram import FakeTelegram

USER = 42


def jpeg(width: int = 1000, height: int = 750, *, orientation: int | None = None) -> bytes:
    """A real JPEG (optionally with an EXIF orientation tag)."""
    image = Image.new("RGB", (width, height), (200, 120, 40))
    image.paste((20, 60, 200), (0, 0, width // 2, height // 2))
    buffer = io.BytesIO()
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    image.save(buffer, format="JPEG", quality=90, exif=exif.tobytes())
    return buffer.getvalue()


def make_bot(tg: FakeTelegram, token: str | None = None) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(tg.base_url))
    return Bot(token or tg.token, session=session)


def keyboard(*data: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=d.title(), callback_data=d) for d in data]]
    )


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        yield fake
    assert fake.internal_errors == []


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[Bot]:
    bot = make_bot(tg)
    yield bot
    await bot.session.close()


# --------------------------------------------------------------------------- protocol


async def test_get_me_returns_the_bot_user(tg: FakeTelegram, bot: Bot) -> None:
    me = await bot.get_me()

    assert (me.id, me.is_bot, me.username) == (123456, True, "facecheck_test_bot")
    assert tg.calls[-1].method == "getme"
    assert tg.calls[-1].ok


async def test_wrong_token_is_unauthorized(tg: FakeTelegram) -> None:
    intruder = make_bot(tg, token="999:WRONG-token")
    try:
        with pytest.raises(TelegramUnauthorizedError, match="Unauthorized"):
            await intruder.get_me()
    finally:
        await intruder.session.close()
    assert tg.calls[-1].error == {"ok": False, "error_code": 401, "description": "Unauthorized"}


async def test_raw_http_encodings_and_errors(tg: FakeTelegram) -> None:
    """Query string, urlencoded and JSON bodies all work; routing errors are JSON too."""
    tg.user_message(USER, text="hi")
    base = f"{tg.base_url}/bot{tg.token}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/GETME") as resp:  # method names are case-insensitive
            assert resp.status == 200
            assert (await resp.json())["result"]["id"] == tg.bot_id
        async with http.post(f"{base}/fooBar") as resp:
            assert resp.status == 404
            assert await resp.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
        markup = {"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}
        async with http.post(
            f"{base}/sendMessage", json={"chat_id": USER, "text": "json", "reply_markup": markup}
        ) as resp:
            body = await resp.json()
            assert resp.status == 200, body
            assert body["result"]["reply_markup"] == markup
        call = tg.calls[-1]
        assert call.params["chat_id"] == USER
        assert call.params["reply_markup"] == markup
        async with http.post(f"{base}/sendMessage", data={"chat_id": USER, "text": "form"}) as resp:
            assert (await resp.json())["result"]["text"] == "form"
        async with http.get(f"{base}/sendMessage", params={"chat_id": USER, "text": "q"}) as resp:
            assert (await resp.json())["result"]["text"] == "q"
        async with http.post(f"{base}/sendMessage", data={"chat_id": USER}) as resp:
            assert resp.status == 400
            assert (await resp.json())["description"] == "Bad Request: message text is empty"
        async with http.post(f"{base}/sendMessage", data={"text": "x"}) as resp:
            assert (await resp.json())["description"] == "Bad Request: chat_id is empty"
        async with http.post(f"{base}/sendMessage", data={"chat_id": 777, "text": "x"}) as resp:
            assert (await resp.json())["description"] == "Bad Request: chat not found"


async def test_fail_next_injects_flood_wait_then_recovers(tg: FakeTelegram, bot: Bot) -> None:
    tg.user_message(USER, text="hi")
    tg.fail_next("sendMessage", retry_after=3)

    with pytest.raises(TelegramRetryAfter) as flood:
        await bot.send_message(USER, "first try")

    assert flood.value.retry_after == 3
    assert (await bot.send_message(USER, "second try")).text == "second try"
    tg.fail_next("sendPhoto", error_code=403, description="Forbidden: bot was blocked by the user")
    with pytest.raises(TelegramForbiddenError):
        await bot.send_photo(USER, BufferedInputFile(jpeg(), "a.jpg"))


async def test_blocked_user_gets_forbidden(tg: FakeTelegram, bot: Bot) -> None:
    tg.user_message(USER, text="hi")
    tg.set_blocked(USER)

    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(USER, "are you there?")


# --------------------------------------------------------------------------- updates


async def test_get_updates_offset_confirms_and_limit_caps(tg: FakeTelegram, bot: Bot) -> None:
    tg.user_message(USER, text="one")
    tg.user_message(USER, text="two")

    updates = await bot.get_updates()
    assert [u.message.text for u in updates if u.message] == ["one", "two"]
    assert updates[1].update_id == updates[0].update_id + 1
    assert len(await bot.get_updates()) == 2  # not confirmed yet: delivered again

    rest = await bot.get_updates(offset=updates[0].update_id + 1)
    assert [u.message.text for u in rest if u.message] == ["two"]
    assert [u.update_id for u in await bot.get_updates()] == [updates[1].update_id]
    assert await bot.get_updates(offset=updates[1].update_id + 1) == []
    assert tg.pending_updates == 0

    for n in range(3):
        tg.user_message(USER, text=f"m{n}")
    assert len(await bot.get_updates(limit=2)) == 2


async def test_long_poll_waits_then_wakes_up_on_push(tg: FakeTelegram, bot: Bot) -> None:
    started = time.monotonic()
    assert await bot.get_updates(timeout=1) == []
    assert time.monotonic() - started >= 0.9

    poll = asyncio.create_task(bot.get_updates(timeout=20))
    await tg.wait_for_poll()
    pushed = time.monotonic()
    tg.user_message(USER, text="ping")
    updates = await asyncio.wait_for(poll, 5)

    assert time.monotonic() - pushed < 2
    assert [u.message.text for u in updates if u.message] == ["ping"]


async def test_concurrent_get_updates_terminates_the_older_poll(tg: FakeTelegram, bot: Bot) -> None:
    """Like telegram-bot-api's abort_long_poll: the parked request gets the 409."""
    first = asyncio.create_task(bot.get_updates(timeout=20))
    await tg.wait_for_poll()
    second = asyncio.create_task(bot.get_updates(timeout=20))

    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates request"):
        await asyncio.wait_for(first, 5)
    await tg.wait_for_poll()
    tg.user_message(USER, text="for the survivor")
    assert len(await asyncio.wait_for(second, 5)) == 1


async def test_allowed_updates_filter_what_is_queued(tg: FakeTelegram, bot: Bot) -> None:
    tg.user_message(USER, text="hi")
    await bot.get_updates(offset=-1, allowed_updates=["message"])
    sent = await bot.send_message(USER, "Choose", reply_markup=keyboard("yes"))
    shown = tg.sent(USER, "sendMessage")[-1].result
    assert shown["message_id"] == sent.message_id

    tg.press_button(USER, shown, "yes")
    assert tg.dropped_updates and "callback_query" in tg.dropped_updates[-1]

    await bot.get_updates(allowed_updates=["message", "callback_query"])
    tg.press_button(USER, shown, "yes")
    assert [u.callback_query.data for u in await bot.get_updates() if u.callback_query] == ["yes"]


async def test_delete_webhook_can_drop_pending_updates(tg: FakeTelegram, bot: Bot) -> None:
    tg.user_message(USER, text="stale")

    assert await bot.delete_webhook(drop_pending_updates=True) is True
    assert tg.pending_updates == 0
    assert (await bot.get_webhook_info()).url == ""


# --------------------------------------------------------------------------- files


async def test_photo_sizes_like_telegram_and_download(tg: FakeTelegram, bot: Bot) -> None:
    message = tg.user_message(USER, photo=jpeg(1000, 750), caption="/check please")

    sizes = message["photo"]
    assert [max(s["width"], s["height"]) for s in sizes] == [90, 320, 800, 1000]
    assert message["caption_entities"] == [{"offset": 0, "length": 6, "type": "bot_command"}]
    largest = sizes[-1]
    file = await bot.get_file(largest["file_id"])
    assert file.file_size == largest["file_size"]
    assert file.file_path is not None
    downloaded = await bot.download_file(file.file_path)
    assert downloaded is not None
    data = downloaded.read()
    assert data == tg.file_bytes(largest["file_id"])
    assert Image.open(io.BytesIO(data)).size == (1000, 750)
    assert tg.downloads == [file.file_path]


async def test_shuffled_photo_sizes_hide_the_largest_from_the_end(tg: FakeTelegram) -> None:
    ascending = tg.photo_sizes(jpeg(2000, 1500))
    shuffled = tg.photo_sizes(jpeg(2000, 1500), order="shuffled")

    assert [s["width"] for s in ascending] == [90, 320, 800, 1280]
    assert sorted(s["width"] for s in shuffled) == [90, 320, 800, 1280]
    largest = max(shuffled, key=lambda s: s["width"])
    assert largest is not shuffled[-1]
    assert largest is not shuffled[0]


async def test_photo_orientation_is_applied_like_telegram(tg: FakeTelegram) -> None:
    sizes = tg.photo_sizes(jpeg(400, 200, orientation=6))  # EXIF: rotate 90° clockwise

    assert (sizes[-1]["width"], sizes[-1]["height"]) == (200, 400)


async def test_document_keeps_original_bytes(tg: FakeTelegram, bot: Bot) -> None:
    original = jpeg(300, 200, orientation=6)
    message = tg.user_message(USER, document=original, file_name="scan.jpg")

    document = message["document"]
    assert (document["file_name"], document["mime_type"]) == ("scan.jpg", "image/jpeg")
    assert document["file_size"] == len(original)
    downloaded = await bot.download(document["file_id"])
    assert downloaded is not None
    assert downloaded.read() == original


async def test_file_too_big_is_refused_by_get_file(tg: FakeTelegram, bot: Bot) -> None:
    big = tg.store_file(b"tiny", file_size=25 * 1024 * 1024)
    limit = tg.store_file(b"tiny", file_size=20 * 1024 * 1024)
    document = tg.user_message(
        USER, document=b"%PDF-1.4", file_name="a.pdf", document_size=21 * 1024 * 1024
    )["document"]

    with pytest.raises(TelegramBadRequest, match="file is too big"):
        await bot.get_file(big["file_id"])
    with pytest.raises(TelegramBadRequest, match="file is too big"):
        await bot.get_file(document["file_id"])
    assert (await bot.get_file(limit["file_id"])).file_path
    with pytest.raises(TelegramBadRequest, match="invalid file_id"):
        await bot.get_file("nope")


async def test_download_of_unknown_path_is_404(tg: FakeTelegram) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{tg.base_url}/file/bot{tg.token}/photos/file_999.jpg") as resp,
    ):
        assert resp.status == 404
        assert (await resp.json())["description"] == "Not Found"


async def test_send_photo_upload_lands_in_calls(tg: FakeTelegram, bot: Bot) -> None:
    tg.user_message(USER, text="/start")
    photo = jpeg(640, 480)

    sent = await bot.send_photo(USER, BufferedInputFile(photo, "result.jpg"), caption="Looks good")

    call = tg.sent(USER, "sendPhoto")[-1]
    assert call.files["photo"] == photo
    assert call.filenames["photo"] == "result.jpg"
    assert call.params["caption"] == "Looks good"
    assert sent.caption == "Looks good"
    assert sent.from_user is not None and sent.from_user.id == tg.bot_id
    assert sent.photo is not None and max(p.width for p in sent.photo) == 640
    again = await bot.send_photo(USER, sent.photo[-1].file_id)  # resend by file_id
    assert again.photo == sent.photo


async def test_send_photo_refusals(tg: FakeTelegram, bot: Bot) -> None:
    tg.user_message(USER, text="/start")

    with pytest.raises(TelegramBadRequest, match="message caption is too long"):
        await bot.send_photo(USER, BufferedInputFile(jpeg(), "a.jpg"), caption="x" * 1025)
    with pytest.raises(TelegramBadRequest, match="IMAGE_PROCESS_FAILED"):
        await bot.send_photo(USER, BufferedInputFile(b"not an image", "a.jpg"))
    with pytest.raises(TelegramBadRequest, match="PHOTO_INVALID_DIMENSIONS"):
        await bot.send_photo(USER, BufferedInputFile(jpeg(2100, 100), "strip.jpg"))
    document = tg.store_file(b"%PDF-1.4")
    with pytest.raises(TelegramBadRequest, match="can't use file of type Document as Photo"):
        await bot.send_photo(USER, document["file_id"])
    with pytest.raises(TelegramBadRequest, match="wrong file identifier"):
        await bot.send_photo(USER, "AgACAgIAAxkBAAIunknown")


async def test_send_document_and_media_group(tg: FakeTelegram, bot: Bot) -> None:
    tg.user_message(USER, text="/start")
    report = b"%PDF-1.4 report"

    doc = await bot.send_document(USER, BufferedInputFile(report, "report.pdf"))
    assert doc.document is not None
    assert (doc.document.file_name, doc.document.mime_type) == ("report.pdf", "application/pdf")
    assert tg.file_bytes(doc.document.file_id) == report

    album = await bot.send_media_group(
        USER,
        [
            InputMediaPhoto(media=BufferedInputFile(jpeg(), "a.jpg"), caption="before"),
            InputMediaPhoto(media=BufferedInputFile(jpeg(300, 200), "b.jpg")),
        ],
    )
    assert len(album) == 2
    assert album[0].media_group_id is not None
    assert album[0].media_group_id == album[1].media_group_id
    assert album[0].caption == "before"
    assert set(tg.sent(USER, "sendMediaGroup")[-1].files) == {"media[0]", "media[1]"}
    with pytest.raises(TelegramBadRequest, match="can't use the media of the specified type"):
        await bot.send_media_group(
            USER,
            [
                InputMediaPhoto(media=BufferedInputFile(jpeg(), "a.jpg")),
                InputMediaDocument(media=BufferedInputFile(report, "r.pdf")),
            ],
        )


# --------------------------------------------------------------------------- messages


async def test_html_is_parsed_and_bad_html_is_refused(tg: FakeTelegram, bot: Bot) -> None:
    tg.user_message(USER, text="/start")

    ok = await bot.send_message(USER, "<b>Result</b>: 5 &lt; 7", parse_mode="HTML")
    assert ok.text == "Result: 5 < 7"
    assert ok.entities is not None and (ok.entities[0].type, ok.entities[0].length) == ("bold", 6)

    for bad, reason in [
        ("<b>unclosed", 'Can\'t find end tag corresponding to start tag "b"'),
        ("line<br>break", 'Unsupported start tag "br" at byte offset 4'),
        ("<b>x</i>", "Unmatched end tag at byte offset 4"),
    ]:
        with pytest.raises(TelegramBadRequest, match="can't parse entities") as refused:
            await bot.send_message(USER, bad, parse_mode="HTML")
        assert reason in refused.value.message
    with pytest.raises(TelegramBadRequest, match="is reserved and must be escaped"):
        await bot.send_message(USER, "Done.", parse_mode="MarkdownV2")


async def test_text_limits(tg: FakeTelegram, bot: Bot) -> None:
    tg.user_message(USER, text="/start")

    assert await bot.send_message(USER, "x" * 4096)
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(USER, "x" * 4097)
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(USER, "😀" * 2049)  # 4098 UTF-16 code units
    with pytest.raises(TelegramBadRequest, match="message must be non-empty"):
        await bot.send_message(USER, "<b> </b>", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(777, "stranger")


async def test_send_chat_action_validates_action(tg: FakeTelegram, bot: Bot) -> None:
    tg.user_message(USER, text="/start")

    assert await bot.send_chat_action(USER, "upload_photo") is True
    with pytest.raises(TelegramBadRequest, match="wrong parameter action in request"):
        await bot.send_chat_action(USER, "dancing")
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_chat_action(777, "typing")


async def test_replies_need_an_existing_message(tg: FakeTelegram, bot: Bot) -> None:
    question = tg.user_message(USER, text="question")

    answer = await bot.send_message(
        USER, "answer", reply_parameters=ReplyParameters(message_id=question["message_id"])
    )
    assert answer.message_id == question["message_id"] + 1  # one counter per chat
    assert answer.reply_to_message is not None
    assert answer.reply_to_message.text == "question"
    with pytest.raises(TelegramBadRequest, match="message to be replied not found"):
        await bot.send_message(USER, "x", reply_parameters=ReplyParameters(message_id=999))
    loose = await bot.send_message(
        USER,
        "x",
        reply_parameters=ReplyParameters(message_id=999, allow_sending_without_reply=True),
    )
    assert loose.reply_to_message is None

    follow_up = tg.user_message(
        USER, text="thanks", reply_to=tg.sent(USER, "sendMessage")[0].result
    )
    assert follow_up["reply_to_message"]["message_id"] == answer.message_id


async def test_edit_delete_and_not_modified(tg: FakeTelegram, bot: Bot) -> None:
    user_msg = tg.user_message(USER, text="/start")
    sent = await bot.send_message(USER, "Step 1", reply_markup=keyboard("next"))

    edited = await bot.edit_message_text(
        "Step 2", chat_id=USER, message_id=sent.message_id, reply_markup=keyboard("next")
    )
    assert isinstance(edited, Message) and edited.text == "Step 2" and edited.edit_date
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text(
            "Step 2", chat_id=USER, message_id=sent.message_id, reply_markup=keyboard("next")
        )
    bare = await bot.edit_message_text("Step 2", chat_id=USER, message_id=sent.message_id)
    assert isinstance(bare, Message) and bare.reply_markup is None  # no markup = removed
    with pytest.raises(TelegramBadRequest, match="message can't be edited"):
        await bot.edit_message_text("hijack", chat_id=USER, message_id=user_msg["message_id"])
    with pytest.raises(TelegramBadRequest, match="there is no caption in the message to edit"):
        await bot.edit_message_caption(chat_id=USER, message_id=sent.message_id, caption="c")

    assert await bot.delete_message(USER, sent.message_id) is True
    assert tg.message(USER, sent.message_id) is None
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("Step 3", chat_id=USER, message_id=sent.message_id)
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(USER, sent.message_id)


async def test_press_button_and_answer_callback_once(tg: FakeTelegram, bot: Bot) -> None:
    tg.user_message(USER, text="/start")
    await bot.send_message(USER, "Choose", reply_markup=keyboard("yes"))
    shown = tg.sent(USER, "sendMessage")[-1].result

    with pytest.raises(AssertionError, match="no button with callback_data='no'"):
        tg.press_button(USER, shown, "no")
    query_id = tg.press_button(USER, shown, "yes")

    updates = await bot.get_updates()
    query = updates[-1].callback_query
    assert query is not None
    assert (query.id, query.data, query.from_user.id) == (query_id, "yes", USER)
    assert query.message is not None and query.message.message_id == shown["message_id"]
    assert await bot.answer_callback_query(query_id, text="Saved") is True
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(query_id)


async def test_bot_commands_are_validated_and_stored(tg: FakeTelegram, bot: Bot) -> None:
    await bot.set_my_commands([BotCommand(command="start", description="Start over")])

    assert [c.command for c in await bot.get_my_commands()] == ["start"]
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand(command="Check-Photo", description="x")])
    assert await bot.delete_my_commands() is True
    assert await bot.get_my_commands() == []


async def test_wait_for_reports_recent_calls_on_timeout(tg: FakeTelegram, bot: Bot) -> None:
    await bot.get_me()

    with pytest.raises(AssertionError, match=r"(?s)no \['sendphoto'\] call.*#0 getme"):
        await tg.wait_for("sendPhoto", timeout=0.2)


# --------------------------------------------------------------------------- a real dispatcher


async def test_dispatcher_polls_and_replies(tg: FakeTelegram, bot: Bot) -> None:
    router = Router()

    @router.message(Command("start"))
    async def start(message: Message) -> None:
        await message.answer("welcome")

    @router.message(F.text)
    async def echo(message: Message) -> None:
        await message.answer(message.text or "")

    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    polling = asyncio.create_task(
        dispatcher.start_polling(bot, handle_signals=False, close_bot_session=False)
    )
    try:
        tg.user_message(USER, text="/start")
        welcome = await tg.wait_for("sendMessage", chat_id=USER)
        assert welcome.ok and welcome.params["text"] == "welcome"

        mark = len(tg.calls)
        tg.user_message(USER, text="hello there")
        echo_call = await tg.wait_for("sendMessage", chat_id=USER, after=mark)
        assert echo_call.ok and echo_call.params["text"] == "hello there"
    finally:
        await dispatcher.stop_polling()
        await asyncio.wait_for(polling, 10)
