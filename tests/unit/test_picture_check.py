"""services.pictures.check: the check drawn onto the photo."""

from __future__ import annotations

import io
import math

import pytest
from PIL import Image

from services.images import CHECK_LIMITS_JUMDATA, PreparedImage, prepare_image
from services.models import CheckResult, Measurements, Usage
from services.pictures.check import annotate_check, annotate_check_async
from services.rules import evaluate
from tests.fakes.jumdata import SEED_DETECT_RESULT

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


def test_seed_example_draws_and_scales_to_max_side() -> None:
    photo = grey_photo((1200, 1600))
    result = result_with(Measurements.from_provider(SEED_DETECT_RESULT))

    drawn = decode(annotate_check(photo, result, max_side=1000))

    assert drawn.size == (750, 1000)
    # face_x_occupy 0.637 passes: the face box edge is green; x centre line too.
    left_edge = round((0.513 - 0.637 / 2) * 750)
    r, g, _ = drawn.getpixel((left_edge, round(0.70 * 1000)))  # type: ignore[misc]
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
