"""/compare, /faces and /analyze end to end: fake Telegram, fake JD Cloud, fake jumdata."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot.i18n import LOCALES
from services.providers.jdcloud import BUSINESS_CODES, SYSTEM_CODES
from tests.conftest import fragment, portrait_jpeg, tr
from tests.e2e.conftest import RunningBot, run_bot
from tests.e2e.test_check import BAD_INPUTS, LANGUAGE_CODES, reply, text_of
from tests.fakes.jdcloud import COMPARE_PATH, PROP_PATH, FakeJdCloud
from tests.fakes.jumdata import FakeJumdata
from tests.fakes.telegram import FakeTelegram

pytestmark = pytest.mark.e2e
DETECT_PATH = "/face/detect"


@pytest.fixture
async def jdcloud() -> AsyncIterator[FakeJdCloud]:
    async with FakeJdCloud() as server:
        yield server


def cloud_settings(jdcloud: FakeJdCloud, jumdata: FakeJumdata, **extra: object) -> dict:
    return {
        "compare_provider": "jdcloud",
        "analyze_provider": "jdcloud",
        "detect_provider": "jumdata",
        "jdcloud_access_key": jdcloud.access_key,
        "jdcloud_secret_key": jdcloud.secret_key,
        "jdcloud_url": jdcloud.base_url,
        "jumdata_app_id": jumdata.app_id,
        "jumdata_app_secret": jumdata.app_secret,
        "jumdata_url": jumdata.base_url,
        "provider_timeout": 2,
        **extra,
    }


@pytest.fixture
async def cloud_bot(tg, jdcloud, jumdata) -> AsyncIterator[RunningBot]:
    async with run_bot(tg, **cloud_settings(jdcloud, jumdata)) as running:
        yield running


async def compare_two(
    tg: FakeTelegram,
    user: int,
    *,
    language: str = "en",
    first: bytes | None = None,
    second: bytes | None = None,
):
    """``/compare``, then two photos as files; returns the final answer."""
    mark = len(tg.calls)
    tg.user_message(user, text="/compare", language_code=language)
    await reply(tg, user, after=mark)
    mark = len(tg.calls)
    tg.user_message(user, document=first or portrait_jpeg(), language_code=language)
    await reply(tg, user, after=mark)
    mark = len(tg.calls)
    tg.user_message(
        user, document=second or portrait_jpeg(background=(250, 250, 250)), language_code=language
    )
    return await reply(tg, user, after=mark)


# --- compare ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "verdict"),
    [(0.93, "same_very_high"), (0.56, "same_high"), (0.50, "probably_same"), (0.31, "different")],
)
@pytest.mark.parametrize("locale", LOCALES)
async def test_compare_verdicts_in_each_language(
    tg, jdcloud, cloud_bot, score: float, verdict: str, locale: str
) -> None:
    jdcloud.script(COMPARE_PATH, score=score)
    answer = await compare_two(tg, 700, language=LANGUAGE_CODES[locale])
    assert answer.method == "sendphoto" and answer.files
    text = text_of(answer)
    assert tr(locale, f"compare.verdict.{verdict}") in text
    assert f"{round(score * 100)}%" in text
    assert fragment(locale, "compare.explain") in text
    [request] = jdcloud.received(COMPARE_PATH)
    assert request.auth_ok and set(request.images) == {"imgBase64A", "imgBase64B"}


async def test_compare_album_of_two(tg, jdcloud, cloud_bot) -> None:
    mark = len(tg.calls)
    tg.user_message(701, photo=portrait_jpeg(), caption="/compare", media_group_id="pair")
    tg.user_message(701, photo=portrait_jpeg(background=(255, 255, 255)), media_group_id="pair")
    answer = await reply(tg, 701, after=mark, method="sendphoto")
    assert tr("en", "compare.verdict.same_very_high") in text_of(answer)
    assert len(jdcloud.received(COMPARE_PATH)) == 1


async def test_compare_photo_replying_to_photo(tg, jdcloud, cloud_bot) -> None:
    first = tg.user_message(702, photo=portrait_jpeg())
    await reply(tg, 702, after=0)  # the menu
    mark = len(tg.calls)
    second = tg.user_message(
        702, photo=portrait_jpeg(background=(200, 30, 30)), caption="/compare", reply_to=first
    )
    answer = await reply(tg, 702, after=mark, method="sendphoto")
    assert answer.params["reply_parameters"]["message_id"] == second["message_id"]
    [request] = jdcloud.received(COMPARE_PATH)
    assert request.images["imgBase64A"] != request.images["imgBase64B"]


async def test_compare_button_asks_for_the_other_photo(tg, jdcloud, cloud_bot) -> None:
    tg.user_message(703, photo=portrait_jpeg())
    menu = await reply(tg, 703, after=0)
    buttons = {b["text"]: b for row in menu.params["reply_markup"]["inline_keyboard"] for b in row}
    assert set(buttons) == {
        tr("en", f"button.{op}") for op in ("check", "compare", "detect", "analyze")
    }
    mark = len(tg.calls)
    tg.press_button(703, menu.result, buttons[tr("en", "button.compare")]["callback_data"])
    ask = await reply(tg, 703, after=mark)
    assert text_of(ask) == tr("en", "compare.send_second")
    mark = len(tg.calls)
    tg.user_message(703, document=portrait_jpeg(background=(255, 255, 255)))
    answer = await reply(tg, 703, after=mark, method="sendphoto")
    assert tr("en", "compare.verdict.same_very_high") in text_of(answer)


async def test_compare_names_the_photo_without_a_face(tg, jdcloud, cloud_bot) -> None:
    jdcloud.script(COMPARE_PATH, faces_b=[])
    answer = await compare_two(tg, 704)
    assert fragment("en", "jdcloud.no_face_b") in text_of(answer)
    jdcloud.script(COMPARE_PATH, faces_a=[])
    answer = await compare_two(tg, 705)
    assert fragment("en", "jdcloud.no_face_a") in text_of(answer)


async def test_compare_says_which_face_was_used(tg, jdcloud, cloud_bot) -> None:
    small = {"boundingBox": {"left": "10", "top": "10", "width": "30", "height": "30"}}
    # JD compares one face per photo and does not say which: the largest, listed second.
    jdcloud.script(COMPARE_PATH, faces_b=[small, {}])
    answer = await compare_two(tg, 706)
    assert tr("en", "compare.face_of_photo").format(n=2, count=2, face=2) in text_of(answer)
    assert fragment("en", "compare.best_of") not in text_of(answer)


@pytest.mark.parametrize("locale", LOCALES)
async def test_every_jd_code_has_its_reply(tg, jdcloud, cloud_bot, locale: str) -> None:
    user = 710 + LOCALES.index(locale)
    cases = [("business", code, info) for code, info in BUSINESS_CODES.items()]
    cases += [("system", code, info) for code, info in SYSTEM_CODES.items()]
    for kind, code, info in cases:
        attempts = 3 if info.retry_safe else 1
        if kind == "business":
            jdcloud.script(COMPARE_PATH, code=code, times=attempts)
        else:
            jdcloud.script(COMPARE_PATH, system_code=code, times=attempts)
        before = len(jdcloud.received(COMPARE_PATH))
        answer = await compare_two(tg, user, language=LANGUAGE_CODES[locale])
        text = text_of(answer)
        expected = [info.message_id]
        if kind == "business" and code == 10:
            expected = ["jdcloud.no_face", "jdcloud.no_face_a", "jdcloud.no_face_b"]
        assert any(fragment(locale, mid) in text for mid in expected), (code, text)
        assert "查询" not in text and "超过" not in text  # the provider's msg stays in the log
        assert len(jdcloud.received(COMPARE_PATH)) - before == attempts, code
        await cloud_bot.services.metering.budgets.clear("jdcloud")


async def test_wrong_jd_secret_is_the_operators_problem(tg, jdcloud, jumdata) -> None:
    settings = cloud_settings(jdcloud, jumdata, jdcloud_secret_key="not-the-secret")
    async with run_bot(tg, **settings):
        answer = await compare_two(tg, 720)
    assert fragment("en", "jdcloud.gateway_sign_mismatch") in text_of(answer)
    assert [r.auth_ok for r in jdcloud.received(COMPARE_PATH)] == [False]


async def test_budget_spent_says_so(tg, jumdata) -> None:
    async with FakeJdCloud(daily_limit=1) as jdcloud:
        async with run_bot(tg, **cloud_settings(jdcloud, jumdata)):
            first = await compare_two(tg, 721)
            assert tr("en", "compare.verdict.same_very_high") in text_of(first)
            second = await compare_two(tg, 721)
    # remain reached 0 with the first answer: the bot says so without calling JD again.
    assert fragment("en", "budget.spent") in text_of(second)
    assert len(jdcloud.received(COMPARE_PATH)) == 1 and jdcloud.charged == 1


@pytest.mark.parametrize("case", ["text", "bomb", "animated"])
async def test_bad_second_photo_is_named_and_costs_nothing(
    tg, jdcloud, cloud_bot, case: str
) -> None:
    data, name, mime, message_id = BAD_INPUTS[case]
    mark = len(tg.calls)
    tg.user_message(730, text="/compare")
    await reply(tg, 730, after=mark)
    mark = len(tg.calls)
    tg.user_message(730, document=portrait_jpeg())
    await reply(tg, 730, after=mark)
    mark = len(tg.calls)
    tg.user_message(730, document=data, file_name=name, mime_type=mime)
    answer = await reply(tg, 730, after=mark)
    assert tr("en", "error.photo_n").format(n=2) in text_of(answer)
    assert fragment("en", message_id) in text_of(answer)
    assert jdcloud.received(COMPARE_PATH) == []


async def test_waiting_flow_expires_with_a_message(tg, jdcloud, jumdata) -> None:
    async with run_bot(tg, **cloud_settings(jdcloud, jumdata, flow_timeout=0.5)):
        mark = len(tg.calls)
        tg.user_message(740, text="/compare", language_code="ru")
        prompt = await reply(tg, 740, after=mark)
        expired = await reply(tg, 740, after=prompt.index + 1)
        assert text_of(expired) == tr("ru", "flow.expired")
        mark = len(tg.calls)
        tg.user_message(740, photo=portrait_jpeg(), language_code="ru")
        menu = await reply(tg, 740, after=mark)
        assert fragment("ru", "menu.choose") in text_of(menu)
        # A flow that was finished in time is not "expired" afterwards.
        answer = await compare_two(tg, 741)
        assert answer.method == "sendphoto"
        await asyncio.sleep(0.8)
        assert [
            c for c in tg.sent(741, "sendmessage") if text_of(c) == tr("en", "flow.expired")
        ] == []


# --- faces --------------------------------------------------------------------------------------


@pytest.mark.parametrize("locale", LOCALES)
async def test_faces_boxes_and_counts_five_faces(tg, jumdata, cloud_bot, locale: str) -> None:
    jumdata.script(DETECT_PATH, faces=[{} for _ in range(5)])
    mark = len(tg.calls)
    tg.user_message(
        800, photo=portrait_jpeg(1280, 960), caption="/faces", language_code=LANGUAGE_CODES[locale]
    )
    answer = await reply(tg, 800, after=mark, method="sendphoto")
    text = text_of(answer)
    assert tr(locale, "faces.count").format(count=5) in text
    for n in range(1, 6):
        assert tr(locale, "face.line").format(n=n, details="").strip() in text
    assert fragment(locale, "faces.tip_all") in text
    [request] = jumdata.received(DETECT_PATH)
    assert request.fields["maxFaceNum"] == "120"
    assert set(request.fields["faceField"].split(",")) == {"landmark", "quality"}


async def test_faces_all_asks_for_attributes(tg, jumdata, cloud_bot) -> None:
    mark = len(tg.calls)
    tg.user_message(801, text="/faces all")
    await reply(tg, 801, after=mark)
    mark = len(tg.calls)
    tg.user_message(801, document=portrait_jpeg())
    answer = await reply(tg, 801, after=mark, method="sendphoto")
    [request] = jumdata.received(DETECT_PATH)
    assert {"age", "gender", "expression", "glasses", "mask"} <= set(
        request.fields["faceField"].split(",")
    )
    text = text_of(answer)
    assert tr("en", "attr.male") in text and "about 29 years" in text


async def test_faces_of_a_crowd_stay_readable(tg, jumdata, cloud_bot) -> None:
    jumdata.script(DETECT_PATH, faces=[{} for _ in range(40)])
    mark = len(tg.calls)
    tg.user_message(802, document=portrait_jpeg(1600, 1000), caption="/faces")
    photo = await reply(tg, 802, after=mark, method="sendphoto")
    await reply(tg, 802, after=photo.index, method="sendmessage")
    texts = [text_of(c) for c in tg.sent(802) if c.method in {"sendphoto", "sendmessage"}]
    joined = "\n".join(texts)
    assert tr("en", "faces.count").format(count=40) in joined
    assert tr("en", "face.more").format(count=20) in joined
    assert "#21:" not in joined


async def test_a_big_photo_is_fitted_to_detects_limits(tg, jumdata, cloud_bot) -> None:
    mark = len(tg.calls)
    tg.user_message(803, document=portrait_jpeg(3000, 3000), caption="/faces")
    await reply(tg, 803, after=mark, method="sendphoto")
    [request] = jumdata.received(DETECT_PATH)
    assert request.code == 200


async def test_no_face_found(tg, jumdata, cloud_bot) -> None:
    jumdata.script(DETECT_PATH, faces=[])
    mark = len(tg.calls)
    tg.user_message(804, document=portrait_jpeg(), caption="/faces", language_code="zh-hans")
    answer = await reply(tg, 804, after=mark)
    assert fragment("zh_Hans", "jumdata.detect_no_face") in text_of(answer)


# --- analyze ------------------------------------------------------------------------------------


@pytest.mark.parametrize("locale", LOCALES)
async def test_analyze_in_each_language(tg, jdcloud, cloud_bot, locale: str) -> None:
    jdcloud.script(
        PROP_PATH,
        faces=[{}, {"age": 40, "isFemale": True, "emotion": "高兴", "hasEyeGlasses": True}],
    )
    mark = len(tg.calls)
    tg.user_message(
        900, document=portrait_jpeg(), caption="/analyze", language_code=LANGUAGE_CODES[locale]
    )
    answer = await reply(tg, 900, after=mark, method="sendphoto")
    text = text_of(answer)
    assert tr(locale, "analyze.count").format(count=2) in text
    for message_id in (
        "attr.male",
        "attr.female",
        "emotion.neutral",
        "emotion.happy",
        "attr.glasses",
        "attr.no_glasses",
        "attr.no_mask",
        "attr.no_beard",
    ):
        assert tr(locale, message_id) in text, message_id
    assert tr(locale, "attr.age").format(age=18) in text
    assert tr(locale, "race.asian") not in text  # off unless the operator opts in
    assert ("高兴" not in text and "平静" not in text) or locale == "zh_Hans"
    [request] = jdcloud.received(PROP_PATH)
    assert request.query["maxFaceCount"] == "10"


async def test_analyze_sensitive_attributes_are_opt_in(tg, jdcloud, jumdata) -> None:
    settings = cloud_settings(jdcloud, jumdata, analyze_sensitive_attributes=True)
    async with run_bot(tg, **settings):
        mark = len(tg.calls)
        tg.user_message(901, document=portrait_jpeg(), caption="/analyze")
        answer = await reply(tg, 901, after=mark, method="sendphoto")
    assert tr("en", "race.asian") in text_of(answer)
    assert tr("en", "attr.beauty").format(value=94) in text_of(answer)


async def test_analyze_via_button(tg, jdcloud, cloud_bot) -> None:
    tg.user_message(902, photo=portrait_jpeg())
    menu = await reply(tg, 902, after=0)
    button = next(
        b
        for row in menu.params["reply_markup"]["inline_keyboard"]
        for b in row
        if b["text"] == tr("en", "button.analyze")
    )
    mark = len(tg.calls)
    tg.press_button(902, menu.result, button["callback_data"])
    answer = await reply(tg, 902, after=mark, method="sendphoto")
    assert tr("en", "analyze.count").format(count=1) in text_of(answer)


# --- every way into /faces and /analyze -----------------------------------------------------------

WAYS = ["command_then_photo", "caption", "reply", "button"]
OPERATIONS = {
    "detect": ("/faces", "faces.count", "button.detect"),
    "analyze": ("/analyze", "analyze.count", "button.analyze"),
}


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("operation", sorted(OPERATIONS))
async def test_every_way_in(tg, jdcloud, jumdata, cloud_bot, operation: str, way: str) -> None:
    command, count_id, button_id = OPERATIONS[operation]
    user = 950 + WAYS.index(way)
    photo = portrait_jpeg()
    if way == "command_then_photo":
        mark = len(tg.calls)
        tg.user_message(user, text=command)
        await reply(tg, user, after=mark)
        mark = len(tg.calls)
        target = tg.user_message(user, photo=photo)
    elif way == "caption":
        mark = len(tg.calls)
        target = tg.user_message(user, photo=photo, caption=command)
    elif way == "reply":
        target = tg.user_message(user, photo=photo)
        await reply(tg, user, after=0)
        mark = len(tg.calls)
        tg.user_message(user, text=command, reply_to=target)
    else:
        target = tg.user_message(user, photo=photo)
        menu = await reply(tg, user, after=0)
        button = next(
            b
            for row in menu.params["reply_markup"]["inline_keyboard"]
            for b in row
            if b["text"] == tr("en", button_id)
        )
        mark = len(tg.calls)
        tg.press_button(user, menu.result, button["callback_data"])
    answer = await reply(tg, user, after=mark, method="sendphoto")
    assert tr("en", count_id).format(count=1) in text_of(answer)
    assert answer.params["reply_parameters"]["message_id"] == target["message_id"]
    calls = jumdata.received(DETECT_PATH) if operation == "detect" else jdcloud.received(PROP_PATH)
    assert len(calls) == 1


async def test_every_detect_code_has_its_reply(tg, jumdata, cloud_bot) -> None:
    from services.providers.jumdata_detect import detect_error_for_code

    codes = [201, 400, 404, 500, 601, 602, 603, 604, 606, 607, 609, 610, 999]
    for code in codes:
        expected = detect_error_for_code("jumdata", code, None, charged=False, task_no=None)
        attempts = 3 if expected.retry_safe else 1
        jumdata.script(DETECT_PATH, code=code, times=attempts)
        before = len(jumdata.received(DETECT_PATH))
        mark = len(tg.calls)
        tg.user_message(960, document=portrait_jpeg(), caption="/faces")
        text = text_of(await reply(tg, 960, after=mark))
        assert fragment("en", expected.message_id) in text, (code, text)
        assert len(jumdata.received(DETECT_PATH)) - before == attempts
        await cloud_bot.services.metering.budgets.clear("jumdata")


async def test_bad_first_photo_of_a_compare_is_named(tg, jdcloud, cloud_bot) -> None:
    data, _name, _mime, message_id = BAD_INPUTS["corrupt"]
    answer = await compare_two(tg, 970, first=data)
    assert tr("en", "error.photo_n").format(n=1) in text_of(answer)
    assert fragment("en", message_id) in text_of(answer)
    assert jdcloud.received(COMPARE_PATH) == []
