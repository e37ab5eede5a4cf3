"""Replies as users read them (English): escaping, rule values, face-quality guidance."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.i18n import create_i18n
from bot.render import analyze_report, check_report, detect_report, error_text
from bot.render.spec import authority_bound, away_from, judgement_lines
from services.errors import ProviderError
from services.images import ImageInfo, PreparedImage
from services.models import (
    Box,
    CheckResult,
    Face,
    FaceQuality,
    FacesResult,
    Measurements,
    Usage,
)
from services.operations import FacesOutcome
from services.rules import classify_reason, evaluate
from services.specs import GlassesRule, Range, catalogue
from services.specs.judge import Judgement, RuleKind, judge
from tests.conftest import tr
from tests.specs import blank_spec

IMAGE = PreparedImage(
    data=b"",
    format="JPEG",
    width=600,
    height=800,
    original=ImageInfo("JPEG", 600, 800, 1, 1, None, "RGB", False),
    changes=frozenset(),
)


@pytest.fixture(autouse=True)
def english() -> Iterator[None]:
    with create_i18n("en").context():
        yield


def check(measurements: Measurements, *reason_texts: str, outcomes: bool = True) -> list[str]:
    result = CheckResult(
        passed=False,
        reasons=tuple(classify_reason(text) for text in reason_texts),
        measurements=measurements,
        outcomes=evaluate(measurements) if outcomes else {},
        provider="jumdata",
        usage=Usage(charged=True),
    )
    return check_report(result, IMAGE, compressed=False)


def faces_line(quality: FaceQuality) -> str:
    face = Face(Box(0, 0, 10, 10), quality=quality)
    outcome = FacesOutcome(
        FacesResult((face,), "jdcloud", Usage(charged=True)), (face,), IMAGE, b""
    )
    return detect_report(outcome, attributes=False)[0].split("\n")[1]


def test_unknown_reason_text_is_escaped() -> None:
    verdict = check(Measurements(), "<b>odd</b> & co")[0]
    assert "«&lt;b&gt;odd&lt;/b&gt; &amp; co»" in verdict
    assert "<b>odd" not in verdict


def test_reason_shows_the_value_and_the_bound_it_broke() -> None:
    verdict = check(Measurements(face_x_occupy=0.48), "脸部太小")[0]
    assert "• The face is too small in the frame — face width 0.48, needs at least 0.51" in (
        verdict.split("\n")
    )
    too_large = check(Measurements(face_x_occupy=0.7), "脸部太大")[0]
    assert "face width 0.7, needs at most 0.64" in too_large


def test_reason_and_marks_come_from_the_result_outcomes() -> None:
    """Render reads ``result.outcomes``; it does not apply the rules again."""
    sections = check(Measurements(face_x_occupy=0.48), "脸部太小", outcomes=False)
    assert sections[0].split("\n")[-1] == "• The face is too small in the frame"
    assert sections[1] == "<b>Measured</b>\nFace: width 0.48"


def test_blur_above_0_7_is_blurry() -> None:
    assert faces_line(FaceQuality(blur=0.71)) == "#1: blurry (0.71)"
    assert faces_line(FaceQuality(blur=0.7)) == "#1: sharp"


def test_light_under_40_is_too_dark() -> None:
    assert faces_line(FaceQuality(illumination=39)) == "#1: too dark (39/255)"
    assert faces_line(FaceQuality(illumination=40)) == "#1: light 40/255"


def test_a_part_more_than_0_6_occluded_is_covered() -> None:
    quality = FaceQuality(occlusion={"mouth": 0.6, "nose": 0.61, "chin_contour": 0.9})
    assert faces_line(quality) == "#1: covered: nose, chin"
    assert faces_line(FaceQuality(occlusion={"nose": 0.6})) == "#1: no details"


@pytest.mark.parametrize("demographics", [True, False])
def test_analyze_says_what_the_offline_engine_estimates(demographics: bool) -> None:
    face = Face(Box(0, 0, 10, 10), smile=80)
    result = FacesResult((face,), "local", Usage(charged=False), demographics=demographics)
    notes = analyze_report(FacesOutcome(result, (face,), IMAGE, b""), sensitive=False)[-1]
    assert ("estimates age and gender" in notes) is not demographics
    assert ("it does not read emotion" in notes) is not demographics


def test_provider_code_is_escaped_in_an_error() -> None:
    text = error_text(ProviderError("jumdata", code="<60&3>"))
    assert text.endswith("\n<i>jumdata code &lt;60&amp;3&gt;</i>")


# --- file sizes and spec bounds ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "bound", "shown"),
    [
        (240.4, Range(0, 240), 240.4),  # a decimal where the size has one
        (240.02, Range(0, 240), 240.1),  # never "240.0" over a 240 limit
        (239.97, Range(0, 240), 240.0),  # a passing value may round onto its bound
        (9.98, Range(10, 300), 9.9),  # under a minimum too
        (310.0, Range(0, 240), 310.0),
    ],
)
def test_a_failing_value_never_rounds_onto_its_bound(
    value: float, bound: Range, shown: float
) -> None:
    assert away_from(value, bound, 0.1) == pytest.approx(shown)


def test_the_measured_file_size_has_a_decimal_when_it_is_not_whole() -> None:
    photo = check(Measurements(file_size=round(240.4 * 1024)))[1].split("\n")[-1]
    assert photo == "Photo: 240.4 KB"
    assert check(Measurements(file_size=310 * 1024))[1].split("\n")[-1] == "Photo: 310 KB"


def test_a_skull_spec_shows_the_authoritys_band() -> None:
    """The judge widened Schengen's 32–36 mm for hair; the reply gives 32–36 mm."""
    spec = catalogue().get("schengen")
    judgement = judge(spec, Measurements(head_top=0.08, head_chin_y=0.935, size_pix=(700, 900)))
    [head] = [rule for rule in judgement.rules if rule.kind is RuleKind.HEAD]
    assert head.allows_hair and head.bound is not None and head.bound.high > 36
    assert authority_bound(head, spec) == Range(32, 36)
    lines = judgement_lines(judgement)
    assert "• Head height 38.5 mm, needs 32–36 mm" in lines
    assert tr("en", "spec.hair_allowance") in lines


# --- glasses the offline engine only estimated (``CheckResult.estimated``) ----------------------

BANNED_EN = (
    "The photo seems to show glasses (the offline check is not certain of this): "
    "this document does not allow them, so take them off if you wear them."
)
UNREMOVABLE_EN = (
    "The photo seems to show glasses (the offline check is not certain of this): this document "
    "allows them only if they cannot be removed (for medical reasons), so take them off if you can."
)
NOTE_EN = (
    "The photo seems to show glasses (the offline check is not certain of this): "
    "many documents do not allow them, so take them off if you wear them."
)

# locale, "no glasses" and "glasses" as the measured values show an estimate, the spec
# warnings (banned, unremovable only) and the generic note.
ESTIMATES = [
    (
        "en",
        "Glasses: none (estimate)",
        "Glasses: glasses (estimate)",
        BANNED_EN,
        UNREMOVABLE_EN,
        NOTE_EN,
    ),
    (
        "ru",
        "Очки: нет (оценка)",
        "Очки: обычные очки (оценка)",
        "Похоже, на фото очки (офлайн-проверка в этом не уверена): этот документ их "
        "не допускает, так что снимите их, если вы в очках.",
        "Похоже, на фото очки (офлайн-проверка в этом не уверена): этот документ допускает их, "
        "только если их нельзя снять (по медицинским причинам), так что снимите их, если можете.",
        "Похоже, на фото очки (офлайн-проверка в этом не уверена): многие документы их "
        "не допускают, так что снимите их, если вы в очках.",
    ),
    (
        "zh_Hans",
        "眼镜：未佩戴（估计）",
        "眼镜：普通眼镜（估计）",
        "照片中似乎戴着眼镜（离线检查对此不确定）：该证件不允许佩戴眼镜，如果戴着请摘下。",
        "照片中似乎戴着眼镜（离线检查对此不确定）：该证件仅在无法摘下眼镜（医疗原因）时才允许佩戴，"
        "能摘下请摘下。",
        "照片中似乎戴着眼镜（离线检查对此不确定）：许多证件不允许佩戴眼镜，如果戴着请摘下。",
    ),
]
ESTIMATE_MARKERS = ("(estimate)", "(оценка)", "（估计）")


def glasses_result(
    glasses: str, *, estimated: tuple[str, ...] = ("glasses",), provider: str = "local"
) -> CheckResult:
    """A passing check that measured only the glasses (and no head covering)."""
    measurements = Measurements(glasses=glasses, has_hat=False)
    return CheckResult(
        passed=True,
        reasons=(),
        measurements=measurements,
        outcomes=evaluate(measurements),
        provider=provider,
        usage=Usage(charged=False),
        estimated=estimated,
    )


def glasses_judgement(
    rule: GlassesRule, glasses: str, estimated: tuple[str, ...] = ("glasses",)
) -> Judgement:
    measurements = Measurements(glasses=glasses, has_hat=False)
    return judge(blank_spec(glasses=rule), measurements, estimated=estimated)


ESTIMATE_ARGS = ("locale", "none", "seen", "banned", "unremovable", "note")


@pytest.mark.parametrize(ESTIMATE_ARGS, ESTIMATES, ids=[e[0] for e in ESTIMATES])
def test_estimated_glasses_are_marked_in_the_values(
    locale: str, none: str, seen: str, banned: str, unremovable: str, note: str
) -> None:
    with create_i18n(locale).context():
        nothing = check_report(glasses_result("no_glasses"), IMAGE, compressed=False)
        found = check_report(glasses_result("normal_glasses"), IMAGE, compressed=False)
    assert nothing[1].split("\n")[1:] == [none]
    assert found[1].split("\n")[1:] == [seen]


@pytest.mark.parametrize(ESTIMATE_ARGS, ESTIMATES, ids=[e[0] for e in ESTIMATES])
def test_estimated_glasses_are_a_note_in_the_generic_reply(
    locale: str, none: str, seen: str, banned: str, unremovable: str, note: str
) -> None:
    with create_i18n(locale).context():
        found = check_report(glasses_result("normal_glasses"), IMAGE, compressed=False)
        nothing = check_report(glasses_result("no_glasses"), IMAGE, compressed=False)
        passed = tr(locale, "check.verdict.pass")
    assert found[0] == "<b>" + passed + "</b>"  # not a failed reason
    assert found[-1].startswith("<i>" + note + "\n")
    assert note not in "\n".join(nothing)


@pytest.mark.parametrize(ESTIMATE_ARGS, ESTIMATES, ids=[e[0] for e in ESTIMATES])
def test_estimated_glasses_warn_under_a_spec(
    locale: str, none: str, seen: str, banned: str, unremovable: str, note: str
) -> None:
    with create_i18n(locale).context():
        banning = judgement_lines(glasses_judgement(GlassesRule.BANNED, "normal_glasses"))
        medical = judgement_lines(glasses_judgement(GlassesRule.UNREMOVABLE_ONLY, "normal_glasses"))
        clear = judgement_lines(glasses_judgement(GlassesRule.BANNED, "no_glasses"))
    assert banning == ["• " + banned]
    assert medical == ["• " + unremovable]
    assert clear == []


def test_a_spec_reply_warns_of_estimated_glasses_once() -> None:
    result = glasses_result("normal_glasses")
    judgement = glasses_judgement(GlassesRule.BANNED, "normal_glasses")
    assert judgement.passed
    sections = check_report(result, IMAGE, compressed=False, judgement=judgement, passed=True)
    verdict = sections[0].split("\n")
    assert verdict[0] == "<b>✅ Meets the ID-photo rules</b>"
    assert "• " + BANNED_EN in verdict
    assert sections[1] == "<b>Measured</b>\nGlasses: glasses (estimate)"
    assert NOTE_EN not in sections[-1]


def test_cloud_glasses_are_neither_marked_nor_warned_of() -> None:
    """A cloud provider estimates nothing: the reply is as it always was."""
    for glasses, line in (("no_glasses", "Glasses: none"), ("normal_glasses", "Glasses: glasses")):
        sections = check_report(
            glasses_result(glasses, estimated=(), provider="jumdata"), IMAGE, compressed=False
        )
        assert sections[1] == "<b>Measured</b>\n" + line
        assert NOTE_EN not in sections[-1]
        assert not any(marker in "\n".join(sections) for marker in ESTIMATE_MARKERS)
    banning = judgement_lines(glasses_judgement(GlassesRule.BANNED, "normal_glasses", ()))
    assert banning == ["• Glasses are not allowed for this document."]
    medical = judgement_lines(glasses_judgement(GlassesRule.UNREMOVABLE_ONLY, "normal_glasses", ()))
    assert medical == [
        "• Glasses are allowed for this document only if they cannot be removed "
        "(for medical reasons): take them off if you can."
    ]
