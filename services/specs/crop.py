"""Where a document's frame goes on a photo: the one plan that a check's reply judges and
"Make the file" cuts, so that what the reply promises is what the file is.

The frame has the document's shape and is sized so that the head (chin to the top of the
hair, as every provider measures it) fills the middle of the document's head band, or
ICAO's 70-80 % where the document gives none; it is placed so that the eye line sits mid
band (the top margin's middle where there is no eye band, the head centred where there is
neither), slid towards the inside of the photo as far as the bands allow, and centred on
the face across. Shares are of the frame's height, millimetres go through the print height.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from services.models import Measurements
from services.specs import Crown, Range, Spec

ICAO_HEAD_SHARE: Final = Range(0.70, 0.80)
"""ICAO's head (chin to crown) as a share of the photo's height: the size a frame aims at
when a spec gives no head size."""

HAIR_ALLOWANCE_SHARE: Final = 0.04
"""How much of the photo's height hair may add above the skull: providers measure the
crown with the hair, some authorities mean the skull. About 1.2 cm on an adult head that
fills 75 % of the frame; an estimate, and the reply says it was allowed for."""


class Edge(StrEnum):
    LEFT = "left"
    TOP = "top"
    RIGHT = "right"
    BOTTOM = "bottom"


class Misfit(StrEnum):
    """Why no frame with the document's shape fits this photo."""

    NOT_MEASURED = "not_measured"  # ``missing``: what the plan needs and was not measured
    HEAD_PROPORTIONS = "head_proportions"  # no frame holds the whole head inside the bands
    HEAD_NEAR_EDGE = "head_near_edge"  # ``outside``: the frame's pixels beyond each edge


@dataclass(frozen=True, slots=True)
class Box:
    """A frame in the photo's upright pixels; it may leave the photo (``HEAD_NEAR_EDGE``)."""

    left: float
    top: float
    width: float
    height: float


@dataclass(frozen=True, slots=True)
class Placement:
    box: Box | None  # None only when the head was not measured
    icao: bool  # the head was sized by ICAO's band, the spec giving none of its own
    misfit: Misfit | None = None
    missing: tuple[str, ...] = ()
    outside: Mapping[Edge, int] = field(default_factory=dict)


def band_shares(spec: Spec, mm: Range | None, share: Range | None) -> Range | None:
    """A band as shares of the height: millimetres over the print's height."""
    if mm is not None and spec.height_mm is not None:
        height = spec.height_mm.middle
        return Range(mm.low / height, mm.high / height)
    return share


def head_aim(spec: Spec) -> tuple[float, bool]:
    """The with-hair head height to aim at, as a share; and whether ICAO's band was used.

    An "at most" band (``[0, x]``) says nothing of the low side, so ICAO's gives it; for a
    skull-measured spec the aim is half the hair allowance above the band's middle, which
    keeps the skull inside the band for anything from no hair to the whole allowance.
    """
    band = band_shares(spec, spec.head_mm, spec.head_share)
    if band is None:
        return ICAO_HEAD_SHARE.middle, True
    icao = band.low == 0 and band.high > ICAO_HEAD_SHARE.low
    if icao:
        band = Range(ICAO_HEAD_SHARE.low, band.high)
    hair = HAIR_ALLOWANCE_SHARE / 2 if spec.crown is Crown.SKULL else 0.0
    return band.middle + hair, icao


def place(spec: Spec, m: Measurements, photo_w: int, photo_h: int, aspect: float) -> Placement:
    """The frame of shape ``aspect`` (width over height) for this photo, or why none fits."""
    top, chin, eyes, centre = m.head_top, m.head_chin_y, m.eyes_y_center, m.face_x_center
    eye_band = band_shares(spec, spec.eyes_mm, spec.eyes_share)
    needed = {"head_top": top, "head_chin_y": chin, "face_x_center": centre}
    if eye_band is not None:
        needed["eyes_y_center"] = eyes
    missing = tuple(name for name, value in needed.items() if value is None)
    aim, icao = head_aim(spec)
    if top is None or chin is None or centre is None or missing:
        return Placement(None, icao, Misfit.NOT_MEASURED, missing=missing)
    if chin <= top:
        return Placement(None, icao, Misfit.HEAD_PROPORTIONS)
    height = (chin - top) * photo_h / aim
    width = height * aspect
    top_px, chin_px = top * photo_h, chin * photo_h

    # Every rule gives an interval for the frame's top edge; ``target`` is the middle's.
    low, high = chin_px - height, top_px  # the whole head inside
    target = (top_px + chin_px - height) / 2  # the head centred, when no band says more
    margin = band_shares(spec, spec.top_margin_mm, None)
    if margin is not None:
        if spec.crown is Crown.SKULL:  # the hair's top is higher than the skull's
            margin = Range(margin.low - HAIR_ALLOWANCE_SHARE, margin.high)
        low = max(low, top_px - margin.high * height)
        high = min(high, top_px - margin.low * height)
        target = top_px - margin.middle * height
    if eye_band is not None and eyes is not None:
        eyes_px = eyes * photo_h
        low = max(low, eyes_px - (1 - eye_band.low) * height)
        high = min(high, eyes_px - (1 - eye_band.high) * height)
        target = eyes_px - (1 - eye_band.middle) * height
    left = centre * photo_w - width / 2
    if low > high:
        return Placement(Box(left, target, width, height), icao, Misfit.HEAD_PROPORTIONS)
    upper = min(max(target, low, 0.0), high, photo_h - height)  # slide into the photo
    upper = min(max(upper, low), high)  # but never out of the bands
    box = Box(left, upper, width, height)
    beyond = {
        edge: round(px)
        for edge, px in {
            Edge.LEFT: -left,
            Edge.TOP: -upper,
            Edge.RIGHT: left + width - photo_w,
            Edge.BOTTOM: upper + height - photo_h,
        }.items()
        if round(px) > 0
    }
    if beyond:
        return Placement(box, icao, Misfit.HEAD_NEAR_EDGE, outside=beyond)
    return Placement(box, icao)
