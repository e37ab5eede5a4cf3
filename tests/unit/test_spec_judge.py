"""A check's measurements judged against a document spec (``services.specs.judge``).

The specs are built here, not read from ``specs.toml``: each test states the bounds it
judges against. Geometry values are dyadic fractions (0.125, 0.609375, ...) on prints
of 40 mm, so a share times the print height lands exactly on a bound and one 64th of
the height outside is clearly out; a bound moved by any amount turns a case red.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from services.models import Measurements
from services.rules import Side
from services.specs import BACKGROUNDS, Crown, GlassesRule, Medium, Range, Spec
from services.specs.crop import HAIR_ALLOWANCE_SHARE, ICAO_HEAD_SHARE
from services.specs.judge import (
    ASPECT_TOLERANCE,
    BACKGROUND_DELTA_E,
    Axis,
    CropPlan,
    CropReason,
    Judgement,
    RuleKind,
    RuleState,
    RuleUnit,
    SpecNotCheckable,
    SpecRule,
    delta_e,
    judge,
    lab,
)
from tests.specs import blank_spec

PASSED, FAILED, WARNING, NOT_CHECKED = (
    RuleState.PASSED,
    RuleState.FAILED,
    RuleState.WARNING,
    RuleState.NOT_CHECKED,
)
STEP = 1 / 64  # a share just outside a bound, exact in binary


spec = blank_spec


def print_spec(side: float = 40.0, **changes: Any) -> Spec:
    """A square print of ``side`` mm."""
    square = Range(side, side)
    return spec(medium=Medium.PRINT, width_mm=square, height_mm=square, **changes)


def measured(**values: Any) -> Measurements:
    """A square 800 px photo with whatever ``values`` add."""
    return Measurements(**{"size_pix": (800, 800), **values})


def rules_of(judgement: Judgement, kind: RuleKind) -> list[SpecRule]:
    return [rule for rule in judgement.rules if rule.kind is kind]


def only(judgement: Judgement, kind: RuleKind) -> SpecRule:
    (rule,) = rules_of(judgement, kind)
    return rule


# ------------------------------------------------------------------ head, eyes, top margin

HEAD_MM: dict[str, Any] = {"head_mm": Range(25, 30)}  # 0.625..0.75 of a 40 mm print
HEAD_SHARE: dict[str, Any] = {"head_share": Range(0.5, 0.75)}
EYES_MM: dict[str, Any] = {
    "eyes_mm": Range(20, 30)
}  # eye line 0.5..0.25 from the top of a 40 mm print
EYES_SHARE: dict[str, Any] = {"eyes_share": Range(0.5, 0.75)}
TOP_MM: dict[str, Any] = {"top_margin_mm": Range(2.5, 5)}  # head top 0.0625..0.125 of a 40 mm print


def head(share: float | None, top: float | None = 0.125) -> dict[str, Any]:
    chin = None if share is None or top is None else top + share
    return {"head_top": top, "head_chin_y": chin}


GEOMETRY = [
    # (case, spec, measurements, kind, state, value, side)
    ("head mm inside", print_spec(**HEAD_MM), head(0.6875), RuleKind.HEAD, PASSED, 27.5, None),
    ("head mm on low", print_spec(**HEAD_MM), head(0.625), RuleKind.HEAD, PASSED, 25, None),
    ("head mm on high", print_spec(**HEAD_MM), head(0.75), RuleKind.HEAD, PASSED, 30, None),
    (
        "head mm under",
        print_spec(**HEAD_MM),
        head(0.625 - STEP),
        RuleKind.HEAD,
        FAILED,
        24.375,
        Side.LOW,
    ),
    (
        "head mm over",
        print_spec(**HEAD_MM),
        head(0.75 + STEP),
        RuleKind.HEAD,
        FAILED,
        30.625,
        Side.HIGH,
    ),
    ("head mm no chin", print_spec(**HEAD_MM), head(None), RuleKind.HEAD, NOT_CHECKED, None, None),
    (
        "head mm no top",
        print_spec(**HEAD_MM),
        {"head_top": None, "head_chin_y": 0.75},
        RuleKind.HEAD,
        NOT_CHECKED,
        None,
        None,
    ),
    ("head share inside", spec(**HEAD_SHARE), head(0.625), RuleKind.HEAD, PASSED, 0.625, None),
    ("head share on low", spec(**HEAD_SHARE), head(0.5), RuleKind.HEAD, PASSED, 0.5, None),
    ("head share on high", spec(**HEAD_SHARE), head(0.75), RuleKind.HEAD, PASSED, 0.75, None),
    (
        "head share under",
        spec(**HEAD_SHARE),
        head(0.5 - STEP),
        RuleKind.HEAD,
        FAILED,
        0.5 - STEP,
        Side.LOW,
    ),
    (
        "head share over",
        spec(**HEAD_SHARE),
        head(0.75 + STEP),
        RuleKind.HEAD,
        FAILED,
        0.75 + STEP,
        Side.HIGH,
    ),
    (
        "head share unmeasured",
        spec(**HEAD_SHARE),
        head(None),
        RuleKind.HEAD,
        NOT_CHECKED,
        None,
        None,
    ),
    (
        "eyes mm inside",
        print_spec(**EYES_MM),
        {"eyes_y_center": 0.375},
        RuleKind.EYES,
        PASSED,
        25,
        None,
    ),
    (
        "eyes mm on low",
        print_spec(**EYES_MM),
        {"eyes_y_center": 0.5},
        RuleKind.EYES,
        PASSED,
        20,
        None,
    ),
    (
        "eyes mm on high",
        print_spec(**EYES_MM),
        {"eyes_y_center": 0.25},
        RuleKind.EYES,
        PASSED,
        30,
        None,
    ),
    (
        "eyes mm too low",
        print_spec(**EYES_MM),
        {"eyes_y_center": 0.5 + STEP},
        RuleKind.EYES,
        FAILED,
        19.375,
        Side.LOW,
    ),
    (
        "eyes mm too high",
        print_spec(**EYES_MM),
        {"eyes_y_center": 0.25 - STEP},
        RuleKind.EYES,
        FAILED,
        30.625,
        Side.HIGH,
    ),
    ("eyes mm unmeasured", print_spec(**EYES_MM), {}, RuleKind.EYES, NOT_CHECKED, None, None),
    (
        "eyes share on low",
        spec(**EYES_SHARE),
        {"eyes_y_center": 0.5},
        RuleKind.EYES,
        PASSED,
        0.5,
        None,
    ),
    (
        "eyes share on high",
        spec(**EYES_SHARE),
        {"eyes_y_center": 0.25},
        RuleKind.EYES,
        PASSED,
        0.75,
        None,
    ),
    (
        "eyes share too low",
        spec(**EYES_SHARE),
        {"eyes_y_center": 0.5 + STEP},
        RuleKind.EYES,
        FAILED,
        0.5 - STEP,
        Side.LOW,
    ),
    (
        "eyes share too high",
        spec(**EYES_SHARE),
        {"eyes_y_center": 0.25 - STEP},
        RuleKind.EYES,
        FAILED,
        0.75 + STEP,
        Side.HIGH,
    ),
    ("eyes share unmeasured", spec(**EYES_SHARE), {}, RuleKind.EYES, NOT_CHECKED, None, None),
    (
        "top inside",
        print_spec(**TOP_MM),
        {"head_top": 0.09375},
        RuleKind.TOP_MARGIN,
        PASSED,
        3.75,
        None,
    ),
    (
        "top on low",
        print_spec(**TOP_MM),
        {"head_top": 0.0625},
        RuleKind.TOP_MARGIN,
        PASSED,
        2.5,
        None,
    ),
    (
        "top on high",
        print_spec(**TOP_MM),
        {"head_top": 0.125},
        RuleKind.TOP_MARGIN,
        PASSED,
        5,
        None,
    ),
    (
        "top too small",
        print_spec(**TOP_MM),
        {"head_top": 0.0625 - STEP / 2},
        RuleKind.TOP_MARGIN,
        FAILED,
        2.1875,
        Side.LOW,
    ),
    (
        "top too large",
        print_spec(**TOP_MM),
        {"head_top": 0.125 + STEP / 2},
        RuleKind.TOP_MARGIN,
        FAILED,
        5.3125,
        Side.HIGH,
    ),
    ("top unmeasured", print_spec(**TOP_MM), {}, RuleKind.TOP_MARGIN, NOT_CHECKED, None, None),
]


@pytest.mark.parametrize(
    ("the_spec", "values", "kind", "state", "value", "side"),
    [case[1:] for case in GEOMETRY],
    ids=[case[0] for case in GEOMETRY],
)
def test_geometry_is_judged_at_its_bounds(
    the_spec: Spec,
    values: dict[str, Any],
    kind: RuleKind,
    state: RuleState,
    value: float | None,
    side: Side | None,
) -> None:
    rule = only(judge(the_spec, measured(**values)), kind)
    assert (rule.state, rule.value, rule.side) == (state, value, side)
    expected_unit = RuleUnit.MM if the_spec.width_mm is not None else RuleUnit.SHARE
    assert rule.unit is expected_unit
    assert not rule.allows_hair


@pytest.mark.parametrize(
    "the_spec",
    [print_spec(), spec(), spec(head_mm=Range(25, 30), eyes_mm=Range(20, 30))],
    ids=["print without bands", "digital without bands", "mm without a print size"],
)
def test_a_band_the_spec_leaves_open_is_no_rule(the_spec: Spec) -> None:
    judgement = judge(the_spec, measured(**head(0.625), eyes_y_center=0.375))
    kinds = {rule.kind for rule in judgement.rules}
    assert kinds.isdisjoint({RuleKind.HEAD, RuleKind.EYES, RuleKind.TOP_MARGIN})


def test_a_print_judges_in_mm_even_when_it_also_gives_shares() -> None:
    both = print_spec(**HEAD_MM, head_share=Range(0.1, 0.2))
    rule = only(judge(both, measured(**head(0.625))), RuleKind.HEAD)
    assert (rule.unit, rule.value, rule.state) == (RuleUnit.MM, 25, PASSED)


def test_shares_become_mm_through_the_print_height() -> None:
    us = print_spec(51, head_mm=Range(25, 35), eyes_mm=Range(28, 35))
    judgement = judge(
        us, measured(size_pix=(600, 600), head_top=0.15, head_chin_y=0.75, eyes_y_center=0.4)
    )
    head_rule, eyes_rule = only(judgement, RuleKind.HEAD), only(judgement, RuleKind.EYES)
    assert head_rule.value == pytest.approx(30.6)
    assert eyes_rule.value == pytest.approx(30.6)
    assert (head_rule.state, eyes_rule.state) == (PASSED, PASSED)


def test_a_print_range_converts_through_its_middle_height() -> None:
    ranged = spec(
        medium=Medium.PRINT,
        width_mm=Range(35, 40),
        height_mm=Range(45, 50),
        head_mm=Range(20, 40),
    )
    judgement = judge(ranged, measured(size_pix=(750, 950), **head(0.5)))
    assert only(judgement, RuleKind.HEAD).value == pytest.approx(23.75)


# ------------------------------------------------------------------ hair allowance


@pytest.mark.parametrize(
    ("the_spec", "share", "state", "high"),
    [
        (spec(head_share=Range(0.5, 0.75), crown=Crown.SKULL), 0.79, PASSED, 0.79),
        (spec(head_share=Range(0.5, 0.75), crown=Crown.SKULL), 0.79 + STEP, FAILED, 0.79),
        (spec(head_share=Range(0.5, 0.75), crown=Crown.SKULL), 0.5 - STEP, FAILED, 0.79),
        (spec(head_share=Range(0.5, 0.75), crown=Crown.HAIR), 0.75 + STEP, FAILED, 0.75),
        (print_spec(**HEAD_MM, crown=Crown.SKULL), 0.78125, PASSED, 31.6),
        (print_spec(**HEAD_MM, crown=Crown.SKULL), 0.8125, FAILED, 31.6),
    ],
    ids=[
        "share within the allowance",
        "share beyond the allowance",
        "share low side unchanged",
        "hair crown gets none",
        "mm within the allowance",
        "mm beyond the allowance",
    ],
)
def test_a_skull_crown_allows_for_hair_on_the_high_side(
    the_spec: Spec, share: float, state: RuleState, high: float
) -> None:
    rule = only(judge(the_spec, measured(**head(share))), RuleKind.HEAD)
    assert rule.state is state
    assert rule.bound is not None
    assert rule.bound.high == pytest.approx(high)
    assert rule.allows_hair is (the_spec.crown is Crown.SKULL)


def test_the_hair_allowance_is_four_percent_of_the_height() -> None:
    assert HAIR_ALLOWANCE_SHARE == 0.04


@pytest.mark.parametrize(
    ("crown", "top", "state"),
    [
        (Crown.SKULL, 0.03125, PASSED),
        (Crown.SKULL, 0.015625, FAILED),
        (Crown.HAIR, 0.03125, FAILED),
    ],
)
def test_a_skull_crown_widens_the_top_margin_low_side(
    crown: Crown, top: float, state: RuleState
) -> None:
    # 2.5 mm less 0.04 of 40 mm is 0.9 mm: a 1.25 mm margin passes, 0.625 mm does not.
    rule = only(
        judge(print_spec(**TOP_MM, crown=crown), measured(head_top=top)), RuleKind.TOP_MARGIN
    )
    assert rule.state is state
    assert rule.allows_hair is (crown is Crown.SKULL)


# ------------------------------------------------------------------ aspect

ASPECT = [
    ("square", (1000, 1000), True),
    ("wide edge", (1020, 1000), True),
    ("narrow edge", (980, 1000), True),
    ("too wide", (1021, 1000), False),
    ("too narrow", (979, 1000), False),
    ("phone 3:4", (900, 1200), False),
]


@pytest.mark.parametrize(("size", "matches"), [c[1:] for c in ASPECT], ids=[c[0] for c in ASPECT])
def test_the_aspect_matches_within_the_tolerance(size: tuple[int, int], matches: bool) -> None:
    values = measured(size_pix=size, face_x_center=0.5, **head(0.625))
    judgement = judge(print_spec(**HEAD_MM), values)
    rule = only(judgement, RuleKind.ASPECT)
    assert judgement.aspect_matches is matches
    assert rule.state is (PASSED if matches else FAILED)
    assert rule.value == size[0] / size[1]
    assert bool(rules_of(judgement, RuleKind.HEAD)) is matches
    assert (judgement.crop is None) is matches


def test_the_tolerance_is_two_percent() -> None:
    assert ASPECT_TOLERANCE == 0.02


def test_a_mismatched_photo_has_no_millimetres_and_is_not_ready() -> None:
    us = print_spec(
        51, dpi=300, head_mm=Range(25, 35), eyes_mm=Range(28, 35), top_margin_mm=Range(1, 9)
    )
    judgement = judge(
        us,
        measured(
            size_pix=(900, 1200),
            size_mm=(76.2, 101.6),
            head_top=0.2,
            head_chin_y=0.6,
            eyes_y_center=0.4,
            face_x_center=0.5,
        ),
    )
    assert not {RuleKind.HEAD, RuleKind.EYES, RuleKind.TOP_MARGIN} & {
        rule.kind for rule in judgement.rules
    }
    assert all(rule.unit is not RuleUnit.MM for rule in judgement.rules)
    assert only(judgement, RuleKind.ASPECT).state is FAILED
    assert not judgement.ready
    assert judgement.crop is not None


def test_an_unmeasured_size_leaves_the_aspect_and_the_millimetres_unchecked() -> None:
    judgement = judge(print_spec(**HEAD_MM), Measurements(**head(0.625)))
    assert judgement.aspect_matches is None
    assert only(judgement, RuleKind.ASPECT).state is NOT_CHECKED
    assert only(judgement, RuleKind.HEAD).state is NOT_CHECKED
    assert judgement.crop is None
    assert judgement.passed and not judgement.ready and not judgement.complete


def test_a_spec_without_a_shape_has_no_aspect_rule() -> None:
    judgement = judge(spec(**HEAD_SHARE), measured(size_pix=(900, 1200), **head(0.625)))
    assert judgement.aspect_matches is None
    assert not rules_of(judgement, RuleKind.ASPECT)
    assert judgement.ready


# ------------------------------------------------------------------ size, pixels, kb, format


@pytest.mark.parametrize("size_mm", [(145.7, 187.3), (35.0, 45.0), None])
def test_a_files_stated_dpi_makes_no_size_rule(size_mm: tuple[float, float] | None) -> None:
    """Phone JPEGs say 72 dpi, which would make a 413x531 px photo 146 mm wide: what a file
    states of its dpi says nothing about a print, so only its pixels are judged."""
    schengen = spec(medium=Medium.PRINT, dpi=300, width_mm=Range(35, 35), height_mm=Range(45, 45))
    judgement = judge(schengen, measured(size_pix=(413, 531), size_mm=size_mm, dpi=(72, 72)))
    assert all(rule.unit is not RuleUnit.MM for rule in judgement.rules)
    assert judgement.passed


PIXELS_SPEC = spec(width_px=Range(600, 1200), height_px=Range(600, 1200))
PIXELS = [
    ("inside", PIXELS_SPEC, (900, 900), PASSED, PASSED),
    ("on low", PIXELS_SPEC, (600, 600), PASSED, PASSED),
    ("on high", PIXELS_SPEC, (1200, 1200), PASSED, PASSED),
    ("narrow", PIXELS_SPEC, (599, 600), FAILED, PASSED),
    ("tall", PIXELS_SPEC, (1200, 1201), PASSED, FAILED),
    ("unmeasured", PIXELS_SPEC, None, NOT_CHECKED, NOT_CHECKED),
    # 51 mm less the 1 mm tolerance at 300 dpi: 590.6 -> 591 px, no upper bound.
    ("print at its dpi", print_spec(51, dpi=300), (591, 591), PASSED, PASSED),
    ("print below its dpi", print_spec(51, dpi=300), (590, 591), FAILED, PASSED),
    ("print far above", print_spec(51, dpi=300), (6000, 6000), PASSED, PASSED),
]


@pytest.mark.parametrize(
    ("the_spec", "size", "width", "height"), [c[1:] for c in PIXELS], ids=[c[0] for c in PIXELS]
)
def test_pixels_are_judged_per_side(
    the_spec: Spec, size: tuple[int, int] | None, width: RuleState, height: RuleState
) -> None:
    rules = rules_of(judge(the_spec, Measurements(size_pix=size)), RuleKind.PIXELS)
    assert [(r.axis, r.state, r.unit) for r in rules] == [
        (Axis.WIDTH, width, RuleUnit.PX),
        (Axis.HEIGHT, height, RuleUnit.PX),
    ]


def test_no_pixel_rule_without_pixels_or_a_dpi() -> None:
    assert not rules_of(judge(print_spec(51), measured()), RuleKind.PIXELS)


KB_SPEC = spec(kb=Range(54, 240))


@pytest.mark.parametrize(
    ("file_size", "state", "side"),
    [
        (100 * 1024, PASSED, None),
        (54 * 1024, PASSED, None),
        (240 * 1024, PASSED, None),
        (54 * 1024 - 1, FAILED, Side.LOW),
        (240 * 1024 + 1, FAILED, Side.HIGH),
        (None, NOT_CHECKED, None),
    ],
)
def test_the_file_size_is_judged_in_kb(
    file_size: int | None, state: RuleState, side: Side | None
) -> None:
    rule = only(judge(KB_SPEC, measured(file_size=file_size)), RuleKind.KB)
    assert (rule.state, rule.side, rule.unit) == (state, side, RuleUnit.KB)
    assert rule.value == (None if file_size is None else file_size / 1024)


@pytest.mark.parametrize(
    ("photo_format", "allowed", "state", "seen"),
    [
        ("jpg", ("JPEG",), PASSED, "JPEG"),
        ("png", ("PNG",), PASSED, "PNG"),
        ("bmp", ("BMP",), PASSED, "BMP"),
        ("heic", ("JPEG", "HEIF"), PASSED, "HEIF"),
        ("webp", ("WEBP",), PASSED, "WEBP"),
        ("png", ("JPEG",), FAILED, "PNG"),
        ("gif", ("JPEG", "PNG"), FAILED, "GIF"),
        (None, ("JPEG",), NOT_CHECKED, None),
    ],
)
def test_the_format_is_judged_by_its_pillow_name(
    photo_format: str | None, allowed: tuple[str, ...], state: RuleState, seen: str | None
) -> None:
    rule = only(judge(spec(formats=allowed), measured(photo_format=photo_format)), RuleKind.FORMAT)
    assert (rule.state, rule.seen, rule.allowed) == (state, seen, allowed)


def test_no_file_rules_where_the_spec_sets_no_limits() -> None:
    judgement = judge(spec(), measured(file_size=10, photo_format="gif"))
    assert not rules_of(judgement, RuleKind.KB) and not rules_of(judgement, RuleKind.FORMAT)


# ------------------------------------------------------------------ background


def test_lab_matches_the_reference_values() -> None:
    assert lab((255, 255, 255)) == pytest.approx((100, 0, 0), abs=1e-4)
    assert lab((0, 0, 0)) == pytest.approx((0, 0, 0), abs=1e-9)
    # sRGB red under D65 (Bruce Lindbloom's calculator): L 53.24, a 80.09, b 67.20.
    assert lab((255, 0, 0)) == pytest.approx((53.24, 80.09, 67.20), abs=0.01)


BACKGROUND = [
    # (case, allowed, measured, state, nearest name of all)
    ("white", ("white",), (255, 255, 255), PASSED, "white"),
    ("dim white just inside", ("white",), (227, 227, 227), PASSED, "light-grey"),
    ("grey just outside", ("white",), (226, 226, 226), FAILED, "light-grey"),
    ("light grey near off-white", ("white", "off-white"), (220, 220, 220), PASSED, "light-grey"),
    ("light blue on white", ("white", "off-white"), (200, 225, 245), FAILED, "light-blue"),
    ("blue on a blue spec", ("blue",), (70, 140, 215), PASSED, "blue"),
    ("red far from white", ("white",), (210, 40, 40), FAILED, "red"),
    ("unmeasured", ("white",), None, NOT_CHECKED, None),
]


@pytest.mark.parametrize(
    ("allowed", "colour", "state", "seen"),
    [c[1:] for c in BACKGROUND],
    ids=[c[0] for c in BACKGROUND],
)
def test_the_background_is_judged_by_delta_e(
    allowed: tuple[str, ...],
    colour: tuple[int, int, int] | None,
    state: RuleState,
    seen: str | None,
) -> None:
    rule = only(
        judge(spec(backgrounds=allowed), measured(background_color=colour)), RuleKind.BACKGROUND
    )
    assert (rule.state, rule.seen, rule.allowed, rule.unit) == (
        state,
        seen,
        allowed,
        RuleUnit.DELTA_E,
    )
    assert rule.bound == Range(0, BACKGROUND_DELTA_E)
    if colour is not None:
        nearest = min(delta_e(colour, BACKGROUNDS[name]) for name in allowed)
        assert rule.value == pytest.approx(nearest)


def test_no_background_rule_when_the_spec_names_no_colour() -> None:
    assert not rules_of(judge(spec(), measured(background_color=(0, 0, 0))), RuleKind.BACKGROUND)


# ------------------------------------------------------------------ glasses and hat

GLASSES = [
    (GlassesRule.BANNED, "no_glasses", PASSED),
    (GlassesRule.BANNED, "normal_glasses", FAILED),
    (GlassesRule.BANNED, "dark_glasses", FAILED),
    (GlassesRule.BANNED, None, NOT_CHECKED),
    (GlassesRule.UNREMOVABLE_ONLY, "no_glasses", PASSED),
    (GlassesRule.UNREMOVABLE_ONLY, "normal_glasses", WARNING),
    (GlassesRule.UNREMOVABLE_ONLY, "dark_glasses", FAILED),
    (GlassesRule.UNREMOVABLE_ONLY, None, NOT_CHECKED),
    (GlassesRule.ALLOWED, "no_glasses", None),
    (GlassesRule.ALLOWED, "normal_glasses", None),
    (GlassesRule.ALLOWED, "dark_glasses", FAILED),
    (GlassesRule.ALLOWED, None, None),
]


@pytest.mark.parametrize(("rule", "glasses", "state"), GLASSES)
def test_glasses_follow_the_spec_and_dark_ones_always_fail(
    rule: GlassesRule, glasses: str | None, state: RuleState | None
) -> None:
    judgement = judge(spec(glasses=rule), measured(glasses=glasses))
    found = rules_of(judgement, RuleKind.GLASSES)
    assert [(r.state, r.seen) for r in found] == ([] if state is None else [(state, glasses)])


def test_a_warning_does_not_fail_the_photo() -> None:
    judgement = judge(
        spec(glasses=GlassesRule.UNREMOVABLE_ONLY),
        measured(glasses="normal_glasses", has_hat=False),
    )
    assert judgement.passed and judgement.ready


# The offline engine's glasses are an estimate (``CheckResult.estimated``): never a failure.
ESTIMATED_GLASSES = [
    (GlassesRule.BANNED, "normal_glasses", WARNING),
    (GlassesRule.BANNED, "no_glasses", PASSED),
    (GlassesRule.BANNED, "dark_glasses", FAILED),  # never estimated, but still fails
    (GlassesRule.UNREMOVABLE_ONLY, "normal_glasses", WARNING),
    (GlassesRule.UNREMOVABLE_ONLY, "no_glasses", PASSED),
    (GlassesRule.UNREMOVABLE_ONLY, "dark_glasses", FAILED),
]


@pytest.mark.parametrize(("rule", "glasses", "state"), ESTIMATED_GLASSES)
def test_estimated_glasses_warn_where_measured_ones_fail(
    rule: GlassesRule, glasses: str, state: RuleState
) -> None:
    judgement = judge(
        spec(glasses=rule), measured(glasses=glasses, has_hat=False), estimated=("glasses",)
    )
    found = rules_of(judgement, RuleKind.GLASSES)
    assert [(r.state, r.seen, r.estimated) for r in found] == [(state, glasses, True)]
    assert judgement.passed is (state is not FAILED)


def test_estimated_glasses_on_a_banning_spec_leave_the_photo_ready() -> None:
    judgement = judge(
        spec(glasses=GlassesRule.BANNED),
        measured(glasses="normal_glasses", has_hat=False),
        estimated=("glasses",),
    )
    assert only(judgement, RuleKind.GLASSES).state is WARNING
    assert judgement.passed and judgement.ready


@pytest.mark.parametrize("estimated", [(), ("has_hat",)])
def test_measured_glasses_are_judged_as_before(estimated: tuple[str, ...]) -> None:
    """A cloud provider estimates nothing: glasses a spec bans fail, unmarked."""
    judgement = judge(
        spec(glasses=GlassesRule.BANNED),
        measured(glasses="normal_glasses", has_hat=False),
        estimated=estimated,
    )
    rule = only(judgement, RuleKind.GLASSES)
    assert (rule.state, rule.estimated) == (FAILED, False)
    assert not judgement.passed
    warning = only(
        judge(spec(glasses=GlassesRule.UNREMOVABLE_ONLY), measured(glasses="normal_glasses")),
        RuleKind.GLASSES,
    )
    assert (warning.state, warning.estimated) == (WARNING, False)


def test_estimated_glasses_not_measured_are_not_checked_and_unmarked() -> None:
    rule = only(
        judge(spec(glasses=GlassesRule.BANNED), measured(), estimated=("glasses",)),
        RuleKind.GLASSES,
    )
    assert (rule.state, rule.estimated) == (NOT_CHECKED, False)


def test_estimated_glasses_on_a_spec_that_allows_them_add_no_rule() -> None:
    judgement = judge(
        spec(glasses=GlassesRule.ALLOWED),
        measured(glasses="normal_glasses"),
        estimated=("glasses",),
    )
    assert rules_of(judgement, RuleKind.GLASSES) == []


@pytest.mark.parametrize(
    ("has_hat", "state"), [(True, FAILED), (False, PASSED), (None, NOT_CHECKED)]
)
def test_a_head_covering_fails(has_hat: bool | None, state: RuleState) -> None:
    assert only(judge(spec(), measured(has_hat=has_hat)), RuleKind.HAT).state is state


# ------------------------------------------------------------------ the judgement


def test_an_office_spec_cannot_be_checked() -> None:
    office = spec(medium=Medium.OFFICE, office_reason="taken at the office")
    with pytest.raises(SpecNotCheckable) as raised:
        judge(office, measured())
    assert raised.value.spec is office


FULL = print_spec(
    40,
    dpi=300,
    **HEAD_MM,
    **EYES_MM,
    **TOP_MM,
    backgrounds=("white",),
    glasses=GlassesRule.BANNED,
    kb=Range(10, 1000),
    formats=("JPEG",),
)
GOOD = measured(
    **head(0.6875, top=0.09375),
    eyes_y_center=0.375,
    face_x_center=0.5,
    size_mm=(40.0, 40.0),
    file_size=100 * 1024,
    photo_format="jpg",
    background_color=(250, 250, 250),
    glasses="no_glasses",
    has_hat=False,
)


def test_the_rules_come_in_a_stable_order() -> None:
    kinds = [(rule.kind, rule.axis) for rule in judge(FULL, GOOD).rules]
    assert kinds == [
        (RuleKind.HEAD, None),
        (RuleKind.EYES, None),
        (RuleKind.TOP_MARGIN, None),
        (RuleKind.ASPECT, None),
        (RuleKind.PIXELS, Axis.WIDTH),
        (RuleKind.PIXELS, Axis.HEIGHT),
        (RuleKind.KB, None),
        (RuleKind.FORMAT, None),
        (RuleKind.BACKGROUND, None),
        (RuleKind.GLASSES, None),
        (RuleKind.HAT, None),
    ]


@pytest.mark.parametrize(
    ("changes", "passed", "complete", "ready"),
    [
        ({}, True, True, True),
        ({"has_hat": None}, True, False, True),
        ({"glasses": "normal_glasses"}, False, True, False),
        ({"size_pix": (700, 800)}, False, True, False),
        ({"size_pix": None}, True, False, False),
    ],
    ids=["all passed", "one not checked", "one failed", "wrong shape", "shape not measured"],
)
def test_passed_complete_and_ready(
    changes: dict[str, Any], passed: bool, complete: bool, ready: bool
) -> None:
    judgement = judge(FULL, dataclasses.replace(GOOD, **changes))
    assert (judgement.passed, judgement.complete, judgement.ready) == (passed, complete, ready)
    assert judgement.spec is FULL


# ------------------------------------------------------------------ the crop plan

US = print_spec(51, dpi=300, head_mm=Range(25, 35), eyes_mm=Range(28, 35))
PHONE: dict[str, Any] = {"size_pix": (900, 1200), "face_x_center": 0.5}


def plan(the_spec: Spec, **values: Any) -> CropPlan:
    crop = judge(the_spec, Measurements(**{**PHONE, **values})).crop
    assert crop is not None
    return crop


def inside(crop: CropPlan, size: tuple[int, int]) -> bool:
    return (
        crop.left >= 0
        and crop.top >= 0
        and crop.left + crop.width <= size[0]
        and crop.top + crop.height <= size[1]
    )


def test_a_phone_photo_crops_to_a_square_with_head_and_eyes_mid_band() -> None:
    crop = plan(US, head_top=0.2, head_chin_y=0.6, eyes_y_center=0.4)
    assert crop.reason is CropReason.OK and crop.feasible
    assert crop.width == crop.height
    assert inside(crop, (900, 1200))
    assert crop.left + crop.width / 2 == pytest.approx(450, abs=1)
    head_rule, eyes_rule = (
        next(r for r in crop.rules if r.kind is kind) for kind in (RuleKind.HEAD, RuleKind.EYES)
    )
    assert (head_rule.state, head_rule.unit) == (PASSED, RuleUnit.MM)
    assert head_rule.value == pytest.approx(30, abs=0.1)  # the middle of 25..35 mm
    assert eyes_rule.state is PASSED
    assert eyes_rule.value == pytest.approx(31.5, abs=0.1)  # the middle of 28..35 mm
    assert crop.needed_px == (591, 591)


def test_a_share_spec_crops_in_shares() -> None:
    digital = spec(
        width_px=Range(600, 1200),
        height_px=Range(600, 1200),
        head_share=Range(0.5, 0.69),
        eyes_share=Range(0.56, 0.69),
    )
    crop = plan(digital, size_pix=(3000, 4000), head_top=0.2, head_chin_y=0.6, eyes_y_center=0.4)
    assert crop.feasible
    assert [(r.kind, r.state, r.unit) for r in crop.rules] == [
        (RuleKind.HEAD, PASSED, RuleUnit.SHARE),
        (RuleKind.EYES, PASSED, RuleUnit.SHARE),
    ]
    assert crop.rules[0].value == pytest.approx(0.595, abs=0.001)


def test_a_crop_without_a_head_size_follows_icao_proportions() -> None:
    crop = plan(print_spec(51), head_top=0.3, head_chin_y=0.6, face_x_center=0.5)
    assert ICAO_HEAD_SHARE == Range(0.70, 0.80)
    assert crop.height == 480  # a 360 px head is 0.75 of it
    assert crop.rules == ()
    # Nothing places the eyes: the head sits in the middle of the crop.
    assert crop.top + crop.height / 2 == pytest.approx(0.45 * 1200, abs=1)


def test_a_top_margin_places_the_head_when_the_eyes_are_open() -> None:
    china = print_spec(40, head_mm=Range(25, 30), top_margin_mm=Range(2.5, 5))
    crop = plan(china, head_top=0.3, head_chin_y=0.6)
    (margin,) = (r for r in crop.rules if r.kind is RuleKind.TOP_MARGIN)
    assert margin.value == pytest.approx(3.75, abs=0.1)
    assert crop.feasible


def test_a_skull_crop_aims_at_the_middle_of_the_widened_band() -> None:
    skull = dataclasses.replace(US, crown=Crown.SKULL)
    crop = plan(skull, head_top=0.2, head_chin_y=0.6, eyes_y_center=0.4)
    head_rule = next(r for r in crop.rules if r.kind is RuleKind.HEAD)
    assert head_rule.allows_hair
    assert head_rule.value == pytest.approx(30 + 0.04 * 51 / 2, abs=0.1)


@pytest.mark.parametrize(
    "values",
    [
        {"head_top": 0.0, "head_chin_y": 0.4, "eyes_y_center": 0.2},
        {"head_top": 0.2, "head_chin_y": 0.6, "eyes_y_center": 0.4, "face_x_center": 0.1},
        {"head_top": 0.75, "head_chin_y": 1.0, "eyes_y_center": 0.85},
        {"head_top": 0.1, "head_chin_y": 0.9, "eyes_y_center": 0.5},
    ],
    ids=["head at the top edge", "face at the side", "chin at the bottom", "head too large"],
)
def test_a_crop_that_would_leave_the_photo_is_near_the_edge(values: dict[str, float]) -> None:
    crop = plan(US, **values)
    assert crop.reason is CropReason.HEAD_NEAR_EDGE and not crop.feasible
    assert inside(crop, (900, 1200))
    assert crop.width == crop.height


def test_too_few_pixels_says_how_many_are_needed() -> None:
    digital = spec(
        width_px=Range(600, 1200),
        height_px=Range(600, 1200),
        head_share=Range(0.5, 0.69),
        eyes_share=Range(0.56, 0.69),
    )
    crop = plan(digital, size_pix=(300, 400), head_top=0.3, head_chin_y=0.6, eyes_y_center=0.45)
    assert crop.reason is CropReason.TOO_FEW_PIXELS and not crop.feasible
    assert crop.needed_px == (600, 600)
    assert inside(crop, (300, 400))
    assert all(rule.state is PASSED for rule in crop.rules)


def test_bands_no_crop_can_meet_are_a_matter_of_proportions() -> None:
    # Eyes 28..35 mm up and a crown 2.5..5 mm from the top of a 51 mm print: for a head
    # whose eyes sit near its chin no crop holds both.
    odd = print_spec(51, head_mm=Range(25, 35), eyes_mm=Range(28, 35), top_margin_mm=Range(2.5, 5))
    crop = plan(odd, head_top=0.2, head_chin_y=0.6, eyes_y_center=0.55)
    assert crop.reason is CropReason.HEAD_PROPORTIONS and not crop.feasible
    assert any(rule.state is FAILED for rule in crop.rules)


def test_the_eyes_move_off_their_middle_to_keep_the_head_in_the_crop() -> None:
    # Mid-band eyes would put the crop's top 48 px below the crown (at 240 px); the
    # crop keeps the crown and the eyes still land in 28..35 mm.
    crop = plan(US, head_top=0.2, head_chin_y=0.6, eyes_y_center=0.5)
    assert crop.feasible
    assert crop.top == 240
    eyes_rule = next(r for r in crop.rules if r.kind is RuleKind.EYES)
    assert eyes_rule.state is PASSED
    assert eyes_rule.value == pytest.approx(28.5, abs=0.1)


def test_a_crop_that_would_cut_the_head_off_is_a_matter_of_proportions() -> None:
    # Eyes almost at the chin: every crop with them in the band cuts off the crown,
    # though no band of the spec is broken.
    crop = plan(US, head_top=0.2, head_chin_y=0.6, eyes_y_center=0.58)
    assert crop.reason is CropReason.HEAD_PROPORTIONS and not crop.feasible
    assert all(rule.state is PASSED for rule in crop.rules)


@pytest.mark.parametrize(
    "values",
    [
        {"head_top": 0.2, "head_chin_y": None},
        {"head_top": None, "head_chin_y": 0.6},
        {"head_top": 0.2, "head_chin_y": 0.6, "face_x_center": None},
        {"head_top": 0.6, "head_chin_y": 0.2},
    ],
    ids=["no chin", "no head top", "no face centre", "chin above the head"],
)
def test_no_crop_without_a_measured_head(values: dict[str, float | None]) -> None:
    judgement = judge(US, Measurements(**{**PHONE, **values}))
    assert judgement.aspect_matches is False
    assert judgement.crop is None


def test_no_crop_without_the_eyes_a_spec_places() -> None:
    """The file cannot be made without the eye line the spec sets, so no crop is promised;
    the head and eye rules say they were not checked."""
    judgement = judge(US, Measurements(**{**PHONE, "head_top": 0.2, "head_chin_y": 0.6}))
    assert judgement.crop is None
    assert [
        (r.kind, r.state) for r in judgement.rules if r.kind in (RuleKind.HEAD, RuleKind.EYES)
    ] == [
        (RuleKind.HEAD, NOT_CHECKED),
        (RuleKind.EYES, NOT_CHECKED),
    ]


@pytest.mark.parametrize(
    ("size", "states"),
    [
        ((3000, 4000), (RuleState.PASSED, RuleState.PASSED)),
        ((600, 750), (RuleState.PASSED, RuleState.PASSED)),
        ((599, 749), (RuleState.FAILED, RuleState.FAILED)),
    ],
)
def test_a_bare_pixel_minimum_asks_for_no_shape(
    size: tuple[int, int], states: tuple[RuleState, RuleState]
) -> None:
    """UK digital photos: "at least 600 pixels wide and 750 pixels tall", any shape."""
    from services.specs import catalogue

    judgement = judge(catalogue().get("uk-passport-digital"), Measurements(size_pix=size))
    pixels = [r for r in judgement.rules if r.kind is RuleKind.PIXELS]
    assert [r.state for r in pixels] == list(states)
    assert [r.bound for r in pixels] == [Range(600, float("inf")), Range(750, float("inf"))]
    assert judgement.aspect_matches is None and judgement.crop is None
    assert not any(r.kind is RuleKind.ASPECT for r in judgement.rules)


def test_an_unmeasured_head_on_a_photo_of_another_shape_is_not_checked() -> None:
    """No crop can be planned without the head; its rules say so instead of vanishing."""
    judgement = judge(FULL, dataclasses.replace(GOOD, size_pix=(700, 800), head_top=None))
    assert judgement.crop is None
    assert only(judgement, RuleKind.HEAD).state is NOT_CHECKED
    assert only(judgement, RuleKind.EYES).state is NOT_CHECKED
    assert not judgement.complete


@pytest.mark.parametrize(
    ("the_spec", "replaced"),
    [
        (FULL, {"face_x_occupy", "eyes_y_center"}),
        (print_spec(40, dpi=300, **HEAD_MM), {"face_x_occupy"}),
        (print_spec(40, dpi=300), set()),
    ],
    ids=["head and eyes", "head only", "neither"],
)
def test_a_spec_replaces_only_the_generic_rules_it_judges(
    the_spec: Spec, replaced: set[str]
) -> None:
    assert judge(the_spec, GOOD).replaces == replaced
    assert "face_x_center" not in judge(the_spec, GOOD).replaces


def test_a_background_no_named_colour_is_near_is_other() -> None:
    green = judge(FULL, dataclasses.replace(GOOD, background_color=(120, 160, 90)))
    rule = only(green, RuleKind.BACKGROUND)
    assert rule.state is FAILED and rule.seen == "other"
    grey = judge(FULL, dataclasses.replace(GOOD, background_color=(221, 221, 221)))
    assert only(grey, RuleKind.BACKGROUND).seen == "light-grey"
