"""services.pictures.check: the check drawn onto the photo."""

from __future__ import annotations

import io
import math
from typing import Any

import pytest
from PIL import Image, ImageDraw

from services.images import CHECK_LIMITS_JUMDATA, PreparedImage, prepare_image
from services.models import CheckResult, Measurements, Usage
from services.pictures.check import NEUTRAL, _Painter, annotate_check, annotate_check_async
from services.pictures.common import FAIL, PASS
from services.rules import RULES_BY_FIELD, evaluate
from services.specs import Medium, Range, Spec
from services.specs.judge import CropPlan, Judgement, RuleKind, RuleState, judge
from tests.fakes.jumdata import SEED_DETECT_RESULT
from tests.specs import blank_spec

GREY = (128, 128, 128)

# The detect_result example of seed 001 (jumdata ID-photo check).


def grey_photo(size: tuple[int, int] = (600, 800)) -> PreparedImage:
    buffer = io.BytesIO()
    Image.new("RGB", size, GREY).save(buffer, "JPEG", quality=95)
    return prepare_image(buffer.getvalue(), CHECK_LIMITS_JUMDATA)


def result_with(measurements: Measurements) -> CheckResult:
    return CheckResult(
        passed=False,
        reasons=(),
        measurements=measurements,
        outcomes=evaluate(measurements),
        provider="test",
        usage=Usage(charged=False),
    )


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    return image.convert("RGB")


def eye_line_pixel(eyes_y_center: float) -> tuple[int, int, int]:
    photo = grey_photo()
    drawn = decode(annotate_check(photo, result_with(Measurements(eyes_y_center=eyes_y_center))))
    assert drawn.size == (600, 800)
    # Right of the label, which sits at the left end of the line.
    return drawn.getpixel((480, round(eyes_y_center * 800)))  # type: ignore[return-value]


def test_out_of_band_eye_line_is_red() -> None:
    r, g, b = eye_line_pixel(0.70)  # rule: 0.33..0.62

    assert r > 180 and g < 90 and b < 90


def test_in_band_eye_line_is_green() -> None:
    r, g, b = eye_line_pixel(0.50)

    assert g > 150 and r < 110 and b < 130


def test_band_is_drawn_only_where_rules_allow() -> None:
    photo = grey_photo()
    drawn = decode(annotate_check(photo, result_with(Measurements(eyes_y_center=0.70))))

    inside_band = drawn.getpixel((480, round(0.45 * 800)))
    outside_band = drawn.getpixel((480, round(0.20 * 800)))

    assert inside_band != pytest.approx(GREY, abs=6)  # tinted
    assert outside_band == pytest.approx(GREY, abs=6)  # untouched photo


@pytest.mark.parametrize("size", [(600, 800), (333, 517)])
@pytest.mark.parametrize(
    ("face_x", "eyes_y"), [(0.5, 0.5), (0.1, 0.9), (None, 0.45), (0.55, None)]
)
def test_the_bands_tint_the_pixels_an_overlay_would(
    size: tuple[int, int], face_x: float | None, eyes_y: float | None
) -> None:
    """Each stripe tints its own pixels; the result is, pixel for pixel, one see-through
    overlay with both stripes (the eye line's on top) laid on the whole photo."""
    photo = Image.effect_noise(size, 60).convert("RGB")
    result = result_with(Measurements(face_x_center=face_x, eyes_y_center=eyes_y))
    painter = _Painter.on(photo.copy(), result)
    painter._bands()

    overlay = Image.new("RGBA", size, (0, 0, 0, 0))
    shade = ImageDraw.Draw(overlay)
    width, height = size
    for name, box in (
        ("face_x_center", lambda r: (r.low * width, 0, r.high * width, height)),
        ("eyes_y_center", lambda r: (0, r.low * height, width, r.high * height)),
    ):
        if result.measurements.value(name) is not None:
            colour = painter.colour(name)
            shade.rectangle(box(RULES_BY_FIELD[name]), fill=(*colour, 60))
    expected = Image.alpha_composite(photo.convert("RGBA"), overlay).convert("RGB")
    assert painter.image.tobytes() == expected.tobytes()


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((900, 1200), (750, 1000)),  # 1/2 would give 600x800, under 3/4 of 1000: resampled
        ((1200, 1600), (600, 800)),  # 1/2 gives 800, 3/4 of 1000 or more: kept as decoded
    ],
)
def test_seed_example_draws_and_scales_to_max_side(
    size: tuple[int, int], expected: tuple[int, int]
) -> None:
    photo = grey_photo(size)
    result = result_with(Measurements.from_provider(SEED_DETECT_RESULT))

    drawn = decode(annotate_check(photo, result, max_side=1000))

    assert drawn.size == expected
    width, height = expected
    # face_x_occupy 0.637 passes: the face box edge is green; x centre line too.
    left_edge = round((0.513 - 0.637 / 2) * width)
    r, g, _ = drawn.getpixel((left_edge, round(0.70 * height)))  # type: ignore[misc]
    assert g > 150 and r < 110


def test_empty_measurements_return_the_plain_photo() -> None:
    photo = grey_photo()

    drawn = decode(annotate_check(photo, result_with(Measurements())))

    assert drawn.size == (600, 800)
    low, high = zip(*drawn.getextrema(), strict=True)
    assert min(low) >= GREY[0] - 4 and max(high) <= GREY[0] + 4


@pytest.mark.parametrize(
    "measurements",
    [
        Measurements(face_x_center=0.5),
        Measurements(face_x_occupy=0.6),
        Measurements(head_top=0.9, head_chin_y=0.1),  # upside down
        Measurements(face_x_center=5.0, face_x_occupy=-3.0, eyes_y_center=-2.0),
        Measurements(face_x_center=math.nan, eyes_y_center=math.inf),
        Measurements(nose_tip=(1e12, -1e12), head_left=0.0, head_right=1.0),
        Measurements(head_left=0.2),
    ],
)
def test_partial_or_odd_measurements_do_not_crash(measurements: Measurements) -> None:
    drawn = decode(annotate_check(grey_photo(), result_with(measurements)))

    assert drawn.size == (600, 800)


async def test_async_wrapper() -> None:
    data = await annotate_check_async(grey_photo(), result_with(Measurements(eyes_y_center=0.5)))

    assert decode(data).size == (600, 800)


# --------------------------------------------------------------------------- under a spec

def spec(**changes: Any) -> Spec:
    """A print spec that asks for nothing but what ``changes`` set."""
    return blank_spec(**{"medium": Medium.PRINT, **changes})




# A US-passport-like print: 51x51 mm, head 25-35 mm, eyes 28-35 mm above the bottom.
US = spec(
    width_mm=Range(51, 51),
    height_mm=Range(51, 51),
    head_mm=Range(25, 35),
    eyes_mm=Range(28, 35),
)
SIDE = 600  # the square test photo
# The eye band in rows of the square photo, from the bottom: 188.2 .. 270.6.
EYE_BAND = ((1 - 35 / 51) * SIDE, (1 - 28 / 51) * SIDE)
EYE_BAND_MIDDLE = round(sum(EYE_BAND) / 2)  # 229
X = 480  # right of the labels, which sit at the left end of the lines


def judged(photo_spec: Spec, measurements: Measurements) -> tuple[CheckResult, Judgement]:
    return result_with(measurements), judge(photo_spec, measurements)


def square(eyes: float | None, **more: Any) -> Image.Image:
    """The square grey photo with a head from 0.15 to 0.70 (28 mm: inside the head band)
    and the eye line at ``eyes``, drawn under the US-like spec."""
    fields: dict[str, Any] = {
        "head_top": 0.15,
        "head_chin_y": 0.70,
        "eyes_y_center": eyes,
        "size_pix": (SIDE, SIDE),
    }
    fields.update(more)
    result, judgement = judged(US, Measurements(**fields))
    assert judgement.aspect_matches is True
    return decode(annotate_check(grey_photo((SIDE, SIDE)), result, judgement))


def tint(pixel: object) -> tuple[int, int, int]:
    """How far each channel moved from the grey photo."""
    r, g, b = pixel  # type: ignore[misc]
    return (r - GREY[0], g - GREY[1], b - GREY[2])


def is_green(pixel: object) -> bool:
    dr, dg, db = tint(pixel)
    return dg > 8 and dr < -8 and db < -8


def is_red(pixel: object) -> bool:
    dr, dg, db = tint(pixel)
    return dr > 8 and dg < -8 and db < -8


def is_neutral(pixel: object) -> bool:  # NEUTRAL is yellow: red and green up, blue down
    dr, dg, db = tint(pixel)
    return dr > 8 and dg > 8 and db < -8


def test_eye_band_sits_where_the_spec_says_and_is_green_with_the_eyes_inside() -> None:
    drawn = square(eyes=0.40)  # 0.60 of 51 mm above the bottom: 30.6 mm

    assert is_green(drawn.getpixel((X, EYE_BAND_MIDDLE)))
    # Just inside either edge of the band, and just outside it: grey.
    assert is_green(drawn.getpixel((X, math.ceil(EYE_BAND[0]) + 2)))
    assert is_green(drawn.getpixel((X, math.floor(EYE_BAND[1]) - 2)))
    assert drawn.getpixel((X, math.floor(EYE_BAND[0]) - 4)) == pytest.approx(GREY, abs=6)
    assert drawn.getpixel((X, math.ceil(EYE_BAND[1]) + 4)) == pytest.approx(GREY, abs=6)


def test_eye_band_is_red_with_the_eyes_outside() -> None:
    drawn = square(eyes=0.55)  # 22.95 mm above the bottom: below the band

    assert is_red(drawn.getpixel((X, EYE_BAND_MIDDLE)))
    r, g, b = drawn.getpixel((X, round(0.55 * SIDE)))  # type: ignore[misc]
    assert r > 180 and g < 90 and b < 90  # the eye line itself


def test_eye_band_is_neutral_when_the_eyes_were_not_measured() -> None:
    drawn = square(eyes=None)

    assert is_neutral(drawn.getpixel((X, EYE_BAND_MIDDLE)))


def test_crown_band_is_the_head_range_above_the_chin() -> None:
    drawn = square(eyes=0.40)
    chin = 0.70 * SIDE
    crown = (chin - 35 / 51 * SIDE, chin - 25 / 51 * SIDE)  # rows 8.2 .. 125.9

    assert is_green(drawn.getpixel((X, round(sum(crown) / 2))))
    assert is_green(drawn.getpixel((X, math.floor(crown[1]) - 2)))
    assert drawn.getpixel((X, math.ceil(crown[1]) + 4)) == pytest.approx(GREY, abs=6)


def test_crown_band_is_red_when_the_head_is_too_small() -> None:
    drawn = square(eyes=0.40, head_top=0.35)  # 0.35 of 51 mm: 17.9 mm
    chin = 0.70 * SIDE
    middle = round(chin - 30 / 51 * SIDE)

    assert is_red(drawn.getpixel((X, middle)))


def test_generic_bands_give_way_to_the_spec() -> None:
    drawn = square(eyes=0.40, face_x_center=0.5)
    # Row 330: inside the generic eye band (0.33..0.62) but outside every spec band;
    # column 100: inside no generic face-centre band either.
    assert drawn.getpixel((X, 330)) == pytest.approx(GREY, abs=6)
    assert drawn.getpixel((100, 330)) == pytest.approx(GREY, abs=6)


def test_share_bands_are_shares_of_the_height() -> None:
    shares = spec(medium=Medium.DIGITAL, head_share=Range(0.5, 0.69), eyes_share=Range(0.56, 0.69))
    m = Measurements(head_top=0.15, head_chin_y=0.75, eyes_y_center=0.40)
    result, judgement = judged(shares, m)

    drawn = decode(annotate_check(grey_photo(), result, judgement))

    middle = round((1 - (0.56 + 0.69) / 2) * 800)  # 0.60 above the bottom: inside
    assert is_green(drawn.getpixel((X, middle)))


# The 3:4 photo the crop tests draw on, measured at twice its size (as a provider that
# saw the original and not the prepared copy would): the plan is in those pixels.
SOURCE = (1200, 1600)
SCALE = 0.5


def cropped(**fields: Any) -> tuple[Image.Image, CropPlan]:
    m = Measurements(size_pix=SOURCE, face_x_center=0.5, **fields)
    result, judgement = judged(US, m)
    assert judgement.aspect_matches is False
    assert judgement.crop is not None
    return decode(annotate_check(grey_photo(), result, judgement)), judgement.crop


def frame_edges(plan: CropPlan) -> tuple[int, int, int, int]:
    """The frame's outermost pixels in the drawn 600x800 copy: left, top, right, bottom."""
    return (
        round(plan.left * SCALE),
        round(plan.top * SCALE),
        round((plan.left + plan.width) * SCALE) - 1,
        round((plan.top + plan.height) * SCALE) - 1,
    )


def test_crop_frame_is_drawn_at_the_plan_and_green_when_it_works() -> None:
    drawn, plan = cropped(head_top=0.20, head_chin_y=0.55, eyes_y_center=0.38)
    assert plan.feasible
    left, top, right, bottom = frame_edges(plan)
    assert 20 < left < right < 580 and 10 < top < bottom < 790

    row = round((top + bottom) / 2) + 40  # clear of the eye line, whose label is at 0.38
    column = round((left + right) / 2) + 40
    for x, y in ((left + 1, row), (right - 1, row), (column, top + 1), (column, bottom - 1)):
        assert drawn.getpixel((x, y)) == pytest.approx(PASS, abs=40), (x, y)
    assert sum(drawn.getpixel((left - 6, row))) < sum(GREY) - 60  # type: ignore[arg-type]
    assert drawn.getpixel((left + 12, row)) == pytest.approx(GREY, abs=6)  # inside: untouched


def test_bands_are_drawn_inside_the_crop_frame() -> None:
    drawn, plan = cropped(head_top=0.20, head_chin_y=0.55, eyes_y_center=0.38)
    left, top, right, bottom = frame_edges(plan)
    tall = bottom + 1 - top
    # Inside the eye band, clear of the eye line the plan puts in its middle.
    eyes_row = round(top + (1 - (28 + 35) / 2 / 51) * tall) + 15
    eye_rule = {rule.kind: rule for rule in plan.rules}[RuleKind.EYES]
    assert eye_rule.state is RuleState.PASSED

    assert is_green(drawn.getpixel((left + 12, eyes_row)))
    assert is_green(drawn.getpixel((right - 12, eyes_row)))
    # Outside the frame the row is only dimmed, not tinted.
    r, g, b = drawn.getpixel((right + 8, eyes_row))  # type: ignore[misc]
    assert max(r, g, b) - min(r, g, b) < 8 and r < GREY[0] - 20


def test_crop_frame_is_red_when_the_crop_cannot_work() -> None:
    drawn, plan = cropped(head_top=0.02, head_chin_y=0.60, eyes_y_center=0.30)
    assert not plan.feasible
    left, top, right, bottom = frame_edges(plan)

    row = round((top + bottom) / 2) + 40
    x = left + 1 if left > 0 else right - 1
    assert drawn.getpixel((x, row)) == pytest.approx(FAIL, abs=40)


def test_wrong_shape_without_a_crop_draws_no_bands() -> None:
    m = Measurements(size_pix=SOURCE, eyes_y_center=0.5)  # no head: no crop plan
    result, judgement = judged(US, m)
    assert judgement.crop is None

    drawn = decode(annotate_check(grey_photo(), result, judgement))

    assert drawn.getpixel((X, 300)) == pytest.approx(GREY, abs=6)
    r, g, b = drawn.getpixel((X, 400))  # type: ignore[misc]
    assert (r, g, b) == pytest.approx(NEUTRAL, abs=40)  # the eye line: nothing judged it


@pytest.mark.parametrize(
    "measurements",
    [
        Measurements(),
        Measurements(head_top=0.9, head_chin_y=0.1, size_pix=(600, 600)),
        Measurements(head_top=math.nan, head_chin_y=math.inf, eyes_y_center=-3.0),
        Measurements(head_top=0.1, head_chin_y=0.9, face_x_center=0.5, size_pix=(1, 10_000)),
        Measurements(head_top=0.0, head_chin_y=1.0, face_x_center=0.99, size_pix=(600, 800)),
    ],
)
def test_odd_measurements_under_a_spec_do_not_crash(measurements: Measurements) -> None:
    result, judgement = judged(US, measurements)

    drawn = decode(annotate_check(grey_photo(), result, judgement))

    assert drawn.size == (600, 800)


async def test_async_wrapper_passes_the_judgement() -> None:
    result, judgement = judged(US, Measurements(eyes_y_center=0.40, size_pix=(SIDE, SIDE)))

    data = await annotate_check_async(grey_photo((SIDE, SIDE)), result, judgement)

    assert is_green(decode(data).getpixel((X, EYE_BAND_MIDDLE)))
