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
from services.specs import Range, catalogue
from services.specs.judge import RuleKind, judge
from tests.conftest import tr

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
def test_analyze_says_when_age_and_gender_were_not_estimated(demographics: bool) -> None:
    face = Face(Box(0, 0, 10, 10), smile=80)
    result = FacesResult((face,), "local", Usage(charged=False), demographics=demographics)
    notes = analyze_report(FacesOutcome(result, (face,), IMAGE, b""), sensitive=False)[-1]
    assert ("does not estimate age, gender or emotion" in notes) is not demographics


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
