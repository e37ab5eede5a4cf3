"""The providers' documented numbers, pinned at their bounds.

Every number below is copied from a seed document (/work/shared/seeds, indexed by its
README) and written here as a literal, so that moving a bound in the code by 0.01, one
pixel or one byte turns a test red. Behaviour is tested at the bound rather than the
constant wherever there is behaviour to test: a value exactly at a bound passes, a value
0.005 beyond it fails on the right side; a photo exactly at a pixel limit is sent
untouched, one pixel more is reduced.

Seeds: 001 jumdata ID-photo check, 000 the same check on the Huawei marketplace,
003 jumdata face detect, 002 JD Cloud face attributes, 004 JD Cloud face compare.
"""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator
from typing import Any

import pytest
from PIL import Image

from services import exif
from services.errors import ImageError, ImageProblem
from services.images import (
    CHECK_LIMITS_JUMDATA,
    Change,
    ImageLimits,
    PreparedImage,
    prepare_image,
)
from services.models import JDCLOUD_THRESHOLDS, Measurements, Verdict
from services.providers.huawei import HuaweiChecker
from services.providers.jdcloud import JDCLOUD_LIMITS, MAX_FACE_COUNT, JdCloudClient
from services.providers.jumdata import JumdataChecker
from services.providers.jumdata_detect import (
    DETECT_LIMITS_JUMDATA,
    MAX_FACE_NUM,
    JumdataDetector,
    detect_limits_for,
)
from services.rules import RULES, RuleOutcome, Side, classify_reason, evaluate
from tests.fakes.jdcloud import PROP_PATH, FakeJdCloud
from tests.fakes.jumdata import DETECT_PATH, FakeJumdata

MB = 1024 * 1024  # the project reads the seeds' "MB"/"m" as MiB throughout
STEP = 0.005  # half of the smallest move (0.01) the tests must catch

# ------------------------------------------------------------------ the rule table

# (field, lower bound, reason below it, message id, upper bound, reason above it, message id)
# Seeds 001 and 000 (identical text), the ``detect_result`` comments, e.g.
# ``"face_x_occupy": 0.637,//>= 0.51 脸部太小 <= 0.64 脸部太大``.
DOCUMENTED_RULES: list[tuple[str, float, str, str, float | None, str | None, str | None]] = [
    # seed 001/000: "face_unbalance": 83,//>= 50 光照不均匀
    ("face_unbalance", 50, "光照不均匀", "reason.uneven_lighting", None, None, None),
    # seed 001/000: "face_x_occupy": 0.637,//>= 0.51 脸部太小 <= 0.64 脸部太大
    (
        "face_x_occupy",
        0.51,
        "脸部太小",
        "reason.face_too_small",
        0.64,
        "脸部太大",
        "reason.face_too_large",
    ),
    # seed 001/000: "face_occlusion": 100, ... >= 80 脸部被遮挡
    ("face_occlusion", 80, "脸部被遮挡", "reason.face_covered", None, None, None),
    # seed 001/000: "shoulder_equal": 46, ... >= 50 两侧肩膀姿态不佳
    ("shoulder_equal", 50, "两侧肩膀姿态不佳", "reason.shoulders_not_level", None, None, None),
    # seed 001/000: "eyes_close": 100, ... >= 80 闭眼
    ("eyes_close", 80, "闭眼", "reason.eyes_closed", None, None, None),
    # seed 001/000: "eyes_y_center": 0.502, ... >= 0.33 脸部太靠上<= 0.62 脸部太靠下
    (
        "eyes_y_center",
        0.33,
        "脸部太靠上",
        "reason.face_too_high",
        0.62,
        "脸部太靠下",
        "reason.face_too_low",
    ),
    # seed 001/000: "mouth_close": 94, ... >= 60 嘴巴张开过大
    ("mouth_close", 60, "嘴巴张开过大", "reason.mouth_open", None, None, None),
    # seed 001/000: "face_x_center": 0.513, ... >= 0.47 脸部太靠左<= 0.525 脸部太靠右
    (
        "face_x_center",
        0.47,
        "脸部太靠左",
        "reason.face_too_far_left",
        0.525,
        "脸部太靠右",
        "reason.face_too_far_right",
    ),
    # seed 001/000: "background_clean": 100, ... >= 60 背景杂乱
    ("background_clean", 60, "背景杂乱", "reason.background_cluttered", None, None, None),
    # seed 001/000: "face_darkillum": 80 //>= 60 照片过暗
    ("face_darkillum", 60, "照片过暗", "reason.too_dark", None, None, None),
]

LOW_BOUNDS = [(r[0], r[1], r[3]) for r in DOCUMENTED_RULES]
HIGH_BOUNDS = [(r[0], r[4], r[6]) for r in DOCUMENTED_RULES if r[4] is not None]
REASONS = [(r[2], r[3], r[0]) for r in DOCUMENTED_RULES] + [
    (r[5], r[6], r[0]) for r in DOCUMENTED_RULES if r[5] is not None
]


def outcome_of(field: str, value: float) -> RuleOutcome:
    only: dict[str, Any] = {field: value}
    outcomes = evaluate(Measurements(**only))
    assert set(outcomes) == {field}, "only the measured field is judged"
    return outcomes[field]


def test_every_documented_rule_is_in_the_table_and_nothing_else() -> None:
    assert {rule.field for rule in RULES} == {r[0] for r in DOCUMENTED_RULES}


@pytest.mark.parametrize(("field", "bound", "message_id"), LOW_BOUNDS)
def test_lower_bound_passes_at_the_bound(field: str, bound: float, message_id: str) -> None:
    outcome = outcome_of(field, bound)
    assert outcome.ok, f"{field} = {bound} is documented as passing"
    assert outcome.message_id is None


@pytest.mark.parametrize(("field", "bound", "message_id"), LOW_BOUNDS)
def test_lower_bound_fails_just_below(field: str, bound: float, message_id: str) -> None:
    outcome = outcome_of(field, bound - STEP)
    assert outcome.broken is Side.LOW
    assert outcome.message_id == message_id


@pytest.mark.parametrize(("field", "bound", "message_id"), HIGH_BOUNDS)
def test_upper_bound_passes_at_the_bound(field: str, bound: float, message_id: str) -> None:
    outcome = outcome_of(field, bound)
    assert outcome.ok, f"{field} = {bound} is documented as passing"


@pytest.mark.parametrize(("field", "bound", "message_id"), HIGH_BOUNDS)
def test_upper_bound_fails_just_above(field: str, bound: float, message_id: str) -> None:
    outcome = outcome_of(field, bound + STEP)
    assert outcome.broken is Side.HIGH
    assert outcome.message_id == message_id


@pytest.mark.parametrize(("text", "message_id", "field"), REASONS)
def test_documented_reason_text_is_classified(text: str, message_id: str, field: str) -> None:
    reason = classify_reason(text)
    assert (reason.message_id, reason.rule_field) == (message_id, field)
    assert reason.text == text


def test_seed_example_breaks_only_the_shoulders() -> None:
    """Seeds 001/000: the example ``detect_result`` fails only shoulder_equal (46 < 50),
    and its one reason is 两侧肩膀姿态不佳."""
    example = Measurements(
        face_unbalance=83,
        face_x_occupy=0.637,
        face_occlusion=100,
        shoulder_equal=46,
        eyes_close=100,
        eyes_y_center=0.502,
        mouth_close=94,
        face_x_center=0.513,
        background_clean=100,
        face_darkillum=80,
    )
    broken = {field for field, outcome in evaluate(example).items() if not outcome.ok}
    assert broken == {"shoulder_equal"}
    assert classify_reason("两侧肩膀姿态不佳").rule_field == "shoulder_equal"


# ------------------------------------------------------------ JD compare thresholds

# Seed 004, ``score``: 万分之一误识率下阈值: 0.49, 十万分之一误识率下阈值: 0.54,
# 百万分之一误识率下阈值：0.58 (false-accept rates 1e-4, 1e-5, 1e-6).
JD_THRESHOLDS = [
    (0.49, Verdict.PROBABLY_SAME, Verdict.DIFFERENT),  # seed 004: FAR 1/10,000
    (0.54, Verdict.SAME_HIGH, Verdict.PROBABLY_SAME),  # seed 004: FAR 1/100,000
    (0.58, Verdict.SAME_VERY_HIGH, Verdict.SAME_HIGH),  # seed 004: FAR 1/1,000,000
]


@pytest.mark.parametrize(("score", "at", "below"), JD_THRESHOLDS)
def test_jd_threshold_at_and_just_below(score: float, at: Verdict, below: Verdict) -> None:
    assert JDCLOUD_THRESHOLDS.verdict(score) is at
    assert JDCLOUD_THRESHOLDS.verdict(score - STEP) is below


def test_jd_client_judges_with_the_documented_thresholds() -> None:
    assert JdCloudClient.thresholds is JDCLOUD_THRESHOLDS


# ---------------------------------------------------------------------- image limits


def jpeg(width: int, height: int, *, pad_to: int | None = None) -> bytes:
    """A plain JPEG; ``pad_to`` reaches an exact size with ICC profile chunks, which go to
    the provider as they are (padding after EOI or in a comment would be cut as metadata)."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (60, 144, 232)).save(buffer, "JPEG", quality=90)
    data = buffer.getvalue()
    if pad_to is not None:
        data = data[:20] + icc_chunks(pad_to - len(data)) + data[20:]  # after SOI and JFIF
        assert len(data) == pad_to
    return data


def icc_chunks(size: int) -> bytes:
    """APP2 ICC_PROFILE segments of ``size`` bytes in all (a profile of zeros)."""
    head = 2 + 2 + 14  # marker, length, "ICC_PROFILE\0" with the chunk's number and count
    most = 65535 - 2 - 14
    bodies: list[int] = []
    left = size
    while left:
        body = min(most, left - head)
        if 0 < left - (head + body) < head:  # the rest could not be a segment of its own
            body -= head
        bodies.append(body)
        left -= head + body
    return b"".join(
        b"\xff\xe2"
        + (2 + 14 + body).to_bytes(2, "big")
        + b"ICC_PROFILE\0"
        + bytes([number, len(bodies)])
        + bytes(body)
        for number, body in enumerate(bodies, start=1)
    )


def encoded(fmt: str, width: int = 200, height: int = 200) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (60, 144, 232)).save(buffer, fmt)
    return buffer.getvalue()


def assert_untouched(prepared: PreparedImage, data: bytes) -> None:
    """Sent as it is: not re-encoded, only its metadata (and bytes after the image) cut."""
    assert prepared.untouched, prepared.changes
    if exif.is_jpeg(data):
        data = exif.strip_jpeg(data)
    elif prepared.format == "PNG":
        data = exif.strip_png(data)
    assert prepared.data == data


def assert_reduced_to(prepared: PreparedImage, max_side: int) -> None:
    assert Change.REDUCED in prepared.changes
    assert max(prepared.width, prepared.height) == max_side


# The check's limits as the providers hold them (seed 001 for jumdata, seed 000 for
# the same check bought on Huawei's marketplace).
CHECK_PROVIDER_LIMITS = [
    pytest.param(JumdataChecker.limits, id="jumdata-001"),
    pytest.param(HuaweiChecker.limits, id="huawei-000"),
]

# Seed 001: "宽高在2500以内", "图片宽和⾼不能大于2500px", code 204 "最大边长为2500像素".
# Seed 000: code 204 "图片尺寸过大，最大边长为2500像素".
CHECK_MAX_SIDE = 2500
# Seed 001: "小于6m": strictly under 6 MB, so the largest file is one byte less.
CHECK_MAX_BYTES = 6 * MB - 1

# Seed 003: "分辨率应小于1920*1080" in either orientation (the project, its fake and the
# bot's message read it as at most 1920x1080).
DETECT_LONG_SIDE, DETECT_SHORT_SIDE = 1920, 1080

# Seed 003: "图片文件大小不超过8MB": not exceeding 8 MB, so 8 MB itself is allowed.
DETECT_MAX_BYTES = 8 * MB
# Seed 003: "现支持PNG、JPG、JPEG、BMP,不支持GIF图片".
DETECT_FORMATS = frozenset({"PNG", "JPEG", "BMP"})
# Seed 003, ``maxFaceNum``: "最大值120".
DETECT_MAX_FACE_NUM = 120

# Seeds 002 and 004: "图片像素尺寸：最小 48*48 像素，最大 2048*2048 像素".
JD_MIN_SIDE, JD_MAX_SIDE = 48, 2048
# Seeds 002 and 004: "图片 Base64 大小：小于2MB" (codes 5 "Base64IsTooLarge ... 超过 2MB").
JD_BASE64_UNDER = 2 * MB
# Seeds 002 and 004: "图片格式：bmp, jpg, jpeg, png, jfif" (jfif is JPEG).
JD_FORMATS = frozenset({"BMP", "JPEG", "PNG"})
# Seed 002, ``maxFaceCount``: "范围为 [1, 100]".
JD_MIN_FACE_COUNT, JD_MAX_FACE_COUNT = 1, 100


def fit_detect_box(width: int, height: int) -> bool:
    """True when a photo fits detect's 1920x1080 box in either orientation."""
    return max(width, height) <= DETECT_LONG_SIDE and min(width, height) <= DETECT_SHORT_SIDE


def largest_file_with_base64_under(chars: int) -> int:
    """The largest n whose base64 text (4 * ceil(n / 3) chars) is shorter than ``chars``."""
    n = 3 * ((chars - 1) // 4)
    assert len(base64.b64encode(bytes(n))) < chars
    assert len(base64.b64encode(bytes(n + 1))) >= chars
    return n


# --- byte limits, as numbers


@pytest.mark.parametrize("limits", CHECK_PROVIDER_LIMITS)
def test_check_byte_limit(limits: ImageLimits) -> None:
    assert limits.max_bytes == CHECK_MAX_BYTES == 6_291_455
    assert limits.max_base64_chars is None
    assert limits.byte_cap == CHECK_MAX_BYTES


def test_detect_byte_limit() -> None:
    assert DETECT_LIMITS_JUMDATA.max_bytes == DETECT_MAX_BYTES == 8_388_608
    assert DETECT_LIMITS_JUMDATA.byte_cap == DETECT_MAX_BYTES
    assert JumdataDetector.limits is DETECT_LIMITS_JUMDATA
    for size in [(1920, 1080), (1080, 1920), (4000, 3000), (500, 500)]:
        assert detect_limits_for(*size).byte_cap == DETECT_MAX_BYTES


def test_jd_byte_limit_keeps_base64_under_2_mb() -> None:
    cap = largest_file_with_base64_under(JD_BASE64_UNDER)
    assert cap == 1_572_861
    assert JdCloudClient.limits is JDCLOUD_LIMITS
    assert JDCLOUD_LIMITS.max_base64_chars == JD_BASE64_UNDER - 1
    assert JDCLOUD_LIMITS.max_bytes == cap
    assert JDCLOUD_LIMITS.byte_cap == cap


# --- byte limits, as behaviour


BYTE_CAPS = [
    pytest.param(CHECK_LIMITS_JUMDATA, (600, 800), id="check-001"),
    pytest.param(detect_limits_for(600, 800), (600, 800), id="detect-003"),
    pytest.param(JDCLOUD_LIMITS, (600, 800), id="jdcloud-002-004"),
]


@pytest.mark.parametrize(("limits", "size"), BYTE_CAPS)
def test_file_of_exactly_byte_cap_is_sent_untouched(
    limits: ImageLimits, size: tuple[int, int]
) -> None:
    data = jpeg(*size, pad_to=limits.byte_cap)
    prepared = prepare_image(data, limits)
    assert prepared.original.format == "JPEG"
    assert prepared.original.file_size == limits.byte_cap
    assert_untouched(prepared, data)


@pytest.mark.parametrize(("limits", "size"), BYTE_CAPS)
def test_one_byte_over_byte_cap_is_reencoded(limits: ImageLimits, size: tuple[int, int]) -> None:
    data = jpeg(*size, pad_to=limits.byte_cap + 1)
    prepared = prepare_image(data, limits)
    assert prepared.original.format == "JPEG"  # still recognised with the padding
    assert prepared.original.file_size == limits.byte_cap + 1
    assert not prepared.untouched
    assert Change.REDUCED in prepared.changes
    assert len(prepared.data) <= limits.byte_cap
    assert (prepared.width, prepared.height) == size  # fewer bytes, not fewer pixels


# --- pixel limits


@pytest.mark.parametrize("limits", CHECK_PROVIDER_LIMITS)
@pytest.mark.parametrize("landscape", [True, False], ids=["landscape", "portrait"])
def test_check_max_side(limits: ImageLimits, landscape: bool) -> None:
    def size(long: int) -> tuple[int, int]:
        return (long, 200) if landscape else (200, long)

    at = jpeg(*size(CHECK_MAX_SIDE))
    assert_untouched(prepare_image(at, limits), at)
    over = prepare_image(jpeg(*size(CHECK_MAX_SIDE + 1)), limits)
    assert_reduced_to(over, CHECK_MAX_SIDE)


@pytest.mark.parametrize("landscape", [True, False], ids=["landscape", "portrait"])
def test_jd_max_side(landscape: bool) -> None:
    def size(long: int) -> tuple[int, int]:
        return (long, 64) if landscape else (64, long)

    at = jpeg(*size(JD_MAX_SIDE))
    assert_untouched(prepare_image(at, JDCLOUD_LIMITS), at)
    over = prepare_image(jpeg(*size(JD_MAX_SIDE + 1)), JDCLOUD_LIMITS)
    assert_reduced_to(over, JD_MAX_SIDE)


@pytest.mark.parametrize(
    "size",
    [(JD_MIN_SIDE, JD_MIN_SIDE), (JD_MIN_SIDE, 300), (300, JD_MIN_SIDE)],
)
def test_jd_min_side_is_accepted(size: tuple[int, int]) -> None:
    data = jpeg(*size)
    assert_untouched(prepare_image(data, JDCLOUD_LIMITS), data)


@pytest.mark.parametrize(
    "size",
    [(JD_MIN_SIDE - 1, JD_MIN_SIDE - 1), (JD_MIN_SIDE - 1, 300), (300, JD_MIN_SIDE - 1)],
)
def test_jd_one_pixel_under_min_side_is_refused(size: tuple[int, int]) -> None:
    with pytest.raises(ImageError) as caught:
        prepare_image(jpeg(*size), JDCLOUD_LIMITS)
    assert caught.value.problem is ImageProblem.TOO_SMALL


@pytest.mark.parametrize(
    "size",
    [(DETECT_LONG_SIDE, DETECT_SHORT_SIDE), (DETECT_SHORT_SIDE, DETECT_LONG_SIDE)],
    ids=["landscape", "portrait"],
)
def test_detect_box_exactly_is_untouched(size: tuple[int, int]) -> None:
    assert fit_detect_box(*size)
    data = jpeg(*size)
    assert_untouched(prepare_image(data, detect_limits_for(*size)), data)


@pytest.mark.parametrize("landscape", [True, False], ids=["landscape", "portrait"])
def test_detect_long_side_one_pixel_over(landscape: bool) -> None:
    long, short = DETECT_LONG_SIDE + 1, DETECT_SHORT_SIDE
    size = (long, short) if landscape else (short, long)
    assert not fit_detect_box(*size)
    prepared = prepare_image(jpeg(*size), detect_limits_for(*size))
    assert_reduced_to(prepared, DETECT_LONG_SIDE)
    assert fit_detect_box(prepared.width, prepared.height)


@pytest.mark.parametrize("landscape", [True, False], ids=["landscape", "portrait"])
def test_detect_short_side_one_pixel_over(landscape: bool) -> None:
    long, short = DETECT_LONG_SIDE, DETECT_SHORT_SIDE + 1
    size = (long, short) if landscape else (short, long)
    assert not fit_detect_box(*size)
    prepared = prepare_image(jpeg(*size), detect_limits_for(*size))
    assert Change.REDUCED in prepared.changes
    assert min(prepared.width, prepared.height) == DETECT_SHORT_SIDE
    assert fit_detect_box(prepared.width, prepared.height)


def test_detect_plain_limits_bound_the_long_side() -> None:
    assert DETECT_LIMITS_JUMDATA.max_side == DETECT_LONG_SIDE
    assert detect_limits_for(DETECT_LONG_SIDE, DETECT_SHORT_SIDE).max_side == DETECT_LONG_SIDE


# --- formats


@pytest.mark.parametrize(
    ("limits", "documented"),
    [
        pytest.param(DETECT_LIMITS_JUMDATA, DETECT_FORMATS, id="detect-003"),
        pytest.param(JDCLOUD_LIMITS, JD_FORMATS, id="jdcloud-002-004"),
    ],
)
def test_documented_formats(limits: ImageLimits, documented: frozenset[str]) -> None:
    assert limits.formats == documented
    for fmt in sorted(documented):
        data = encoded(fmt)
        assert_untouched(prepare_image(data, limits), data)
    # Seed 003 "不支持GIF图片"; GIF is not among JD's formats either.
    gif = prepare_image(encoded("GIF"), limits)
    assert Change.CONVERTED in gif.changes and gif.format in documented


# ------------------------------------------------------------- faces per request


@pytest.fixture
async def jumdata() -> AsyncIterator[FakeJumdata]:
    async with FakeJumdata() as server:
        yield server


@pytest.fixture
async def jdcloud() -> AsyncIterator[FakeJdCloud]:
    async with FakeJdCloud() as server:
        yield server


async def test_jumdata_detect_max_face_num_reaches_the_request(jumdata: FakeJumdata) -> None:
    assert MAX_FACE_NUM == DETECT_MAX_FACE_NUM
    photo = prepare_image(jpeg(600, 800), detect_limits_for(600, 800))
    detector = JumdataDetector("test-app", "test-secret", jumdata.base_url, timeout=5)
    try:
        await detector.detect(photo)  # the default asks for as many as documented
        await detector.detect(photo, max_faces=DETECT_MAX_FACE_NUM)
        await detector.detect(photo, max_faces=DETECT_MAX_FACE_NUM + 1)
        await detector.detect(photo, max_faces=DETECT_MAX_FACE_NUM - 1)
    finally:
        await detector.close()
    sent = [request.fields["maxFaceNum"] for request in jumdata.received(DETECT_PATH)]
    assert sent == ["120", "120", "120", "119"]


async def test_jd_max_face_count_is_clamped_to_documented_range(jdcloud: FakeJdCloud) -> None:
    assert MAX_FACE_COUNT == JD_MAX_FACE_COUNT
    photo = prepare_image(jpeg(600, 800), JDCLOUD_LIMITS)
    client = JdCloudClient("test-ak", "test-sk", jdcloud.base_url, timeout=5)
    try:
        for asked in (
            JD_MAX_FACE_COUNT + 1,
            JD_MAX_FACE_COUNT,
            JD_MAX_FACE_COUNT - 1,
            JD_MIN_FACE_COUNT + 1,
            JD_MIN_FACE_COUNT,
            JD_MIN_FACE_COUNT - 1,
        ):
            await client.analyze(photo, max_faces=asked)
    finally:
        await client.close()
    sent = [request.query["maxFaceCount"] for request in jdcloud.received(PROP_PATH)]
    assert sent == ["100", "100", "99", "2", "1", "1"]
