"""Tests of the fake Telegram Bot API server, driven by a real aiogram Bot over HTTP.

They pin the fake to the real server's behaviour (status codes, error wording, object
shapes), so e2e tests of the bot built on it can be trusted.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import json
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

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
from aiogram.methods import SendMessage
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
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web
from PIL import Image

from tests.fakes import telegram as telegram_module
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


# --------------------------------------------------------------------------- webhooks

SECRET = "s3cret_Token-42"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def hooked() -> AsyncIterator[FakeTelegram]:
    """A fake that delivers to webhooks on this machine (plain HTTP on 127.0.0.1)."""
    async with FakeTelegram(allow_http_webhook=True) as fake:
        yield fake
    assert fake.internal_errors == []


@pytest.fixture
async def hooked_bot(hooked: FakeTelegram) -> AsyncIterator[Bot]:
    bot = make_bot(hooked)
    yield bot
    await bot.session.close()


@contextlib.asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Run an aiohttp app on 127.0.0.1 (a free port); yields its base URL."""
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def raw_hook(handler: Handler) -> web.Application:
    app = web.Application()
    app.router.add_post("/hook", handler)
    return app


def aiogram_app(
    tg: FakeTelegram,
    router: Router,
    *,
    secret: str | None,
    background: bool = True,
    middlewares: list[Any] | None = None,
) -> web.Application:
    """A webhook server the way aiogram's docs build one; closes its bot on shutdown."""
    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    bot = make_bot(tg)
    app = web.Application(middlewares=middlewares or [])
    SimpleRequestHandler(
        dispatcher, bot, secret_token=secret, handle_in_background=background
    ).register(app, path="/hook")
    setup_application(app, dispatcher, bot=bot)
    return app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_webhook_delivers_to_an_aiogram_app(hooked: FakeTelegram, hooked_bot: Bot) -> None:
    seen: list[dict[str, str]] = []

    @web.middleware
    async def capture(request: web.Request, handler: Handler) -> web.StreamResponse:
        seen.append({**request.headers, "body": await request.text()})
        return await handler(request)

    router = Router()

    @router.message(F.text)
    async def echo(message: Message) -> None:
        await message.answer(f"echo: {message.text}")

    app = aiogram_app(hooked, router, secret=SECRET, middlewares=[capture])
    async with serve(app) as base:
        assert await hooked_bot.set_webhook(
            f"{base}/hook", secret_token=SECRET, allowed_updates=["message"]
        )
        message = hooked.user_message(USER, text="hello")
        update_id = hooked.last_update_id
        assert update_id is not None

        reply = await hooked.wait_for("sendMessage", chat_id=USER)
        assert reply.ok and reply.params["text"] == "echo: hello"
        assert not reply.via_webhook_reply  # the handler called the API itself
        delivery = await hooked.wait_for_delivery(update_id)
        assert (delivery.status, delivery.error, delivery.reply) == (200, None, None)
        info = await hooked_bot.get_webhook_info()

    assert info.url == f"{base}/hook"
    assert info.pending_update_count == 0
    assert info.last_error_message is None and info.last_error_date is None
    assert (info.max_connections, info.ip_address) == (40, "127.0.0.1")
    assert info.allowed_updates == ["message"]
    assert len(seen) == 1
    assert seen[0]["X-Telegram-Bot-Api-Secret-Token"] == SECRET
    assert seen[0]["Content-Type"] == "application/json"
    assert hooked.pending_updates == 0
    assert json.loads(seen[0]["body"]) == {"update_id": update_id, "message": message}


async def test_webhook_reply_is_executed_as_a_call(hooked: FakeTelegram, hooked_bot: Bot) -> None:
    """aiogram answers the webhook request with the handler's method (multipart)."""
    router = Router()

    @router.message(Command("start"))
    async def start(message: Message) -> SendMessage:
        return message.answer("<b>welcome</b>", parse_mode="HTML")

    app = aiogram_app(hooked, router, secret=SECRET, background=False)
    async with serve(app) as base:
        await hooked_bot.set_webhook(f"{base}/hook", secret_token=SECRET)
        hooked.user_message(USER, text="/start")
        update_id = hooked.last_update_id
        assert update_id is not None
        delivery = await hooked.wait_for_delivery(update_id)

    call = delivery.reply
    assert call is not None and call is hooked.calls[-1]
    assert call.via_webhook_reply and call.ok and call.method == "sendmessage"
    assert call.params["chat_id"] == USER
    assert "method" not in call.params
    assert call.result["text"] == "welcome"
    assert call.result["entities"] == [{"offset": 0, "length": 7, "type": "bold"}]
    assert hooked.bot_messages(USER)[-1]["text"] == "welcome"
    assert "(webhook reply)" in call.summary()


async def test_webhook_reply_formats_and_refused_methods(
    hooked: FakeTelegram, hooked_bot: Bot
) -> None:
    """JSON and urlencoded answers work; get*, setWebhook, deleteWebhook, close and
    logOut are never run from a webhook answer; a failed reply still confirms the update."""
    answers = iter(
        [
            web.json_response({"method": "sendMessage", "chat_id": USER, "text": "from json"}),
            web.Response(
                body=f"method=sendMessage&chat_id={USER}&text=from+form",
                content_type="application/x-www-form-urlencoded",
            ),
            web.json_response({"method": "getMe"}),
            web.json_response({"method": "deleteWebhook", "drop_pending_updates": True}),
            web.json_response({"method": "sendMessage", "chat_id": 777, "text": "nobody"}),
            web.Response(text="ok"),
        ]
    )

    async def hook(request: web.Request) -> web.StreamResponse:
        return next(answers)

    async with serve(raw_hook(hook)) as base:
        await hooked_bot.set_webhook(f"{base}/hook")
        for n in range(6):
            hooked.user_message(USER, text=f"m{n}")  # one chat: delivered in order
        last = hooked.last_update_id
        assert last is not None
        await hooked.wait_for_delivery(last)

    replies = [d.reply for d in hooked.webhook_deliveries]
    assert [d.ok for d in hooked.webhook_deliveries] == [True] * 6
    assert [r.params["text"] if r else None for r in replies] == [
        "from json",
        "from form",
        None,
        None,
        "nobody",
        None,
    ]
    assert replies[4] is not None and replies[4].error is not None
    assert replies[4].error["description"] == "Bad Request: chat not found"
    assert hooked.webhook_url == f"{base}/hook"  # deleteWebhook was not run
    assert [c.method for c in hooked.calls if c.via_webhook_reply] == ["sendmessage"] * 3
    assert hooked.pending_updates == 0


async def test_webhook_error_is_retried_and_shown(hooked: FakeTelegram, hooked_bot: Bot) -> None:
    received: list[dict[str, Any]] = []
    release = asyncio.Event()

    async def hook(request: web.Request) -> web.StreamResponse:
        received.append(await request.json())
        if len(received) == 1:
            return web.Response(status=500, text="boom")
        await release.wait()
        return web.json_response({})

    async with serve(raw_hook(hook)) as base:
        await hooked_bot.set_webhook(f"{base}/hook")
        hooked.user_message(USER, text="hi")
        update_id = hooked.last_update_id
        assert update_id is not None

        failed = await hooked.wait_for_delivery(update_id, ok=False)
        assert failed.status == 500
        assert failed.error == "Wrong response from the webhook: 500 Internal Server Error"
        await until(lambda: len(received) == 2)  # the first retry comes at once
        info = await hooked_bot.get_webhook_info()
        assert info.pending_update_count == 1
        assert info.last_error_message == failed.error
        assert info.last_error_date is not None
        assert abs(info.last_error_date.timestamp() - time.time()) < 5

        release.set()
        await hooked.wait_for_delivery(update_id)
        after = await hooked_bot.get_webhook_info()

    assert received[0] == received[1]
    assert received[0]["update_id"] == update_id and received[0]["message"]["text"] == "hi"
    assert after.pending_update_count == 0
    assert after.last_error_message == failed.error  # kept, as Telegram does


async def test_retry_after_header_delays_the_retry(hooked: FakeTelegram, hooked_bot: Bot) -> None:
    arrivals: list[float] = []

    async def hook(request: web.Request) -> web.StreamResponse:
        arrivals.append(time.monotonic())
        if len(arrivals) == 1:
            return web.Response(status=429, headers={"Retry-After": "1"})
        return web.json_response({})

    async with serve(raw_hook(hook)) as base:
        await hooked_bot.set_webhook(f"{base}/hook")
        hooked.user_message(USER, text="hi")
        assert hooked.last_update_id is not None
        await hooked.wait_for_delivery(hooked.last_update_id)

    assert hooked.webhook_deliveries[0].error == (
        "Wrong response from the webhook: 429 Too Many Requests"
    )
    assert arrivals[1] - arrivals[0] >= 0.9


async def test_wrong_secret_is_refused_by_aiogram_and_retried(
    hooked: FakeTelegram, hooked_bot: Bot
) -> None:
    handled: list[Message] = []
    router = Router()

    @router.message()
    async def any_message(message: Message) -> None:
        handled.append(message)

    app = aiogram_app(hooked, router, secret="not-the-right-one")
    async with serve(app) as base:
        await hooked_bot.set_webhook(f"{base}/hook", secret_token=SECRET)
        hooked.user_message(USER, text="let me in")
        update_id = hooked.last_update_id
        assert update_id is not None
        attempts = []
        for _ in range(3):
            after = len(hooked.webhook_deliveries)
            attempts.append(await hooked.wait_for_delivery(update_id, ok=False, after=after))
        info = await hooked_bot.get_webhook_info()

    assert handled == []
    assert {a.status for a in attempts} == {401}
    assert attempts[0].error == "Wrong response from the webhook: 401 Unauthorized"
    assert attempts[1].at - attempts[0].at < 1  # the first retry is immediate...
    assert attempts[2].at - attempts[1].at >= 1.9  # ...then the back-off starts at 2 s
    assert info.last_error_message == attempts[0].error
    assert info.pending_update_count == 1
    assert hooked.sent(USER) == []


async def test_two_workers_behind_a_round_robin_proxy(
    hooked: FakeTelegram, hooked_bot: Bot
) -> None:
    handled: list[tuple[str, int]] = []

    def worker(name: str) -> web.Application:
        router = Router()

        @router.message(F.text)
        async def answer(message: Message) -> None:
            assert message.from_user is not None
            handled.append((name, message.from_user.id))
            await message.answer(f"{name} got {message.text}")

        return aiogram_app(hooked, router, secret=SECRET)

    async with (
        serve(worker("a")) as a,
        serve(worker("b")) as b,
        aiohttp.ClientSession() as http,
    ):
        backends = itertools.cycle([a, b])

        async def proxy(request: web.Request) -> web.StreamResponse:
            headers = {
                k: v
                for k, v in request.headers.items()
                if k in ("Content-Type", "X-Telegram-Bot-Api-Secret-Token")
            }
            async with http.post(
                next(backends) + request.path, data=await request.read(), headers=headers
            ) as resp:
                body = await resp.read()
                content_type = resp.headers.get("Content-Type", "application/octet-stream")
                return web.Response(
                    status=resp.status, body=body, headers={"Content-Type": content_type}
                )

        async with serve(raw_hook(proxy)) as front:
            await hooked_bot.set_webhook(f"{front}/hook", secret_token=SECRET)
            users = list(range(101, 107))
            for user in users:
                hooked.user_message(user, text=f"hi from {user}")
            for user in users:
                call = await hooked.wait_for("sendMessage", chat_id=user)
                assert call.ok and call.params["text"].endswith(f"got hi from {user}")

    assert sorted(user for _, user in handled) == users  # each update handled once
    assert {name for name, _ in handled} == {"a", "b"}
    assert all(d.ok for d in hooked.webhook_deliveries)
    assert hooked.pending_updates == 0


async def test_max_connections_caps_requests_in_flight(
    hooked: FakeTelegram, hooked_bot: Bot
) -> None:
    """At most max_connections requests at once; one chat's updates one at a time, in order."""
    in_flight: Counter[str] = Counter()
    peaks: Counter[str] = Counter()
    texts: list[str] = []

    async def hook(request: web.Request) -> web.StreamResponse:
        message = (await request.json())["message"]
        keys = ["all", f"chat {message['chat']['id']}"]
        for key in keys:
            in_flight[key] += 1
            peaks[key] = max(peaks[key], in_flight[key])
        await asyncio.sleep(0.15)
        for key in keys:
            in_flight[key] -= 1
        texts.append(message["text"])
        return web.json_response({})

    async with serve(raw_hook(hook)) as base:
        await hooked_bot.set_webhook(f"{base}/hook", max_connections=3)
        hooked.user_message(USER, text="warm-up")
        assert hooked.last_update_id is not None
        await hooked.wait_for_delivery(hooked.last_update_id)  # a success: all 3 connections
        for user in range(201, 207):
            hooked.user_message(user, text=f"user {user}")
        for n in range(3):
            hooked.user_message(USER, text=f"same chat {n}")
        last = hooked.last_update_id
        ids = [d.update_id for d in hooked.webhook_deliveries]
        assert last is not None
        await until(lambda: hooked.pending_updates == 0, timeout=10)
        info = await hooked_bot.get_webhook_info()

    assert ids == [last - 9]
    assert peaks["all"] == 3
    assert peaks[f"chat {USER}"] == 1
    assert [t for t in texts if t.startswith("same chat")] == [f"same chat {n}" for n in range(3)]
    assert info.max_connections == 3
    assert len(hooked.webhook_deliveries) == 10


async def test_delete_webhook_stops_deliveries_and_get_updates_works(
    hooked: FakeTelegram, hooked_bot: Bot
) -> None:
    received: list[int] = []
    arrived = asyncio.Event()
    release = asyncio.Event()

    async def hook(request: web.Request) -> web.StreamResponse:
        received.append((await request.json())["update_id"])
        arrived.set()
        await release.wait()
        return web.json_response({})

    async with serve(raw_hook(hook)) as base:
        await hooked_bot.set_webhook(f"{base}/hook")
        with pytest.raises(TelegramConflictError, match="can't use getUpdates method while"):
            await hooked_bot.get_updates()
        hooked.user_message(USER, text="in flight")
        first = hooked.last_update_id
        await asyncio.wait_for(arrived.wait(), 5)

        assert await hooked_bot.delete_webhook() is True
        hooked.user_message(USER, text="after delete")
        second = hooked.last_update_id
        release.set()  # the request in flight still finishes and counts
        assert first is not None and second is not None
        assert (await hooked.wait_for_delivery(first)).ok
        await asyncio.sleep(0.3)
        info = await hooked_bot.get_webhook_info()
        updates = await hooked_bot.get_updates()

    assert received == [first]
    assert (info.url, info.pending_update_count) == ("", 1)
    assert info.last_error_message is None and info.max_connections is None
    assert [u.update_id for u in updates] == [second]
    assert updates[0].message is not None and updates[0].message.text == "after delete"


async def test_set_webhook_checks_like_telegram(
    tg: FakeTelegram, bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(telegram_module, "SET_WEBHOOK_INTERVAL", 0.0)
    refusals = {
        "http://example.com/hook": "bad webhook: An HTTPS URL must be provided for webhook",
        "https://127.0.0.1/hook": "bad webhook: IP address 127.0.0.1 is reserved",
        "https://localhost:8443/hook": "bad webhook: IP address 127.0.0.1 is reserved",
        "https://10.1.2.3/hook": "bad webhook: IP address 10.1.2.3 is reserved",
        "https://[::1]/hook": "bad webhook: IPv6-only addresses are not allowed",
        "https://example.com:8080/hook": (
            "bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443"
        ),
        "ftp://example.com/hook": "invalid webhook URL specified",
        "https://exa mple.com/hook": "invalid webhook URL specified",
    }
    for url, reason in refusals.items():
        with pytest.raises(TelegramBadRequest) as refused:
            await bot.set_webhook(url)
        assert refused.value.message == f"Bad Request: {reason}", url
    assert (await bot.get_webhook_info()).url == ""

    url = "https://example.com:8443/hook"
    with pytest.raises(TelegramBadRequest, match="secret token contains unallowed characters"):
        await bot.set_webhook(url, secret_token="base64+/=")
    with pytest.raises(TelegramBadRequest, match="secret token is too long"):
        await bot.set_webhook(url, secret_token="a" * 257)
    assert await bot.set_webhook(url, secret_token="a" * 256, max_connections=500)
    info = await bot.get_webhook_info()
    assert (info.url, info.max_connections, info.ip_address) == (url, 100, None)
    assert await bot.set_webhook("example.com/hook", max_connections=0)  # https by default
    assert (await bot.get_webhook_info()).max_connections == 1

    # A host elsewhere is accepted but never called: the fake stays on this machine.
    tg.user_message(USER, text="queued")
    await asyncio.sleep(0.2)
    assert tg.webhook_deliveries == []
    assert (await bot.get_webhook_info()).pending_update_count == 1

    base = f"{tg.base_url}/bot{tg.token}"
    async with aiohttp.ClientSession() as http:
        params = {"url": "example.com/hook", "max_connections": "0"}
        async with http.post(f"{base}/setWebhook", data=params) as resp:
            assert (await resp.json())["description"] == "Webhook is already set"
        async with http.post(f"{base}/deleteWebhook") as resp:
            assert (await resp.json())["description"] == "Webhook was deleted"
        async with http.post(f"{base}/deleteWebhook") as resp:
            assert (await resp.json())["description"] == "Webhook is already deleted"


async def test_set_webhook_is_limited_to_once_a_second(tg: FakeTelegram, bot: Bot) -> None:
    """As on Telegram: several processes setting the same webhook at once get a 429."""
    assert await bot.set_webhook("https://example.com/hook")
    with pytest.raises(TelegramRetryAfter) as flood:
        await bot.set_webhook("https://example.com/hook")
    assert flood.value.retry_after == 1
    assert await bot.delete_webhook()  # not limited
    await asyncio.sleep(1.05)
    assert await bot.set_webhook("https://example.com/hook")


async def test_unreachable_webhook_is_reported(hooked: FakeTelegram, hooked_bot: Bot) -> None:
    await hooked_bot.set_webhook(f"http://127.0.0.1:{free_port()}/hook")
    hooked.user_message(USER, text="anyone?")
    assert hooked.last_update_id is not None

    failed = await hooked.wait_for_delivery(hooked.last_update_id, ok=False)

    assert (failed.status, failed.error) == (None, "Connection refused")
    info = await hooked_bot.get_webhook_info()
    assert info.last_error_message == "Connection refused"
    assert info.pending_update_count == 1
    assert "Connection refused" in hooked.describe()


async def test_slow_webhook_times_out_and_stop_is_clean() -> None:
    never = asyncio.Event()
    arrived = asyncio.Event()

    async def hook(request: web.Request) -> web.StreamResponse:
        arrived.set()
        await never.wait()
        return web.json_response({})

    fake = FakeTelegram(allow_http_webhook=True)
    await fake.start()
    bot = make_bot(fake)
    try:
        async with serve(raw_hook(hook)) as base:
            fake.webhook_timeout = 0.3
            await bot.set_webhook(f"{base}/hook")
            fake.user_message(USER, text="slow")
            assert fake.last_update_id is not None
            failed = await fake.wait_for_delivery(fake.last_update_id, ok=False)
            assert (failed.status, failed.error) == (None, "Read timeout expired")

            fake.webhook_timeout = 60
            arrived.clear()
            await asyncio.wait_for(arrived.wait(), 5)  # a retry hangs in flight
            started = time.monotonic()
            await fake.stop()
            assert time.monotonic() - started < 2
            never.set()
    finally:
        await bot.session.close()
        await fake.stop()
    assert fake.pending_updates == 1  # abandoned, not confirmed
    assert fake.internal_errors == []
