"""Drawing a check's measurements onto the photo.

Numbers like ``eyes_y_center 0.66`` mean little to a user; the same value drawn
as a red eye line below the green band where the eyes should be says what to
change. Coordinates in ``detect_result`` are shares of the image the provider
saw, which is the ``PreparedImage``, so they map onto any scaled copy of it.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from PIL import Image, ImageDraw, ImageFont

from services.images import PreparedImage, open_for_drawing
from services.models import CheckResult, Measurements
from services.pictures.common import FAIL, PASS, Colour, jpeg
from services.rules import RULES_BY_FIELD, RuleOutcome

NEUTRAL: Final[Colour] = (255, 200, 0)  # measured, but no rule judges it; shows on blue and white
_LABEL_BACKGROUND: Final = (0, 0, 0, 150)
_BAND_ALPHA: Final = 60
# Ratios far outside 0..1 are nonsense from the provider; clamp so drawing cannot overflow.
_RATIO_RANGE: Final = (-1.0, 2.0)


def annotate_check(image: PreparedImage, result: CheckResult, *, max_side: int = 1280) -> bytes:
    """JPEG bytes of a copy of ``image`` with ``result``'s measurements drawn on it."""
    canvas = open_for_drawing(image.data, max_side)
    painter = _Painter.on(canvas, result)
    painter.paint()
    return jpeg(painter.image)


async def annotate_check_async(
    image: PreparedImage, result: CheckResult, *, max_side: int = 1280
) -> bytes:
    return await asyncio.to_thread(annotate_check, image, result, max_side=max_side)


def _ratio(value: object) -> float | None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    number = float(value)
    if not math.isfinite(number):
        return None
    return min(_RATIO_RANGE[1], max(_RATIO_RANGE[0], number))


@dataclass(slots=True)
class _Painter:
    """One drawing pass: sizes scale with the image so a 600 px and a 1280 px copy look alike."""

    image: Image.Image
    measurements: Measurements
    outcomes: Mapping[str, RuleOutcome]
    line: int
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont
    draw: ImageDraw.ImageDraw = field(init=False)

    @classmethod
    def on(cls, image: Image.Image, result: CheckResult) -> _Painter:
        short = min(image.size)
        return cls(
            image=image,
            measurements=result.measurements,
            outcomes=result.outcomes,
            line=max(2, round(short / 200)),
            font=ImageFont.load_default(size=max(10, round(short / 36))),
        )

    @property
    def width(self) -> int:
        return self.image.width

    @property
    def height(self) -> int:
        return self.image.height

    def colour(self, rule_field: str) -> Colour:
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
        self._bands()
        self.draw = ImageDraw.Draw(self.image)
        self._head_outline()
        self._face_box()
        self._horizontal_lines()
        self._width_brackets()
        self._nose()

    # -- elements

    def _bands(self) -> None:
        """The allowed ranges, as see-through stripes, for the values that were measured."""
        overlay = Image.new("RGBA", self.image.size, (0, 0, 0, 0))
        shade = ImageDraw.Draw(overlay)
        drawn = False
        rule = RULES_BY_FIELD.get("face_x_center")
        if rule and rule.low is not None and rule.high is not None:
            if self.value("face_x_center") is not None:
                box: tuple[float, float, float, float] = (
                    self.x(rule.low),
                    0,
                    self.x(rule.high),
                    self.height,
                )
                shade.rectangle(box, fill=(*self.colour("face_x_center"), _BAND_ALPHA))
                drawn = True
        rule = RULES_BY_FIELD.get("eyes_y_center")
        if rule and rule.low is not None and rule.high is not None:
            if self.value("eyes_y_center") is not None:
                box = (0, self.y(rule.low), self.width, self.y(rule.high))
                shade.rectangle(box, fill=(*self.colour("eyes_y_center"), _BAND_ALPHA))
                drawn = True
        if drawn:
            self.image = Image.alpha_composite(self.image.convert("RGBA"), overlay).convert("RGB")

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
            self._label(f"x {centre:.3f}", x + self.line * 2, y0 + self.line * 2, "face_x_center")

    def _horizontal_lines(self) -> None:
        for name, text in (("head_top", "top"), ("eyes_y_center", "eyes"), ("head_chin_y", "chin")):
            ratio = self.value(name)
            if ratio is None:
                continue
            y = self.y(ratio)
            colour = self.colour(name)
            self.draw.line([(0, y), (self.width, y)], fill=colour, width=self.line)
            self._label(f"{text} {ratio:.3f}", self.line * 2, y, name, above=True)

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
        self._label(f"w {occupy:.3f}", right, y - tick, "face_x_occupy")

    def _nose(self) -> None:
        nose = self.measurements.nose_tip
        if nose is None:
            return
        nx, ny = _ratio(nose[0]), _ratio(nose[1])
        if nx is None or ny is None:
            return
        x, y, r = self.x(nx), self.y(ny), self.line * 2
        self.draw.ellipse((x - r, y - r, x + r, y + r), outline=NEUTRAL, width=self.line)

    def _label(
        self, text: str, x: float, y: float, rule_field: str, *, above: bool = False
    ) -> None:
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
        self.draw.text((x - left, y - top), text, fill=self.colour(rule_field), font=self.font)
