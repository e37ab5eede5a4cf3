"""/spec and /check against a document spec, through the real dispatcher (see ``recording``).

The checker is a fake that answers with the measurements each test chooses, so the
replies' numbers are the spec's rules applied to known values.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.methods import EditMessageText, SendMessage, TelegramMethod

from bot.keyboards import PhotoAction, SpecChoice
from services.images import PreparedImage
from services.models import CheckResult, Measurements, Operation, Usage
from services.prefs import Preferences
from services.rules import classify_reason, evaluate
from services.specs import catalogue
from tests.conftest import fragment, portrait_jpeg, tr
from tests.unit.recording import (
    Conversation,
    FakeProvider,
    RecordingSession,
    buttons,
    dispatcher_with,
    replies,
)

# Square, as the US documents are: the judge reads the size, bytes and format off the file
# as sent (``services.operations.as_sent``), not off the fake's profile.
PHOTO = portrait_jpeg(600, 600)
PHONE_PHOTO = portrait_jpeg()  # 3:4


def sized(data: bytes, size: int) -> bytes:
    """The JPEG ``data`` grown to exactly ``size`` bytes with comment segments after SOI."""
    missing = size - len(data)
    assert data[:2] == b"\xff\xd8" and missing >= 4
    segments = []
    while missing:
        total = min(missing, 65_537)  # marker, length and at most 65533 bytes of comment
        if 0 < missing - total < 4:  # leave room for a last segment
            total -= 4
        segments.append(b"\xff\xfe" + (total - 2).to_bytes(2, "big") + b"\0" * (total - 4))
        missing -= total
    return data[:2] + b"".join(segments) + data[2:]


# A square 51x51 mm print that meets the US passport's bands: head 0.55 of the height
# (28 mm), eyes 0.60 above the bottom (30.6 mm), white background, no glasses. The face
# is wider than the generic rule allows (0.70 > 0.64): a generic geometry failure only.
US_GOOD: dict[str, Any] = {
    "face_num": 1,
    "face_x_occupy": 0.70,
    "face_x_center": 0.50,
    "eyes_y_center": 0.40,
    "head_top": 0.15,
    "head_chin_y": 0.70,
    "size_pix": [600, 600],
    "size_mm": [51, 51],
    "dpi": [300, 300],
    "file_size": 200 * 1024,
    "photo_format": "jpg",
    "glasses": "no_glasses",
    "has_hat": 0,
    "background_color": [250, 250, 250],
    "eyes_close": 100,
    "mouth_close": 94,
    "face_occlusion": 100,
    "shoulder_equal": 80,
    "background_clean": 100,
    "face_darkillum": 80,
    "face_unbalance": 83,
}
# The head too small for the US passport: 0.43 of 51 mm is 21.9 mm.
US_SMALL_HEAD = {**US_GOOD, "head_top": 0.30, "head_chin_y": 0.73, "face_x_occupy": 0.60}
# A good photo for the DS-160 upload but the file (at most 240 KB) is 310 KB.
VISA_PROFILE = {**US_GOOD, "face_x_occupy": 0.60}
VISA_TOO_BIG = sized(PHOTO, 310 * 1024)


class FakeChecker(FakeProvider):
    """Answers checks with ``profile``; the generic verdict and reasons as the table says."""

    def __init__(self, name: str = "fake-check") -> None:
        super().__init__(name)
        self.profile: dict[str, Any] = dict(US_GOOD)
        self.estimated: tuple[str, ...] = ()  # as the offline engine marks its glasses

    async def check(self, image: PreparedImage) -> CheckResult:
        self.calls.append(("check", image.data))
        measurements = Measurements.from_provider(self.profile)
        outcomes = evaluate(measurements)
        reasons = tuple(
            classify_reason(
                (o.rule.low_reason if o.message_id == o.rule.low_id else o.rule.high_reason) or ""
            )
            for o in outcomes.values()
            if not o.ok
        )
        return CheckResult(
            passed=not reasons,
            reasons=reasons,
            measurements=measurements,
            outcomes=outcomes,
            provider=self.name,
            usage=Usage(charged=False),
            estimated=self.estimated,
        )


@dataclass
class App:
    dispatcher: Dispatcher
    bot: Bot
    session: RecordingSession
    checker: FakeChecker

    def chat(self, language_code: str = "en") -> Conversation:
        return Conversation(self.dispatcher, self.bot, self.session, language_code=language_code)

    @property
    def preferences(self) -> Preferences:
        preferences: Preferences = self.dispatcher["preferences"]
        return preferences


def build_app(**overrides: Any) -> App:
    checker = FakeChecker()
    providers = {
        op: checker if op is Operation.CHECK else FakeProvider(op.value) for op in Operation
    }
    dispatcher, bot, session = dispatcher_with(providers, **overrides)
    return App(dispatcher, bot, session, checker)


@pytest.fixture
async def app() -> AsyncIterator[App]:
    made = build_app()
    yield made
    await made.dispatcher["timers"].close()


@pytest.fixture
async def default_app() -> AsyncIterator[App]:
    """A bot with ``DEFAULT_SPEC=us-passport``."""
    made = build_app(default_spec="us-passport")
    yield made
    await made.dispatcher["timers"].close()


def text_of(request: TelegramMethod[Any]) -> str:
    return str(getattr(request, "text", None) or getattr(request, "caption", None) or "")


def report_of(requests: list[TelegramMethod[Any]]) -> str:
    return "\n\n".join(text_of(r) for r in replies(requests))


def all_buttons(requests: list[TelegramMethod[Any]]) -> list[tuple[str, str]]:
    return [button for r in replies(requests) for button in buttons(r)]


def pack(action: str, value: str = "", *, fresh: bool = False) -> str:
    return SpecChoice(action=action, value=value, fresh=fresh).pack()


# --- /spec ---------------------------------------------------------------------------------


async def test_spec_code_sets_it_and_check_judges_against_it(app: App) -> None:
    chat = app.chat()
    [answer] = await chat.send("/spec us")
    assert fragment("en", "spec.set") in text_of(answer)
    assert "US passport" in text_of(answer)
    assert await app.preferences.get_spec(chat.user.id) == "us-passport"

    report = report_of(await chat.send(caption="/check", document=PHOTO))
    assert fragment("en", "check.spec.title") in report
    assert "<b>US passport</b>" in report
    assert tr("en", "spec.offer") not in report


async def test_spec_shows_the_choice_with_buttons(app: App) -> None:
    chat = app.chat()
    [answer] = await chat.send("/spec")
    assert tr("en", "spec.none") in text_of(answer)
    data = [callback for _text, callback in buttons(answer)]
    assert data[:4] == [pack("country", c) for c in ("us", "gb", "eu", "cn")]
    assert pack("set", "generic") in data

    [_ack, edit] = replies(await chat.press(pack("country", "us"), under=chat.sent[-1]))
    assert isinstance(edit, EditMessageText)  # inside the /spec menu a press edits it
    assert [c for _t, c in buttons(edit)][:3] == [
        pack("set", spec.id) for spec in catalogue().of_country("us")[:3]
    ]
    await chat.press(pack("set", "us-visa"), under=chat.sent[-1])
    assert await app.preferences.get_spec(chat.user.id) == "us-visa"

    [answer] = await chat.send("/spec")
    assert "US visa (DS-160)" in text_of(answer)


@pytest.mark.parametrize("name", ["германия", "Germany", "德国", "DE"])
async def test_an_office_country_shows_its_documents(app: App, name: str) -> None:
    chat = app.chat(language_code="ru")
    [answer] = await chat.send(f"/spec {name}")
    text = text_of(answer)
    assert fragment("ru", "spec.office.named") in text
    assert "registered photographer" in text  # the authority's reason, as the data file has it
    data = [callback for _text, callback in buttons(answer)]
    assert data[:-1] == [pack("set", spec.id) for spec in catalogue().of_country("de")]
    assert await app.preferences.get_spec(chat.user.id) is None


async def test_an_unknown_code_suggests_and_costs_nothing(app: App) -> None:
    chat = app.chat()
    [answer] = await chat.send("/spec us-pasport")
    assert fragment("en", "spec.unknown") in text_of(answer)
    assert "/spec us-passport" in text_of(answer)

    requests = await chat.send(caption="/check xx-nothing", document=PHOTO)
    [answer] = replies(requests)
    assert fragment("en", "spec.unknown") in text_of(answer)
    assert "xx-nothing" in text_of(answer)
    assert app.checker.calls == []
    assert app.session.downloads == []


async def test_spec_generic_goes_back(app: App) -> None:
    chat = app.chat()
    await chat.send("/spec cn")
    assert await app.preferences.get_spec(chat.user.id) == "cn-passport"
    [answer] = await chat.send("/spec generic")
    assert text_of(answer) == tr("en", "spec.set.generic")
    # Chosen outright: not None, which is "never chose" and would take DEFAULT_SPEC.
    assert await app.preferences.get_spec(chat.user.id) == "generic"
    assert (f"✓ {tr('en', 'button.spec.generic')}", pack("set", "generic")) in buttons(answer)
    report = report_of(await chat.send(caption="/check", document=PHOTO))
    assert fragment("en", "check.spec.title") not in report
    assert tr("en", "spec.offer") not in report  # a choice was made


# --- /check with a spec ----------------------------------------------------------------------


async def test_check_with_a_code_does_not_change_the_choice(app: App) -> None:
    chat = app.chat()
    await chat.send("/spec us")
    app.checker.profile = VISA_PROFILE
    report = report_of(await chat.send(caption="/check us-visa", document=VISA_TOO_BIG))
    assert "US visa (DS-160)" in report
    assert "File 310 KB, needs at most 240 KB" in report
    assert tr("en", "check.verdict.fail") in report
    assert await app.preferences.get_spec(chat.user.id) == "us-passport"


async def test_waiting_flow_and_reply_take_the_code(app: App) -> None:
    chat = app.chat()
    await chat.send("/check us-visa")
    report = report_of(await chat.send(document=PHOTO))
    assert "US visa (DS-160)" in report

    photo = await chat.send(photo=PHOTO)
    assert app.checker.calls and len(app.checker.calls) == 1
    del photo
    report = report_of(await chat.send("/check us", reply_to=chat.sent[-1]))
    assert "<b>US passport</b>" in report


async def test_nothing_chosen_offers_the_spec_buttons(app: App) -> None:
    chat = app.chat()
    requests = await chat.send(caption="/check", document=PHOTO)
    report = report_of(requests)
    assert tr("en", "spec.offer") in report
    assert fragment("en", "check.spec.title") not in report
    # Marked as under a report: a press answers with a new message (see below).
    assert pack("country", "us", fresh=True) in [c for _t, c in all_buttons(requests)]


async def test_only_generic_geometry_broke_so_the_spec_passes(app: App) -> None:
    chat = app.chat()
    generic = report_of(await chat.send(caption="/check", document=PHOTO))
    assert tr("en", "check.verdict.fail") in generic
    assert tr("en", "reason.face_too_large") in generic

    await chat.send("/spec us")
    report = report_of(await chat.send(caption="/check", document=PHOTO))
    assert tr("en", "check.verdict.pass") in report
    assert tr("en", "reason.face_too_large") not in report
    assert tr("en", "values.title") in report  # the measured values stay


async def test_quality_reasons_still_fail_under_a_spec(app: App) -> None:
    chat = app.chat()
    await chat.send("/spec us")
    app.checker.profile = {**US_GOOD, "eyes_close": 20}
    report = report_of(await chat.send(caption="/check", document=PHOTO))
    assert tr("en", "check.verdict.fail") in report
    assert tr("en", "reason.eyes_closed") in report


@pytest.mark.parametrize(
    ("language_code", "locale", "line"),
    [
        ("en", "en", "Head height 21.9 mm, needs 25–35 mm"),
        ("ru", "ru", "Высота головы 21.9 мм, нужно 25–35 мм"),
    ],
)
async def test_failed_spec_rules_in_the_documents_units(
    app: App, language_code: str, locale: str, line: str
) -> None:
    chat = app.chat(language_code=language_code)
    await chat.send("/spec us")
    app.checker.profile = US_SMALL_HEAD
    report = report_of(await chat.send(caption="/check", document=PHOTO))
    assert tr(locale, "check.verdict.fail") in report
    assert line in report


GLASSES_ON = {**US_GOOD, "glasses": "normal_glasses"}


@pytest.mark.parametrize(
    ("language_code", "locale", "warning", "marked"),
    [
        (
            "en",
            "en",
            "The photo seems to show glasses (the offline check is not certain of this): "
            "this document does not allow them, so take them off if you wear them.",
            "Glasses: glasses (estimate)",
        ),
        (
            "ru",
            "ru",
            "Похоже, на фото очки (офлайн-проверка в этом не уверена): этот документ их "
            "не допускает, так что снимите их, если вы в очках.",
            "Очки: обычные очки (оценка)",
        ),
        (
            "zh-hans",
            "zh_Hans",
            "照片中似乎戴着眼镜（离线检查对此不确定）：该证件不允许佩戴眼镜，如果戴着请摘下。",
            "眼镜：普通眼镜（估计）",
        ),
    ],
    ids=["en", "ru", "zh_Hans"],
)
async def test_estimated_glasses_warn_instead_of_failing(
    app: App, language_code: str, locale: str, warning: str, marked: str
) -> None:
    """The check service hands ``CheckResult.estimated`` to the judge: the US passport bans
    glasses, but glasses the offline engine only estimated do not fail the photo."""
    chat = app.chat(language_code=language_code)
    await chat.send("/spec us")
    app.checker.profile = GLASSES_ON
    app.checker.estimated = ("glasses",)
    report = report_of(await chat.send(caption="/check", document=PHOTO))
    assert tr(locale, "check.verdict.pass") in report
    assert "• " + warning in report
    assert marked in report.split("\n")
    assert tr(locale, "spec.rule.glasses") not in report
    assert tr(locale, "check.note.glasses_estimated") not in report  # the spec's line says it


async def test_measured_glasses_still_fail_a_banning_spec(app: App) -> None:
    chat = app.chat()
    await chat.send("/spec us")
    app.checker.profile = GLASSES_ON
    report = report_of(await chat.send(caption="/check", document=PHOTO))
    assert tr("en", "check.verdict.fail") in report
    assert "• Glasses are not allowed for this document." in report
    assert "Glasses: glasses" in report.split("\n")
    assert "(estimate)" not in report
    assert "offline check is not certain" not in report


async def test_kb_line_in_russian(app: App) -> None:
    chat = app.chat(language_code="ru")
    app.checker.profile = VISA_PROFILE
    report = report_of(await chat.send(caption="/check ds-160", document=VISA_TOO_BIG))
    assert "Файл 310 КБ, нужно не больше 240 КБ" in report


async def test_wrong_shape_says_so_with_the_crop(app: App) -> None:
    chat = app.chat()
    await chat.send("/spec us")
    report = report_of(await chat.send(caption="/check", document=PHONE_PHOTO))
    assert "This photo is 3:4; a <b>US passport</b> photo is square" in report
    crop_messages = ("spec.crop.ok", "spec.crop.near_edge", "spec.crop.proportions")
    assert any(fragment("en", m) in report for m in crop_messages)


async def test_an_office_spec_never_reaches_the_provider(app: App) -> None:
    chat = app.chat()
    requests = await chat.send(caption="/check de-passport", document=PHOTO)
    [answer] = replies(requests)
    assert fragment("en", "spec.office.named") in text_of(answer)
    assert app.checker.calls == []
    assert app.session.downloads == []


async def test_the_menus_check_button_uses_the_chosen_document(app: App) -> None:
    chat = app.chat()
    await chat.send(photo=PHOTO)
    generic = report_of(
        await chat.press(PhotoAction(operation=Operation.CHECK).pack(), under=chat.sent[-1])
    )
    assert tr("en", "spec.offer") in generic

    await chat.send("/spec us")
    await chat.send(photo=PHOTO)
    report = report_of(
        await chat.press(PhotoAction(operation=Operation.CHECK).pack(), under=chat.sent[-1])
    )
    assert "<b>US passport</b>" in report
    assert tr("en", "spec.offer") not in report


# --- the review's cases ---------------------------------------------------------------------


async def test_a_country_pressed_under_a_report_answers_with_a_new_message(app: App) -> None:
    """The offer's buttons sit under the check reply (here a photo's caption, which cannot
    become text): a press sends the country's documents and leaves the report alone."""
    chat = app.chat()
    requests = await chat.send(caption="/check", document=PHOTO)
    assert tr("en", "spec.offer") in report_of(requests)
    data = pack("country", "us", fresh=True)
    assert data in [c for _t, c in all_buttons(requests)]

    pressed = replies(await chat.press(data, under=chat.sent[-1]))
    assert not any(isinstance(r, EditMessageText) for r in pressed)
    [menu] = [r for r in pressed if isinstance(r, SendMessage)]
    assert menu.chat_id == chat.chat.id
    assert text_of(menu) == tr("en", "spec.country").format(country="🇺🇸 US")
    assert [c for _t, c in buttons(menu)][:3] == [
        pack("set", spec.id) for spec in catalogue().of_country("us")[:3]
    ]
    # The new message is the /spec menu: its own presses edit it.
    [_ack, edit] = replies(await chat.press(pack("set", "us-visa"), under=chat.sent[-1]))
    assert isinstance(edit, EditMessageText)
    assert await app.preferences.get_spec(chat.user.id) == "us-visa"


async def test_generic_pressed_under_a_report_answers_with_a_new_message(app: App) -> None:
    chat = app.chat()
    await chat.send(caption="/check", document=PHOTO)
    pressed = replies(await chat.press(pack("set", "generic", fresh=True), under=chat.sent[-1]))
    [answer] = [r for r in pressed if isinstance(r, SendMessage)]
    assert text_of(answer) == tr("en", "spec.set.generic")
    assert not any(isinstance(r, EditMessageText) for r in pressed)
    assert await app.preferences.get_spec(chat.user.id) == "generic"


async def test_generic_chosen_outright_beats_the_default(default_app: App) -> None:
    app = default_app
    chat = app.chat()
    # Never chose: the default, and no offer.
    report = report_of(await chat.send(caption="/check", document=PHOTO))
    assert "<b>US passport</b>" in report
    assert tr("en", "spec.offer") not in report

    [answer] = await chat.send("/spec generic")
    assert text_of(answer) == tr("en", "spec.set.generic")
    generic = f"✓ {tr('en', 'button.spec.generic')}"
    assert (generic, pack("set", "generic")) in buttons(answer)
    assert await app.preferences.get_spec(chat.user.id) == "generic"

    report = report_of(await chat.send(caption="/check", document=PHOTO))
    assert fragment("en", "check.spec.title") not in report
    assert "US passport" not in report
    assert tr("en", "spec.offer") not in report
    assert tr("en", "reason.face_too_large") in report  # the generic check's own reason

    [shown] = await chat.send("/spec")
    assert tr("en", "spec.none") in text_of(shown)
    assert (generic, pack("set", "generic")) in buttons(shown)

    # And the way back to a document.
    await chat.send("/spec us-visa")
    assert "US visa (DS-160)" in report_of(await chat.send(caption="/check", document=PHOTO))


async def test_a_kb_over_the_limit_is_never_shown_as_the_limit(app: App) -> None:
    chat = app.chat()
    app.checker.profile = VISA_PROFILE
    over = sized(PHOTO, round(240.4 * 1024))
    report = report_of(await chat.send(caption="/check us-visa", document=over))
    assert "File 240.4 KB, needs at most 240 KB" in report

    barely = sized(PHOTO, 240 * 1024 + 20)  # 240.02 KB: one decimal would be "240.0"
    report = report_of(await chat.send(caption="/check us-visa", document=barely))
    assert "File 240.1 KB, needs at most 240 KB" in report


async def test_a_skull_spec_shows_the_authoritys_head_band(app: App) -> None:
    """Schengen: 32–36 mm to the skull. The judge allowed 0.04 of the height for hair
    (up to 37.8 mm), but the reply gives the authority's numbers and says hair was allowed."""
    chat = app.chat()
    app.checker.profile = {**US_GOOD, "head_top": 0.08, "head_chin_y": 0.935}  # 38.5 mm
    report = report_of(await chat.send(caption="/check schengen", document=portrait_jpeg(700, 900)))
    assert "Head height 38.5 mm, needs 32–36 mm" in report
    assert "37.8" not in report
    assert tr("en", "spec.hair_allowance") in report


async def test_a_spec_without_a_head_band_keeps_the_generic_face_size(app: App) -> None:
    """tr-passport gives a print size but no head band: the generic "face too small"
    stands (only what a spec judges gives way: ``Judgement.replaces``)."""
    chat = app.chat()
    app.checker.profile = {**US_GOOD, "face_x_occupy": 0.40}
    report = report_of(
        await chat.send(caption="/check tr-passport", document=portrait_jpeg(500, 600))
    )
    assert fragment("en", "check.spec.title") in report
    assert tr("en", "reason.face_too_small") in report
    assert tr("en", "check.verdict.fail") in report


async def test_a_background_of_no_named_colour_is_not_given_a_name(app: App) -> None:
    chat = app.chat()
    app.checker.profile = {**US_GOOD, "background_color": [40, 160, 60]}  # green
    report = report_of(await chat.send(caption="/check us-passport", document=PHOTO))
    assert "Background of another colour, needs white or off-white" in report


async def test_an_unmeasured_head_on_the_wrong_shape_is_listed_as_not_checked(app: App) -> None:
    chat = app.chat()
    profile = {k: v for k, v in US_GOOD.items() if k not in ("head_top", "head_chin_y")}
    app.checker.profile = {**profile, "eyes_y_center": None}
    report = report_of(await chat.send(caption="/check us-passport", document=PHONE_PHOTO))
    assert "This photo is 3:4; a <b>US passport</b> photo is square" in report
    assert tr("en", "spec.not_checked").format(rules="head height, eye line") in report


async def test_a_renamed_spec_in_a_waiting_flow_falls_back_to_the_generic_check(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    chat = app.chat()
    await chat.send("/check us-visa")
    await chat.state.update_data(spec="us-visa-renamed")  # as a deploy would leave it
    report = report_of(await chat.send(document=PHOTO))
    assert tr("en", "check.verdict.fail") in report
    assert fragment("en", "check.spec.title") not in report
    assert "us-visa-renamed" in caplog.text
