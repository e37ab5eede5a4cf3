"""Drawing a check's measurements onto the photo.

Numbers like ``eyes_y_center 0.66`` mean little to a user; the same value drawn
as a red eye line below the green band where the eyes should be says what to
change. Coordinates in ``detect_result`` are shares of the image the provider
saw, which is the ``PreparedImage``, so they map onto any scaled copy of it.

Judged against a document spec (a ``Judgement``), the picture draws the document's
bands instead of the generic ones: where the crown must be for the head height (above
the chin line), the eye line's band measured up from the bottom, and the crown-to-top
margin, in the print's shares of the height. When the photo has the wrong shape the
bands are drawn inside the crop frame the judgement plans (``Judgement.crop``), the
frame green when that crop works and red when it does not, the rest of the photo dimmed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from PIL import Image, ImageDraw, ImageFont

from services import workers
from services.images import PreparedImage, open_for_drawing
from services.models import CheckResult, Measurements
from services.pictures.common import FAIL, PASS, Colour, jpeg
from services.pictures.common import font as sized_font
from services.rules import RULES_BY_FIELD, RuleOutcome
from services.specs.judge import Judgement, RuleKind, RuleState, RuleUnit, SpecRule

NEUTRAL: Final[Colour] = (255, 200, 0)  # measured, but no rule judges it; shows on blue and white
_LABEL_BACKGROUND: Final = (0, 0, 0, 150)
_BAND_ALPHA: Final = 60
_DIM_ALPHA: Final = 110  # outside a crop frame: still readable, clearly not the photo
_SPEC_KINDS: Final = (RuleKind.HEAD, RuleKind.EYES, RuleKind.TOP_MARGIN)
# Ratios far outside 0..1 are nonsense from the provider; clamp so drawing cannot overflow.
_RATIO_RANGE: Final = (-1.0, 2.0)
# A JPEG that libjpeg decodes straight to 3/4 of max_side or more is drawn on at that size:
# sizes here scale with the canvas, and the resample it skips costs more than the decode.
_DRAFT_SHARE: Final = 0.75


def annotate_check(
    image: PreparedImage,
    result: CheckResult,
    judgement: Judgement | None = None,
    *,
    max_side: int = 1280,
) -> bytes:
    """JPEG bytes of a copy of ``image`` with ``result``'s measurements drawn on it;
    with ``judgement``, the document's bands in place of the generic ones."""
    return paint_check(open_canvas(image, max_side), result, judgement)


async def annotate_check_async(
    image: PreparedImage,
    result: CheckResult,
    judgement: Judgement | None = None,
    *,
    max_side: int = 1280,
) -> bytes:
    return await workers.run(annotate_check, image, result, judgement, max_side=max_side)


def open_canvas(image: PreparedImage, max_side: int = 1280) -> Image.Image:
    """The copy of ``image`` a check is drawn on: it can be decoded before the answer comes."""
    return open_for_drawing(image.data, max_side, draft_share=_DRAFT_SHARE)


def paint_check(canvas: Image.Image, result: CheckResult, judgement: Judgement | None) -> bytes:
    """``annotate_check`` on a canvas from ``open_canvas``, which it draws on."""
    painter = _Painter.on(canvas, result, judgement)
    painter.paint()
    return jpeg(painter.image)


def _ratio(value: object) -> float | None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    number = float(value)
    if not math.isfinite(number):
        return None
    return min(_RATIO_RANGE[1], max(_RATIO_RANGE[0], number))


def _state_colour(states: Iterable[RuleState]) -> Colour:
    """Red when any rule failed, green when there are rules and all passed, else neutral."""
    listed = list(states)
    if any(state is RuleState.FAILED for state in listed):
        return FAIL
    if listed and all(state is RuleState.PASSED for state in listed):
        return PASS
    return NEUTRAL


def _amount(rule: SpecRule | None) -> str | None:
    """A geometry rule's value in its unit, for a label; ``None`` when not measured."""
    if rule is None or rule.value is None or not math.isfinite(rule.value):
        return None
    if rule.unit is RuleUnit.MM:
        return f"{rule.value:.1f} mm"
    return f"{rule.value:.2f}"


@dataclass(frozen=True, slots=True)
class _SpecView:
    """What a judgement draws: the frame its geometry rules apply to, in the drawn copy's
    pixels, and those rules (the photo's own, or the planned crop's)."""

    # Left, top, right, bottom (past the last pixel), at least a pixel; None: nowhere to draw.
    frame: tuple[float, float, float, float] | None
    rules: Mapping[RuleKind, SpecRule]
    print_height: float | None  # mm: a bound in mm over it is a share of the height
    crop_colour: Colour | None  # the crop frame's outline; None when the shape is right
    replaces: frozenset[str]  # the generic rules the spec judges instead (drawn neutral)

    @classmethod
    def of(cls, judgement: Judgement, size: tuple[int, int], m: Measurements) -> _SpecView:
        spec = judgement.spec
        height = (
            spec.height_mm.middle
            if spec.width_mm is not None and spec.height_mm is not None
            else None
        )
        width, rows = size
        if judgement.aspect_matches is not False:
            frame = (0.0, 0.0, float(width), float(rows))
            return cls(frame, cls._geometry(judgement.rules), height, None, judgement.replaces)
        crop, source = judgement.crop, m.size_pix
        if crop is None or source is None or source[0] <= 0 or source[1] <= 0:
            return cls(None, {}, height, None, judgement.replaces)
        # The plan is in the pixels the measurements were taken in; the copy is scaled.
        sx, sy = width / source[0], rows / source[1]
        left = min(max(round(crop.left * sx), 0), width - 1)
        top = min(max(round(crop.top * sy), 0), rows - 1)
        right = min(max(round((crop.left + crop.width) * sx), left + 1), width)
        bottom = min(max(round((crop.top + crop.height) * sy), top + 1), rows)
        frame = (float(left), float(top), float(right), float(bottom))
        colour = PASS if crop.feasible else FAIL
        return cls(frame, cls._geometry(crop.rules), height, colour, judgement.replaces)

    @staticmethod
    def _geometry(rules: Iterable[SpecRule]) -> dict[RuleKind, SpecRule]:
        return {rule.kind: rule for rule in rules if rule.kind in _SPEC_KINDS}

    def shares(self, rule: SpecRule) -> tuple[float, float] | None:
        """The rule's bound as shares of the frame's height (low, high)."""
        bound = rule.bound
        if bound is None:
            return None
        if rule.unit is RuleUnit.SHARE:
            return (bound.low, bound.high)
        if rule.unit is RuleUnit.MM and self.print_height:
            return (bound.low / self.print_height, bound.high / self.print_height)
        return None

    def colour(self, *kinds: RuleKind) -> Colour:
        return _state_colour(self.rules[k].state for k in kinds if k in self.rules)


@dataclass(slots=True)
class _Painter:
    """One drawing pass: sizes scale with the image so a 600 px and a 1280 px copy look alike."""

    image: Image.Image
    measurements: Measurements
    outcomes: Mapping[str, RuleOutcome]
    line: int
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont
    spec: _SpecView | None = None  # judged against a document: its bands, not the generic ones
    draw: ImageDraw.ImageDraw = field(init=False)

    @classmethod
    def on(
        cls, image: Image.Image, result: CheckResult, judgement: Judgement | None = None
    ) -> _Painter:
        short = min(image.size)
        m = result.measurements
        return cls(
            image=image,
            measurements=m,
            outcomes=result.outcomes,
            line=max(2, round(short / 200)),
            font=sized_font(max(10, round(short / 36))),
            spec=None if judgement is None else _SpecView.of(judgement, image.size, m),
        )

    @property
    def width(self) -> int:
        return self.image.width

    @property
    def height(self) -> int:
        return self.image.height

    def colour(self, rule_field: str) -> Colour:
        if self.spec is not None and rule_field in self.spec.replaces:
            return NEUTRAL  # the spec judges this in its own way
        outcome = self.outcomes.get(rule_field)
        if outcome is None:
            return NEUTRAL
        return PASS if outcome.ok else FAIL

    def value(self, name: str) -> float | None:
        return _ratio(self.measurements.value(name))

    def x(self, ratio: float) -> float:
        return ratio * self.width

    def y(self, ratio: float) -> float:
        return ratio * self.height

    def paint(self) -> None:
        if self.spec is None:
            self._bands()
        else:
            self._spec_bands(self.spec)
        self.draw = ImageDraw.Draw(self.image)
        if self.spec is not None:
            self._crop_frame(self.spec)
        self._head_outline()
        self._face_box()
        self._horizontal_lines()
        if self.spec is None:  # the generic face widths; a spec sets none
            self._width_brackets()
        self._nose()

    # -- elements

    def _bands(self) -> None:
        """The allowed ranges, as see-through stripes, for the values that were measured:
        the face's centre down the photo, the eye line across it, the eye line's colour
        where they cross. Each tints only its own pixels (the same pixels as laying one
        see-through overlay on the whole photo, at a third of the cost)."""
        down: tuple[tuple[int, int, int, int], Colour] | None = None
        across: tuple[tuple[int, int, int, int], Colour] | None = None
        rule = RULES_BY_FIELD.get("face_x_center")
        if rule and rule.low is not None and rule.high is not None:
            if self.value("face_x_center") is not None:
                box = self._pixels(self.x(rule.low), 0, self.x(rule.high), self.height)
                down = box, self.colour("face_x_center")
        rule = RULES_BY_FIELD.get("eyes_y_center")
        if rule and rule.low is not None and rule.high is not None:
            if self.value("eyes_y_center") is not None:
                box = self._pixels(0, self.y(rule.low), self.width, self.y(rule.high))
                across = box, self.colour("eyes_y_center")
        if down is not None:
            (left, top, right, bottom), colour = down
            if across is None:
                self._tint((left, top, right, bottom), colour)
            else:
                _, cut_top, _, cut_bottom = across[0]
                self._tint((left, top, right, cut_top), colour)
                self._tint((left, cut_bottom, right, bottom), colour)
        if across is not None:
            self._tint(*across)

    def _pixels(self, x0: float, y0: float, x1: float, y1: float) -> tuple[int, int, int, int]:
        """The pixels ``ImageDraw.rectangle`` fills for these corners (truncated, both ends
        in), as a box ``paste`` takes, inside the picture."""
        return (
            max(0, int(x0)),
            max(0, int(y0)),
            min(self.width, int(x1) + 1),
            min(self.height, int(y1) + 1),
        )

    def _tint(self, box: tuple[int, int, int, int], colour: Colour) -> None:
        left, top, right, bottom = box
        if right > left and bottom > top:
            alpha = Image.new("L", (right - left, bottom - top), _BAND_ALPHA)
            self.image.paste(colour, box, alpha)

    def _spec_spans(self, view: _SpecView) -> list[tuple[float, float, RuleKind]]:
        """Where the document wants the crown, the crown's margin and the eye line: rows of
        the drawn copy (top, bottom), in drawing order, for the rules the spec sets."""
        if view.frame is None:
            return []
        top, bottom = view.frame[1], view.frame[3]
        tall = bottom - top
        spans: list[tuple[float, float, RuleKind]] = []
        head = view.rules.get(RuleKind.HEAD)
        shares = None if head is None else view.shares(head)
        if shares is not None:
            chin, crown = self.value("head_chin_y"), self.value("head_top")
            if chin is not None:  # the crown's band above the chin: the head's height range
                y = self.y(chin)
                spans.append((y - shares[1] * tall, y - shares[0] * tall, RuleKind.HEAD))
            elif crown is not None:  # no chin: the chin's band below the crown
                y = self.y(crown)
                spans.append((y + shares[0] * tall, y + shares[1] * tall, RuleKind.HEAD))
        margin = view.rules.get(RuleKind.TOP_MARGIN)
        shares = None if margin is None else view.shares(margin)
        if shares is not None:
            spans.append((top + shares[0] * tall, top + shares[1] * tall, RuleKind.TOP_MARGIN))
        eyes = view.rules.get(RuleKind.EYES)
        shares = None if eyes is None else view.shares(eyes)
        if shares is not None:  # measured up from the bottom edge
            spans.append(
                (top + (1 - shares[1]) * tall, top + (1 - shares[0]) * tall, RuleKind.EYES)
            )
        return spans

    def _spec_bands(self, view: _SpecView) -> None:
        """The document's bands inside its frame; outside a crop frame the photo is dimmed."""
        if view.frame is None:
            return
        overlay = Image.new("RGBA", self.image.size, (0, 0, 0, 0))
        shade = ImageDraw.Draw(overlay)
        left, top, right, bottom = view.frame
        if view.crop_colour is not None:
            shade.rectangle((0, 0, self.width, self.height), fill=(0, 0, 0, _DIM_ALPHA))
            shade.rectangle((left, top, right - 1, bottom - 1), fill=(0, 0, 0, 0))
        for y0, y1, kind in self._spec_spans(view):
            y0, y1 = max(y0, top), min(y1, bottom - 1)
            if y1 < y0:
                continue  # wholly outside the frame
            # A later band replaces an earlier one where they overlap (the crown's two).
            shade.rectangle((left, y0, right - 1, y1), fill=(*view.colour(kind), _BAND_ALPHA))
        self._blend(overlay)

    def _blend(self, overlay: Image.Image) -> None:
        """Lay the see-through ``overlay`` on the picture: pasted through its own alpha, the
        same pixels as compositing, without turning the whole picture RGBA and back."""
        self.image.paste(overlay, (0, 0), overlay)

    def _crop_frame(self, view: _SpecView) -> None:
        if view.frame is None or view.crop_colour is None:
            return
        left, top, right, bottom = view.frame
        box = (left, top, right - 1, bottom - 1)
        self.draw.rectangle(box, outline=view.crop_colour, width=self.line)
        at = left + self.line * 2
        self._label("crop", at, bottom - self.line * 2, view.crop_colour, above=True)

    def _vertical_span(self) -> tuple[float, float]:
        """Head top to chin when measured; the whole height otherwise."""
        top, chin = self.value("head_top"), self.value("head_chin_y")
        y0 = self.y(top) if top is not None else 0.0
        y1 = self.y(chin) if chin is not None else float(self.height)
        return (min(y0, y1), max(y0, y1))

    def _head_outline(self) -> None:
        """Head with hair (head_left/right): thin, so the face box stays the main mark."""
        y0, y1 = self._vertical_span()
        thin = max(1, self.line // 2)
        for name in ("head_left", "head_right"):
            ratio = self.value(name)
            if ratio is not None:
                x = self.x(ratio)
                self.draw.line([(x, y0), (x, y1)], fill=NEUTRAL, width=thin)

    def _face_box(self) -> None:
        centre, occupy = self.value("face_x_center"), self.value("face_x_occupy")
        y0, y1 = self._vertical_span()
        if centre is not None and occupy is not None:
            half = abs(occupy) / 2
            box = (self.x(centre - half), y0, self.x(centre + half), y1)
            self.draw.rectangle(box, outline=self.colour("face_x_occupy"), width=self.line)
        if centre is not None:
            x = self.x(centre)
            self.draw.line([(x, y0), (x, y1)], fill=self.colour("face_x_center"), width=self.line)
            colour = self.colour("face_x_center")
            self._label(f"x {centre:.3f}", x + self.line * 2, y0 + self.line * 2, colour)

    def _horizontal_lines(self) -> None:
        view = self.spec
        left = 0.0 if view is None or view.frame is None else view.frame[0]
        for name, text in (("head_top", "top"), ("eyes_y_center", "eyes"), ("head_chin_y", "chin")):
            ratio = self.value(name)
            if ratio is None:
                continue
            y = self.y(ratio)
            if view is None:
                colour, label = self.colour(name), f"{text} {ratio:.3f}"
            else:
                colour, label = self._spec_line(view, name, text, ratio)
            self.draw.line([(0, y), (self.width, y)], fill=colour, width=self.line)
            self._label(label, left + self.line * 2, y, colour, above=True)

    @staticmethod
    def _spec_line(view: _SpecView, name: str, text: str, ratio: float) -> tuple[Colour, str]:
        """A measured line under a spec: coloured by the spec's rules it bears on, labelled
        with the spec's figure where there is one (the crown's margin, the eye line's
        height, the head's height at the chin)."""
        kinds = {
            "head_top": (RuleKind.TOP_MARGIN, RuleKind.HEAD),
            "eyes_y_center": (RuleKind.EYES,),
            "head_chin_y": (RuleKind.HEAD,),
        }[name]
        amount = _amount(view.rules.get(kinds[0]))
        if amount is None:
            return view.colour(*kinds), f"{text} {ratio:.3f}"
        if name == "head_chin_y":
            text = "head"
        return view.colour(*kinds), f"{text} {amount}"

    def _width_brackets(self) -> None:
        """The allowed face widths, centred on the face: the box edges should fall inside."""
        rule = RULES_BY_FIELD.get("face_x_occupy")
        centre, occupy = self.value("face_x_center"), self.value("face_x_occupy")
        if rule is None or rule.low is None or rule.high is None or centre is None:
            return
        if occupy is None:
            return
        chin, eyes = self.value("head_chin_y"), self.value("eyes_y_center")
        at = chin if chin is not None else eyes if eyes is not None else 0.9
        y = self.y(at) + self.line * 3
        colour = self.colour("face_x_occupy")
        tick = self.line * 3
        for side in (-1, 1):
            inner = self.x(centre + side * rule.low / 2)
            outer = self.x(centre + side * rule.high / 2)
            self.draw.line([(inner, y), (outer, y)], fill=colour, width=self.line)
            for x in (inner, outer):
                self.draw.line([(x, y - tick), (x, y + tick)], fill=colour, width=self.line)
        right = self.x(centre + rule.high / 2) + self.line * 2
        self._label(f"w {occupy:.3f}", right, y - tick, colour)

    def _nose(self) -> None:
        nose = self.measurements.nose_tip
        if nose is None:
            return
        nx, ny = _ratio(nose[0]), _ratio(nose[1])
        if nx is None or ny is None:
            return
        x, y, r = self.x(nx), self.y(ny), self.line * 2
        self.draw.ellipse((x - r, y - r, x + r, y + r), outline=NEUTRAL, width=self.line)

    def _label(self, text: str, x: float, y: float, colour: Colour, *, above: bool = False) -> None:
        """Text on a dark patch, kept inside the image, coloured like its element."""
        left, top, right, bottom = self.draw.textbbox((0, 0), text, font=self.font)
        w, h = right - left, bottom - top
        pad = max(1, self.line)
        if above:
            y = y - h - pad * 2 - self.line
        x = min(max(pad, x), self.width - w - pad)
        y = min(max(pad, y), self.height - h - pad)
        # textbbox is typed float; Pillow's fonts measure in whole pixels, so ceil keeps them.
        patch_size = (math.ceil(w + pad * 2), math.ceil(h + pad * 2))
        patch = Image.new("RGBA", patch_size, _LABEL_BACKGROUND)
        self.image.paste(patch, (round(x - pad), round(y - pad)), patch)
        self.draw.text((x - left, y - top), text, fill=colour, font=self.font)
