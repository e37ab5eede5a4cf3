"""/check end to end: the real bot, a fake Telegram server, fake providers, real HTTP."""

from __future__ import annotations

import asyncio
import io

import pytest
from PIL import Image

from bot.i18n import LOCALES
from services.providers.jumdata import CODES
from tests.conftest import fragment, portrait_jpeg, tr
from tests.e2e.conftest import run_bot
from tests.fakes.jumdata import FakeJumdata
from tests.fakes.telegram import Call, FakeTelegram

pytestmark = pytest.mark.e2e

CHECK_PATH = "/id-phote/check"
LANGUAGE_CODES = {"en": "en", "ru": "ru", "zh_Hans": "zh-hans"}
CHINESE_MESSAGES = [
    "照片处理失败",
    "人脸检测失败",
    "图片中找不到人脸",
    "余额不足",
    "两侧肩膀姿态不佳",
]


def replies_to(tg: FakeTelegram, chat_id: int, method: str | set[str] | None = None) -> list[Call]:
    return [c for c in tg.sent(chat_id, method) if c.method in {"sendmessage", "sendphoto"}]


def text_of(call: Call) -> str:
    return str(call.params.get("text") or call.params.get("caption") or "")


async def reply(
    tg: FakeTelegram,
    chat_id: int,
    *,
    after: int,
    method: str | set[str] = frozenset({"sendmessage", "sendphoto"}),
) -> Call:
    return await tg.wait_for(
        set(method) if not isinstance(method, str) else method,
        chat_id=chat_id,
        after=after,
        timeout=15,
    )


def check_requests(jumdata: FakeJumdata) -> list:
    return jumdata.received(CHECK_PATH)


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# --- ways in ----------------------------------------------------------------------------------


async def test_check_then_photo_picks_the_largest_size(tg, jumdata, jumdata_bot) -> None:
    mark = len(tg.calls)
    tg.user_message(101, text="/check")
    prompt = await reply(tg, 101, after=mark)
    assert fragment("en", "check.send_photo") in text_of(prompt)

    photo = portrait_jpeg(1000, 1333)
    mark = len(tg.calls)
    message = tg.user_message(101, photo=photo, photo_order="shuffled")
    answer = await reply(tg, 101, after=mark, method="sendphoto")
    assert answer.files, "the annotated photo is uploaded"
    assert tr("en", "check.verdict.pass") in text_of(answer)
    assert answer.params["reply_parameters"]["message_id"] == message["message_id"]
    assert fragment("en", "check.tip.send_as_file") in text_of(answer)
    action = await tg.wait_for("sendchataction", chat_id=101, after=mark)
    assert action.params["action"] == "upload_photo"

    [request] = check_requests(jumdata)
    assert request.auth_ok and request.image_field == "file"
    largest = max(message["photo"], key=lambda size: size["width"] * size["height"])
    assert decoded(request.image_bytes).size == (largest["width"], largest["height"])


async def test_document_with_check_caption_reaches_provider_byte_for_byte(
    tg, jumdata, jumdata_bot
) -> None:
    original = portrait_jpeg(600, 800, dpi=300)
    mark = len(tg.calls)
    tg.user_message(102, document=original, file_name="id.jpg", caption="/check")
    answer = await reply(tg, 102, after=mark, method="sendphoto")
    assert tr("en", "check.verdict.pass") in text_of(answer)
    assert fragment("en", "check.tip.send_as_file") not in text_of(answer)
    [request] = check_requests(jumdata)
    assert request.image_bytes == original
    # The fake measured the file the bot sent; the reply shows those values.
    assert "600×800 px" in text_of(answer) and "300 dpi" in text_of(answer)
    assert "51×68 mm" in text_of(answer)


async def test_check_as_reply_to_a_photo(tg, jumdata, jumdata_bot) -> None:
    photo_message = tg.user_message(103, photo=portrait_jpeg())
    await reply(tg, 103, after=0)  # the menu offered for a photo without a command
    mark = len(tg.calls)
    tg.user_message(103, text="/check", reply_to=photo_message)
    answer = await reply(tg, 103, after=mark, method="sendphoto")
    assert answer.params["reply_parameters"]["message_id"] == photo_message["message_id"]
    assert len(check_requests(jumdata)) == 1


async def test_photo_without_command_offers_buttons_and_the_button_checks(
    tg, jumdata, jumdata_bot
) -> None:
    photo_message = tg.user_message(104, photo=portrait_jpeg())
    menu = await reply(tg, 104, after=0)
    assert fragment("en", "menu.choose") in text_of(menu)
    buttons = [b for row in menu.params["reply_markup"]["inline_keyboard"] for b in row]
    assert {b["text"] for b in buttons} == {
        tr("en", f"button.{op}") for op in ("check", "compare", "detect", "analyze")
    }
    button = next(b for b in buttons if b["text"] == tr("en", "button.check"))
    assert check_requests(jumdata) == []

    mark = len(tg.calls)
    tg.press_button(104, menu.result, button["callback_data"])
    answered = await tg.wait_for("answercallbackquery", after=mark)
    assert answered.error is None
    answer = await reply(tg, 104, after=mark, method="sendphoto")
    assert answer.params["reply_parameters"]["message_id"] == photo_message["message_id"]
    assert len(check_requests(jumdata)) == 1


async def test_album_with_check_caption_checks_each_photo(tg, jumdata, jumdata_bot) -> None:
    mark = len(tg.calls)
    tg.user_message(105, photo=portrait_jpeg(), caption="/check", media_group_id="g1")
    tg.user_message(105, photo=portrait_jpeg(background=(255, 255, 255)), media_group_id="g1")
    await reply(tg, 105, after=mark, method="sendphoto")
    second = len([c for c in tg.sent(105, "sendphoto")])
    for _ in range(50):
        second = len(tg.sent(105, "sendphoto"))
        if second == 2:
            break
        await asyncio.sleep(0.1)
    assert second == 2
    assert len(check_requests(jumdata)) == 2
    assert not [c for c in tg.sent(105, "sendmessage") if c.params.get("reply_markup")]


async def test_waiting_flow_explains_and_cancels(tg, jumdata, jumdata_bot) -> None:
    mark = len(tg.calls)
    tg.user_message(106, text="/check")
    await reply(tg, 106, after=mark)
    mark = len(tg.calls)
    tg.user_message(106, text="hello?")
    nudge = await reply(tg, 106, after=mark)
    assert fragment("en", "flow.expecting_photo") in text_of(nudge)
    mark = len(tg.calls)
    tg.user_message(106, text="/cancel")
    done = await reply(tg, 106, after=mark)
    assert text_of(done) == tr("en", "cancel.done")
    mark = len(tg.calls)
    tg.user_message(106, photo=portrait_jpeg())
    menu = await reply(tg, 106, after=mark)
    assert fragment("en", "menu.choose") in text_of(menu)
    assert check_requests(jumdata) == []


# --- what the reply says ------------------------------------------------------------------------


@pytest.mark.parametrize("locale", LOCALES)
async def test_failed_rules_are_explained_in_the_users_language(
    tg, jumdata, jumdata_bot, locale: str
) -> None:
    jumdata.script(CHECK_PATH, detect_result={"shoulder_equal": 46, "face_x_occupy": 0.70})
    mark = len(tg.calls)
    tg.user_message(
        200, photo=portrait_jpeg(), caption="/check", language_code=LANGUAGE_CODES[locale]
    )
    answer = await reply(tg, 200, after=mark, method="sendphoto")
    text = "\n".join(text_of(c) for c in replies_to(tg, 200)[-2:])
    assert tr(locale, "check.verdict.fail") in text
    assert tr(locale, "reason.shoulders_not_level") in text
    assert tr(locale, "reason.face_too_large") in text
    assert "0.7" in text and "0.64" in text  # the value and the bound it broke
    assert not any(chinese in text for chinese in CHINESE_MESSAGES)
    assert answer.files


async def test_unknown_reason_is_shown_with_a_lead_in(tg, jumdata, jumdata_bot) -> None:
    jumdata.script(CHECK_PATH, reasons=["佩戴帽子"])
    mark = len(tg.calls)
    tg.user_message(201, photo=portrait_jpeg(), caption="/check")
    answer = await reply(tg, 201, after=mark, method="sendphoto")
    assert fragment("en", "check.reason.unknown") in text_of(answer)
    assert "佩戴帽子" in text_of(answer)


@pytest.mark.parametrize("locale", LOCALES)
async def test_every_documented_code_has_its_reply(tg, jumdata, jumdata_bot, locale: str) -> None:
    """Each jumdata code gets its own message; the provider's Chinese text is never shown."""
    codes = sorted(c for c in CODES if c != 501)  # 501 exists only on the Huawei resale
    user = 1000 + LOCALES.index(locale)
    for code in codes:
        retried = CODES[code].retry_safe
        jumdata.script(CHECK_PATH, code=code, times=3 if retried else 1)
        before = len(check_requests(jumdata))
        mark = len(tg.calls)
        tg.user_message(
            user, document=portrait_jpeg(), caption="/check", language_code=LANGUAGE_CODES[locale]
        )
        text = text_of(await reply(tg, user, after=mark))
        assert fragment(locale, CODES[code].message_id) in text, (code, text)
        assert (
            f"jumdata code {code}" in text
            or f"jumdata, код {code}" in text
            or f"jumdata 返回码 {code}" in text
        )
        assert not any(chinese in text for chinese in CHINESE_MESSAGES)
        attempts = len(check_requests(jumdata)) - before
        assert attempts == (3 if retried else 1), code
        # 603 spends the provider and 606/609 back it off: the operator clears it here.
        await jumdata_bot.services.metering.budgets.clear("jumdata")


async def test_codes_safe_to_retry_are_retried_and_others_are_not(tg, jumdata, jumdata_bot) -> None:
    jumdata.script(CHECK_PATH, code=500, times=2)  # then the default success
    mark = len(tg.calls)
    tg.user_message(300, document=portrait_jpeg(), caption="/check")
    answer = await reply(tg, 300, after=mark)
    assert tr("en", "check.verdict.pass") in text_of(answer)
    assert [r.code for r in check_requests(jumdata)] == [500, 500, 200]

    jumdata.script(CHECK_PATH, code=205)
    mark = len(tg.calls)
    tg.user_message(301, document=portrait_jpeg(), caption="/check")
    answer = await reply(tg, 301, after=mark)
    assert fragment("en", "jumdata.no_face") in text_of(answer)
    assert [r.code for r in check_requests(jumdata)][3:] == [205]


async def test_provider_timeout_malformed_and_5xx(tg, jumdata, jumdata_bot) -> None:
    jumdata.script(CHECK_PATH, hang=4)  # PROVIDER_TIMEOUT is 2 s in this fixture
    mark = len(tg.calls)
    tg.user_message(310, document=portrait_jpeg(), caption="/check")
    answer = await reply(tg, 310, after=mark)
    assert fragment("en", "provider.unavailable") in text_of(answer)
    assert len(check_requests(jumdata)) == 1  # a read timeout may have been billed: no retry

    jumdata.script(CHECK_PATH, malformed=True)
    mark = len(tg.calls)
    tg.user_message(311, document=portrait_jpeg(), caption="/check")
    answer = await reply(tg, 311, after=mark)
    assert fragment("en", "provider.malformed") in text_of(answer)

    jumdata.script(CHECK_PATH, http_status=502, times=3)
    mark = len(tg.calls)
    tg.user_message(312, document=portrait_jpeg(), caption="/check")
    answer = await reply(tg, 312, after=mark)
    assert fragment("en", "provider.unavailable") in text_of(answer)
    assert len(check_requests(jumdata)) == 1 + 1 + 3


async def test_a_large_phone_photo_is_reduced_and_the_reply_says_so(
    tg, jumdata, jumdata_bot
) -> None:
    mark = len(tg.calls)
    tg.user_message(320, document=portrait_jpeg(3000, 4000, dpi=300), caption="/check")
    answer = await reply(tg, 320, after=mark, method="sendphoto")
    [request] = check_requests(jumdata)
    assert max(decoded(request.image_bytes).size) <= 2500
    assert fragment("en", "image.note.reduced") in text_of(answer)


# --- bad input ----------------------------------------------------------------------------------


def _bomb_png() -> bytes:
    import struct
    import zlib

    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    ihdr = struct.pack(">II", 30000, 30000) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def _gif() -> bytes:
    frames = [Image.new("RGB", (200, 200), c) for c in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


BAD_INPUTS = {
    "text": (b"just some text, not a picture\n" * 10, "notes.txt", "text/plain", "image.not_image"),
    "corrupt": (portrait_jpeg()[:4000], "broken.jpg", "image/jpeg", "image.corrupt"),
    "bomb": (_bomb_png(), "bomb.png", "image/png", "image.too_many_pixels"),
    "tiny": (portrait_jpeg(20, 20, dpi=None), "tiny.jpg", "image/jpeg", "image.too_small"),
    "animated": (_gif(), "anim.gif", "image/gif", "image.animated"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
@pytest.mark.parametrize("locale", LOCALES)
async def test_bad_input_is_refused_without_calling_the_provider(
    tg, jumdata, jumdata_bot, case: str, locale: str
) -> None:
    data, name, mime, message_id = BAD_INPUTS[case]
    mark = len(tg.calls)
    tg.user_message(
        400,
        document=data,
        file_name=name,
        mime_type=mime,
        caption="/check",
        language_code=LANGUAGE_CODES[locale],
    )
    answer = await reply(tg, 400, after=mark)
    assert fragment(locale, message_id) in text_of(answer)
    assert check_requests(jumdata) == []
    # ...and the bot still serves the next user.
    mark = len(tg.calls)
    tg.user_message(401, document=portrait_jpeg(), caption="/check")
    await reply(tg, 401, after=mark, method="sendphoto")
    assert len(check_requests(jumdata)) == 1


async def test_file_over_20_mb_is_refused_before_download(tg, jumdata, jumdata_bot) -> None:
    mark = len(tg.calls)
    tg.user_message(410, document=portrait_jpeg(), caption="/check", document_size=25 * 1024 * 1024)
    answer = await reply(tg, 410, after=mark)
    assert fragment("en", "image.file_too_big") in text_of(answer)
    assert not [c for c in tg.calls[mark:] if c.method == "getfile"]
    assert check_requests(jumdata) == []


async def test_telegram_file_too_big_error_is_explained(tg, jumdata, jumdata_bot) -> None:
    tg.fail_next("getFile", error_code=400, description="Bad Request: file is too big")
    mark = len(tg.calls)
    tg.user_message(411, document=portrait_jpeg(), caption="/check")
    answer = await reply(tg, 411, after=mark)
    assert fragment("en", "image.file_too_big") in text_of(answer)
    assert check_requests(jumdata) == []


# --- the rest of the bot ------------------------------------------------------------------------


@pytest.mark.parametrize("locale", LOCALES)
async def test_start_and_help_in_each_language(tg, jumdata_bot, locale: str) -> None:
    mark = len(tg.calls)
    tg.user_message(500, text="/start", language_code=LANGUAGE_CODES[locale])
    start = await reply(tg, 500, after=mark)
    assert tr(locale, "help.intro") in text_of(start)
    assert tr(locale, "help.tip_file") in text_of(start)
    mark = len(tg.calls)
    tg.user_message(500, text="/help", language_code=LANGUAGE_CODES[locale])
    help_ = await reply(tg, 500, after=mark)
    assert tr(locale, "help.commands") in text_of(help_)


async def test_lang_buttons_and_direct_choice(tg, jumdata, jumdata_bot) -> None:
    mark = len(tg.calls)
    tg.user_message(510, text="/lang")
    menu = await reply(tg, 510, after=mark)
    buttons = [b for row in menu.params["reply_markup"]["inline_keyboard"] for b in row]
    russian = next(b for b in buttons if b["text"].endswith("Русский"))
    mark = len(tg.calls)
    tg.press_button(510, menu.result, russian["callback_data"])
    await tg.wait_for("answercallbackquery", after=mark)
    mark = len(tg.calls)
    tg.user_message(510, text="/help")  # Telegram still says "en"; the choice wins
    assert tr("ru", "help.commands") in text_of(await reply(tg, 510, after=mark))

    mark = len(tg.calls)
    tg.user_message(510, text="/lang zh")
    assert text_of(await reply(tg, 510, after=mark)) == tr("zh_Hans", "lang.set")
    jumdata.script(CHECK_PATH, code=603)
    mark = len(tg.calls)
    tg.user_message(510, document=portrait_jpeg(), caption="/check")
    assert fragment("zh_Hans", "jumdata.balance") in text_of(await reply(tg, 510, after=mark))


async def test_commands_menu_is_set_in_every_language(tg, jumdata_bot) -> None:
    calls = [c for c in tg.calls if c.method == "setmycommands"]
    languages = {c.params.get("language_code") for c in calls}
    assert languages == {None, "ru", "zh"}


async def test_an_engine_that_cannot_run_says_so(tg) -> None:
    """The local engine without its model files: users are told, nothing is downloaded."""
    async with run_bot(tg) as running:
        running.services.check.provider.unavailable_reason = "no model files"
        mark = len(tg.calls)
        tg.user_message(600, text="/check")
        answer = await reply(tg, 600, after=mark)
        assert fragment("en", "error.operation_unavailable") in text_of(answer)
        mark = len(tg.calls)
        tg.user_message(600, photo=portrait_jpeg())
        answer = await reply(tg, 600, after=mark)
        assert text_of(answer) == tr("en", "menu.nothing_available")
        assert not [c for c in tg.calls[mark:] if c.method == "getfile"]


async def test_logs_hold_no_token_or_secret(tg, jumdata, jumdata_bot, caplog) -> None:
    jumdata.script(CHECK_PATH, code=603)
    mark = len(tg.calls)
    tg.user_message(700, document=portrait_jpeg(), caption="/check")
    await reply(tg, 700, after=mark)
    assert "余额不足" in caplog.text  # the provider's text is logged...
    assert tg.token not in caplog.text  # ...never the token or the secret
    assert jumdata.app_secret not in caplog.text


# --- the Huawei marketplace resale ---------------------------------------------------------------


async def test_huawei_check_is_signed_and_answered(tg, huawei) -> None:
    settings = {
        "check_provider": "huawei",
        "huawei_app_key": huawei.app_key,
        "huawei_app_secret": huawei.app_secret,
        "huawei_check_url": huawei.url,
    }
    async with run_bot(tg, **settings):
        original = portrait_jpeg()
        mark = len(tg.calls)
        tg.user_message(1100, document=original, caption="/check", language_code="zh-cn")
        answer = await reply(tg, 1100, after=mark, method="sendphoto")
        assert tr("zh_Hans", "check.verdict.pass") in text_of(answer)
        [request] = huawei.received()
        assert request.auth_ok and request.image_field == "base64"
        assert request.image_bytes == original

        huawei.script(code=501, times=3)
        mark = len(tg.calls)
        tg.user_message(1101, document=original, caption="/check")
        answer = await reply(tg, 1101, after=mark)
        assert fragment("en", "jumdata.source_maintenance") in text_of(answer)
        assert len(huawei.received()) == 1 + 3


async def test_huawei_wrong_secret_is_the_operators_problem(tg, huawei) -> None:
    settings = {
        "check_provider": "huawei",
        "huawei_app_key": huawei.app_key,
        "huawei_app_secret": "wrong",
        "huawei_check_url": huawei.url,
    }
    async with run_bot(tg, **settings):
        mark = len(tg.calls)
        tg.user_message(1102, document=portrait_jpeg(), caption="/check")
        answer = await reply(tg, 1102, after=mark)
    assert fragment("en", "huawei.gateway_auth") in text_of(answer)
    assert "APIG.0303" in text_of(answer)
    assert [r.auth_ok for r in huawei.received()] == [False]


async def test_telegram_flood_control_on_the_reply_is_waited_out(tg, jumdata, jumdata_bot) -> None:
    """A 429 on the result photo lost an answer the provider was paid for."""
    tg.fail_next("sendPhoto", retry_after=1)
    mark = len(tg.calls)
    tg.user_message(412, document=portrait_jpeg(), caption="/check")
    photo = await tg.wait_for("sendphoto", chat_id=412, after=mark, timeout=15)
    while not photo.ok:  # the refused one first, then the one sent after the wait
        photo = await tg.wait_for("sendphoto", chat_id=412, after=photo.index + 1, timeout=15)
    refused = [c for c in tg.calls[mark:] if c.method == "sendphoto" and not c.ok]
    assert [c.error["error_code"] for c in refused if c.error] == [429]
    assert len(check_requests(jumdata)) == 1  # the provider was called once
