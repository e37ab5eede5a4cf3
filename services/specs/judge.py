"""A check's measurements judged against one document's photo spec, in the document's units.

The generic rule table (``services.rules``) says whether a photo is a good portrait;
this module says whether it is the photo a given passport or visa asks for: head height
and eye line in millimetres for a print (shares for a spec that gives shares), pixels,
kilobytes and format for an upload, the background colour, glasses and head coverings.
Pure functions over frozen dataclasses: no I/O, no wording (the bot maps a rule's kind,
state and ``estimated`` flag to a message and reads the numbers it needs off the rule).

A field the provider only estimated (``CheckResult.estimated``: the offline engine's
glasses) never fails a photo: what would fail it is a warning marked ``estimated``, and
what passes is marked too, so that the reply can say it is an estimate. Dark glasses
still fail, however they were found.

A print has millimetres only when the photo has the print's shape: a 3:4 phone photo
judged for a square US photo gets no millimetre rule but a failed ``aspect`` rule and a
``CropPlan``, the crop with the spec's shape that puts the head where the spec wants it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from services.errors import ServiceError
from services.i18n import N_
from services.models import Measurements
from services.rules import Side
from services.specs import BACKGROUNDS, Crown, GlassesRule, Medium, Range, Spec
from services.specs.crop import HAIR_ALLOWANCE_SHARE, Misfit, place

ASPECT_TOLERANCE: Final = 0.02
"""Relative difference of the photo's width/height from the spec's that still matches.

Wide enough for pixel rounding and a hand-made crop a few pixels off (35x45 mm at
300 dpi is 413x531 px, 0.1 % off), narrow enough to tell a phone's 3:4 (0.750) from
35x45 mm (0.778, 3.6 % apart) and from 33x48 mm (0.688).
"""

BACKGROUND_DELTA_E: Final = 10.0
"""Largest CIE76 distance from an allowed colour that still counts as that colour.

A photographed white wall drifts by exposure and white balance (white exposed to a
230 grey is 8.7 away) while light blue stays at least 13 from white, off-white and
light grey, and white and light grey are 12 apart. 2.3 is a just-noticeable difference.
"""

SIZE_TOLERANCE_MM: Final = 1.0
"""Slack on an exact print size: 2 in is 50.8 mm where the authority writes 51, and a
trimmed print is commonly a millimetre off."""

MM_PER_INCH: Final = 25.4

# Pillow's format names for the ``photo_format`` values the providers report.
_PILLOW_FORMATS: Final = {
    "jpg": "JPEG",
    "png": "PNG",
    "bmp": "BMP",
    "heic": "HEIF",
    "webp": "WEBP",
}

# CIE XYZ of the D65 white, for sRGB -> Lab.
_D65: Final = (0.95047, 1.0, 1.08883)


class RuleKind(StrEnum):
    """What a rule checks; the rules of a judgement come in this order."""

    HEAD = "head"  # chin to crown
    EYES = "eyes"  # eye line above the bottom edge
    TOP_MARGIN = "top_margin"  # crown to the top edge
    ASPECT = "aspect"  # width over height
    PIXELS = "pixels"  # per axis
    KB = "kb"
    FORMAT = "format"
    BACKGROUND = "background"
    GLASSES = "glasses"
    HAT = "hat"


class RuleState(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    # Allowed only under a condition the photo cannot show, or found by an estimate
    # not sure enough to fail on (``SpecRule.estimated``).
    WARNING = "warning"
    NOT_CHECKED = "not_checked"  # the provider did not measure what the rule needs


class RuleUnit(StrEnum):
    MM = "mm"
    PX = "px"
    KB = "kb"  # 1024 bytes
    SHARE = "share"  # of the photo's height, 0..1
    DELTA_E = "delta_e"  # CIE76
    NONE = "none"  # no number (glasses, hat, format) or a plain ratio (aspect)


class Axis(StrEnum):
    WIDTH = "width"
    HEIGHT = "height"


class CropReason(StrEnum):
    OK = "ok"
    HEAD_NEAR_EDGE = "head_near_edge"  # the crop would leave the photo
    HEAD_PROPORTIONS = "head_proportions"  # no crop meets the head and eye bands at once
    TOO_FEW_PIXELS = "too_few_pixels"  # the crop is smaller than the spec's minimum


@dataclass(frozen=True, slots=True)
class SpecRule:
    """One rule's result, with what a reply needs to word it.

    ``bound`` is the bound the value was compared with, in ``unit``: for a spec measured
    to the skull it already includes ``HAIR_ALLOWANCE_SHARE`` (``allows_hair``).
    ``estimated``: what the rule judged was only estimated (``CheckResult.estimated``), so
    a finding it would fail on is a ``WARNING`` instead.
    """

    kind: RuleKind
    state: RuleState
    value: float | None = None
    bound: Range | None = None
    unit: RuleUnit = RuleUnit.NONE
    axis: Axis | None = None  # pixels and size: which side of the photo
    allows_hair: bool = False
    seen: str | None = None  # background: nearest colour name; format; glasses as measured
    allowed: tuple[str, ...] = ()  # background: allowed colour names; format: formats
    estimated: bool = False

    @property
    def side(self) -> Side | None:
        """The side of ``bound`` the value falls out on."""
        if self.value is None or self.bound is None:
            return None
        if self.value < self.bound.low:
            return Side.LOW
        if self.value > self.bound.high:
            return Side.HIGH
        return None


@dataclass(frozen=True, slots=True)
class CropPlan:
    """The best crop with the spec's shape, in source pixels, and whether it works.

    ``rules`` are the head, eye and top-margin rules judged on the crop itself.
    """

    left: int
    top: int
    width: int
    height: int
    reason: CropReason
    needed_px: tuple[int, int] | None  # the spec's minimum width and height
    rules: tuple[SpecRule, ...]

    @property
    def feasible(self) -> bool:
        return self.reason is CropReason.OK


@dataclass(frozen=True, slots=True)
class Judgement:
    """Every rule the spec sets, judged; ``crop`` says how to fix a photo of the wrong shape."""

    spec: Spec
    rules: tuple[SpecRule, ...]
    aspect_matches: bool | None  # None: the spec has no shape, or the size was not measured
    crop: CropPlan | None  # only when the aspect does not match

    @property
    def passed(self) -> bool:
        """No rule failed; says nothing of the rules that were not checked."""
        return all(rule.state is not RuleState.FAILED for rule in self.rules)

    @property
    def complete(self) -> bool:
        return all(rule.state is not RuleState.NOT_CHECKED for rule in self.rules)

    @property
    def replaces(self) -> frozenset[str]:
        """The generic rules (``detect_result`` fields) this spec judges in their place: the
        face's size by the head height, the eye line by the document's; a spec that sets
        neither leaves the generic rules standing, and nothing replaces the centring."""
        kinds = {rule.kind for rule in self.rules}
        if self.crop is not None:
            kinds |= {rule.kind for rule in self.crop.rules}
        return frozenset(field for kind, field in _REPLACED.items() if kind in kinds)

    @property
    def ready(self) -> bool:
        """The photo can be submitted as it is: nothing failed and the shape is right."""
        return self.passed and all(
            rule.state is RuleState.PASSED for rule in self.rules if rule.kind is RuleKind.ASPECT
        )


OTHER_COLOUR: Final = "other"
"""The background's name when no named colour is within ``BACKGROUND_DELTA_E`` of it."""

_REPLACED: Final = {RuleKind.HEAD: "face_x_occupy", RuleKind.EYES: "eyes_y_center"}


class SpecNotCheckable(ServiceError):
    """The document's photo is taken at the office: there is nothing to judge.

    ``values`` carry the spec's id and the authority's reason (English, from the data file).
    """

    message_id = N_("spec.office")

    def __init__(self, spec: Spec) -> None:
        super().__init__(spec.id, values={"spec": spec.id, "reason": spec.office_reason or ""})
        self.spec = spec


def judge(spec: Spec, m: Measurements, *, estimated: tuple[str, ...] = ()) -> Judgement:
    """Judge a check's measurements against ``spec``.

    ``estimated``: the measured fields that are only estimates (``CheckResult.estimated``);
    a rule over one of them warns where it would fail (``SpecRule.estimated``).
    """
    if spec.medium is Medium.OFFICE:
        raise SpecNotCheckable(spec)
    aspect = _aspect(spec, m)
    matches = (
        None
        if aspect is None or aspect.state is RuleState.NOT_CHECKED
        else aspect.state is RuleState.PASSED
    )
    rules: list[SpecRule] = []
    crop = None
    if matches is False:
        crop = _crop(spec, m)
        if crop is None:  # the head was not measured: its rules cannot be judged on a crop
            rules += _geometry(spec, None, None, None, in_print=True)
    else:
        in_print = matches is True
        rules += _geometry(spec, m.head_top, m.head_chin_y, m.eyes_y_center, in_print)
    if aspect is not None:
        rules.append(aspect)
    rules += _pixels(spec, m)
    rules += _upload(spec, m)
    rules += _background(spec, m)
    rules += _glasses(spec, m, estimated="glasses" in estimated)
    rules.append(_hat(m))
    return Judgement(spec=spec, rules=tuple(rules), aspect_matches=matches, crop=crop)


def _ranged(
    kind: RuleKind,
    value: float | None,
    bound: Range,
    unit: RuleUnit,
    *,
    axis: Axis | None = None,
    allows_hair: bool = False,
) -> SpecRule:
    if value is None:
        state = RuleState.NOT_CHECKED
    else:
        state = RuleState.PASSED if bound.holds(value) else RuleState.FAILED
    return SpecRule(kind, state, value, bound, unit, axis, allows_hair)


# --- geometry ------------------------------------------------------------------------------


def _print_height(spec: Spec) -> float | None:
    """The print's height in mm, through which shares of the height become millimetres."""
    if spec.width_mm is None or spec.height_mm is None:
        return None
    return spec.height_mm.middle


@dataclass(frozen=True, slots=True)
class _Band:
    """A geometry bound as applied, with the factor from a share of the height to it."""

    bound: Range
    unit: RuleUnit
    scale: float  # the print height for mm, 1 for shares
    allows_hair: bool


def _bands(spec: Spec) -> dict[RuleKind, _Band]:
    """The head, eye and top-margin bounds the spec gives, in its own units.

    Millimetres where the spec is a print and gives them, shares otherwise; for a spec
    measured to the skull the hair allowance widens the head's high side and the top
    margin's low side (the hair's top is higher than the skull's).
    """
    height = _print_height(spec)
    skull = spec.crown is Crown.SKULL
    bands: dict[RuleKind, _Band] = {}
    given = (
        (RuleKind.HEAD, spec.head_mm, spec.head_share),
        (RuleKind.EYES, spec.eyes_mm, spec.eyes_share),
        (RuleKind.TOP_MARGIN, spec.top_margin_mm, None),
    )
    for kind, mm, share in given:
        if mm is not None and height is not None:
            bound, unit, scale = mm, RuleUnit.MM, height
        elif share is not None:
            bound, unit, scale = share, RuleUnit.SHARE, 1.0
        else:
            continue
        hair = skull and kind is not RuleKind.EYES
        if hair:
            slack = HAIR_ALLOWANCE_SHARE * scale
            bound = (
                Range(bound.low, bound.high + slack)
                if kind is RuleKind.HEAD
                else Range(bound.low - slack, bound.high)
            )
        bands[kind] = _Band(bound, unit, scale, hair)
    return bands


def _geometry(
    spec: Spec, top: float | None, chin: float | None, eyes: float | None, in_print: bool
) -> list[SpecRule]:
    """Head, eye-line and top-margin rules from shares of a frame's height (from its top).

    ``in_print``: the frame has the print's shape, so its shares are millimetres too.
    """
    shares = {
        RuleKind.HEAD: None if top is None or chin is None else chin - top,
        RuleKind.EYES: None if eyes is None else 1 - eyes,
        RuleKind.TOP_MARGIN: top,
    }
    rules = []
    for kind, band in _bands(spec).items():
        share = shares[kind]
        value = None
        if share is not None and (band.unit is RuleUnit.SHARE or in_print):
            value = share * band.scale
        rules.append(_ranged(kind, value, band.bound, band.unit, allows_hair=band.allows_hair))
    return rules


# --- size, shape and file ------------------------------------------------------------------


def _print_size(spec: Spec) -> tuple[Range, Range] | None:
    """The print's width and height in mm as judged: an exact size gets its tolerance."""
    if spec.width_mm is None or spec.height_mm is None:
        return None
    return (_tolerant(spec.width_mm), _tolerant(spec.height_mm))


def _tolerant(size: Range) -> Range:
    if size.low == size.high:
        return Range(size.low - SIZE_TOLERANCE_MM, size.high + SIZE_TOLERANCE_MM)
    return size


def _aspect(spec: Spec, m: Measurements) -> SpecRule | None:
    if spec.aspect is None:
        return None
    bound = Range(spec.aspect * (1 - ASPECT_TOLERANCE), spec.aspect * (1 + ASPECT_TOLERANCE))
    value = None if m.size_pix is None else m.size_pix[0] / m.size_pix[1]
    return _ranged(RuleKind.ASPECT, value, bound, RuleUnit.NONE)


def _pixel_bounds(spec: Spec) -> tuple[Range, Range] | None:
    """Width and height in pixels: the spec's, or at least its print size at its dpi
    (the smallest size the ``size`` rule accepts, so that the two rules agree)."""
    if spec.width_px is not None and spec.height_px is not None:
        return spec.width_px, spec.height_px
    size = _print_size(spec)
    if size is None or spec.dpi is None:
        return None
    dpi = spec.dpi
    width, height = (Range(round(mm.low / MM_PER_INCH * dpi), math.inf) for mm in size)
    return width, height


def _pixels(spec: Spec, m: Measurements) -> list[SpecRule]:
    bounds = _pixel_bounds(spec)
    if bounds is None:
        return []
    size = (None, None) if m.size_pix is None else m.size_pix
    return [
        _ranged(RuleKind.PIXELS, size[0], bounds[0], RuleUnit.PX, axis=Axis.WIDTH),
        _ranged(RuleKind.PIXELS, size[1], bounds[1], RuleUnit.PX, axis=Axis.HEIGHT),
    ]


def _upload(spec: Spec, m: Measurements) -> list[SpecRule]:
    """File size and format, where the spec limits them."""
    rules = []
    if spec.kb is not None:
        kb = None if m.file_size is None else m.file_size / 1024
        rules.append(_ranged(RuleKind.KB, kb, spec.kb, RuleUnit.KB))
    if spec.formats:
        if m.photo_format is None:
            state, seen = RuleState.NOT_CHECKED, None
        else:
            seen = _PILLOW_FORMATS.get(m.photo_format.lower(), m.photo_format.upper())
            state = RuleState.PASSED if seen in spec.formats else RuleState.FAILED
        rules.append(SpecRule(RuleKind.FORMAT, state, seen=seen, allowed=spec.formats))
    return rules


# --- appearance ----------------------------------------------------------------------------


def lab(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    """CIE L*a*b* of an sRGB colour under the D65 white."""

    def linear(channel: int) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    def f(t: float) -> float:
        return t ** (1 / 3) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29

    r, g, b = (linear(c) for c in rgb)
    x = f((0.4124564 * r + 0.3575761 * g + 0.1804375 * b) / _D65[0])
    y = f((0.2126729 * r + 0.7151522 * g + 0.0721750 * b) / _D65[1])
    z = f((0.0193339 * r + 0.1191920 * g + 0.9503041 * b) / _D65[2])
    return (116 * y - 16, 500 * (x - y), 200 * (y - z))


def delta_e(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    """CIE76 colour difference: the distance in Lab."""
    return math.dist(lab(a), lab(b))


def _nearest(rgb: tuple[int, int, int], names: tuple[str, ...]) -> tuple[str, float]:
    distances = {name: delta_e(rgb, BACKGROUNDS[name]) for name in names}
    name = min(distances, key=distances.__getitem__)
    return name, distances[name]


def _background(spec: Spec, m: Measurements) -> list[SpecRule]:
    if not spec.backgrounds:
        return []
    bound = Range(0.0, BACKGROUND_DELTA_E)
    rgb = m.background_color
    if rgb is None:
        state, value, seen = RuleState.NOT_CHECKED, None, None
    else:
        nearest, distance = _nearest(rgb, tuple(BACKGROUNDS))
        # Named only when it is that colour; "light grey" for green would mislead.
        seen = nearest if distance <= BACKGROUND_DELTA_E else OTHER_COLOUR
        _, value = _nearest(rgb, spec.backgrounds)
        state = RuleState.PASSED if bound.holds(value) else RuleState.FAILED
    return [
        SpecRule(
            RuleKind.BACKGROUND,
            state,
            value,
            bound,
            RuleUnit.DELTA_E,
            seen=seen,
            allowed=spec.backgrounds,
        )
    ]


def _glasses(spec: Spec, m: Measurements, *, estimated: bool = False) -> list[SpecRule]:
    """Glasses by the spec's rule; dark glasses hide the eyes, so they fail everywhere.

    ``estimated``: the glasses were only estimated, so glasses a spec bans are a warning
    (the reply tells it from the medical-exception warning by ``SpecRule.estimated``).
    """
    seen = m.glasses
    if seen == "dark_glasses":
        state = RuleState.FAILED
    elif spec.glasses is GlassesRule.ALLOWED:
        return []
    elif seen == "normal_glasses":
        banned = spec.glasses is GlassesRule.BANNED and not estimated
        state = RuleState.FAILED if banned else RuleState.WARNING
    elif seen == "no_glasses":
        state = RuleState.PASSED
    else:
        state = RuleState.NOT_CHECKED
    marked = estimated and seen is not None
    return [SpecRule(RuleKind.GLASSES, state, seen=seen, estimated=marked)]


def _hat(m: Measurements) -> SpecRule:
    """Any head covering fails: the religious and medical exceptions most authorities
    grant need a statement the photo cannot show, so they are the authority's business."""
    if m.has_hat is None:
        return SpecRule(RuleKind.HAT, RuleState.NOT_CHECKED)
    return SpecRule(RuleKind.HAT, RuleState.FAILED if m.has_hat else RuleState.PASSED)


# --- crop ----------------------------------------------------------------------------------


def _crop(spec: Spec, m: Measurements) -> CropPlan | None:
    """The frame "Make the file" would cut (``crop.place``), judged as the made file would
    be; ``None`` when the head, the eyes the spec needs, or the face's centre were not
    measured (the head's rules are then not checked)."""
    if m.size_pix is None or spec.aspect is None:  # a mismatch has both; for the types
        return None
    photo_w, photo_h = m.size_pix
    placement = place(spec, m, photo_w, photo_h, spec.aspect)
    if placement.box is None or m.head_top is None or m.head_chin_y is None:
        return None
    box = placement.box
    width, rows = round(box.width), round(box.height)
    left, upper = round(box.left), round(box.top)
    if placement.misfit is not None:
        # Drawn all the same: shrunk about its centre until it fits, then slid inside.
        scale = min(1.0, photo_w / width, photo_h / rows)
        fitted_w, fitted_h = min(photo_w, round(width * scale)), min(photo_h, round(rows * scale))
        left = min(max(left + (width - fitted_w) // 2, 0), photo_w - fitted_w)
        upper = min(max(upper + (rows - fitted_h) // 2, 0), photo_h - fitted_h)
        width, rows = fitted_w, fitted_h

    def share(y: float) -> float:
        return (y * photo_h - upper) / rows

    eyes = m.eyes_y_center
    rules = tuple(
        _geometry(
            spec,
            share(m.head_top),
            share(m.head_chin_y),
            None if eyes is None else share(eyes),
            True,
        )
    )
    needed = _pixel_bounds(spec)
    needed_px = None if needed is None else (math.ceil(needed[0].low), math.ceil(needed[1].low))
    if placement.misfit is Misfit.HEAD_NEAR_EDGE:
        reason = CropReason.HEAD_NEAR_EDGE
    elif placement.misfit is not None or any(rule.state is RuleState.FAILED for rule in rules):
        reason = CropReason.HEAD_PROPORTIONS
    elif needed_px is not None and (width < needed_px[0] or rows < needed_px[1]):
        reason = CropReason.TOO_FEW_PIXELS
    else:
        reason = CropReason.OK
    return CropPlan(left, upper, width, rows, reason, needed_px, rules)
