"""The file a user submits for a document, made from their own photo, and a print sheet.

A check measured the photo (``Measurements``: shares of the upright photo); this module
crops, scales and encodes the original so that the head and the eye line sit in the middle
of the spec's bands, and lays print-size copies out on a 10x15 cm sheet for a photo lab.
Pure and synchronous: bytes in, bytes out, no provider and no I/O.

It never invents resolution: a crop that would need enlarging, or that would leave the
photo, is refused with a ``CannotMake`` that carries the numbers for a sentence.

The frame comes from ``services.specs.crop``, the plan a check's reply judges too.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from PIL import Image, ImageCms, ImageDraw

from services.images import ImageInfo, inspect_image, open_for_drawing
from services.models import Measurements
from services.specs import Medium, Range, Spec
from services.specs.crop import Box, Edge, Misfit, place
from services.specs.judge import MM_PER_INCH

DEFAULT_DPI: Final = 300
"""The dpi of a print spec that states none (``specs.toml``: 300 unless the authority says)."""

DEFAULT_ASPECT: Final = 35 / 45
"""Width over height for an upload whose spec gives no shape: the common ID photo's, since
the landscape shape of most phone photos is never an ID photo's."""

BEST_QUALITY: Final = 95
"""The JPEG quality a file gets unless a KB limit asks for less; above it files grow fast
for nothing a print or a face matcher can see."""

LOWEST_QUALITY: Final = 40
"""The lowest JPEG quality the KB search goes to: below it blocks show on skin and hair."""

MAX_ENCODES: Final = 8
"""Encodes one file may cost: quality 95, then a binary search of 40..94 (6 steps)."""

SHEET_DPI: Final = 300
SHEET_PX: Final = (1200, 1800)
"""A 10x15 cm (4x6 in) photo-lab print, portrait, at ``SHEET_DPI``, the dpi labs print at."""

GAP_MM: Final = 2.0
"""White between copies on a sheet: room for a scissors' cut on each side of a mark."""

CUT_MARK_GREY: Final = (160, 160, 160)
"""The one-pixel outline drawn around each copy, just outside its pixels: cutting along
it leaves the photo at its exact size, and grey shows on white and on a white background."""

_DRAFTABLE: Final = frozenset({"JPEG", "MPO"})  # decoded by libjpeg, which scales for free
_MAX_DRAFT: Final = 8  # libjpeg's smallest scale is 1/8
_FULL_CHROMA: Final = 0  # JPEG 4:4:4: sharp colour edges (lips, eyes, cut marks) at small sizes
_RGB_PROFILE: Final = b"RGB "  # the colour space field of an ICC profile for RGB pixels
_SRGB: Final = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


class Reason(StrEnum):
    """Why a file could not be made; ``CannotMake`` carries the numbers for each."""

    OFFICE = "office"  # the photo is taken at the office: nothing to make
    NOT_PRINTABLE = "not_printable"  # the spec gives no print size, or it exceeds the sheet
    NOT_MEASURED = "not_measured"  # ``missing``: the measurements the crop needs
    HEAD_PROPORTIONS = "head_proportions"  # no crop puts the whole head inside the bands
    HEAD_NEAR_EDGE = "head_near_edge"  # ``outside``: source pixels beyond each edge
    TOO_FEW_PIXELS = "too_few_pixels"  # ``needed_px`` > ``have_px``: it would need enlarging
    FILE_TOO_SMALL = "file_too_small"  # ``kb`` < ``kb_range.low`` even at the best quality
    FILE_TOO_LARGE = "file_too_large"  # ``kb`` > ``kb_range.high`` even at the lowest


class CannotMake(Exception):
    """The file cannot be made from this photo for this spec, and the numbers that say why."""

    def __init__(
        self,
        reason: Reason,
        *,
        missing: tuple[str, ...] = (),
        outside: Mapping[Edge, int] | None = None,
        needed_px: tuple[int, int] | None = None,
        have_px: tuple[int, int] | None = None,
        kb: float | None = None,
        kb_range: Range | None = None,
    ) -> None:
        super().__init__(reason.value)
        self.reason = reason
        self.missing = missing
        self.outside: Mapping[Edge, int] = outside or {}
        self.needed_px = needed_px
        self.have_px = have_px
        self.kb = kb
        self.kb_range = kb_range


@dataclass(frozen=True, slots=True)
class MadePhoto:
    """The file to submit. ``crop`` is the box of the upright source it shows (left, top,
    right, bottom, in source pixels); ``icao_proportions``: the spec gives no head size,
    so the head was sized to ICAO's 70-80 % of the height."""

    data: bytes
    format: str  # Pillow's name: "JPEG" or "PNG"
    width: int
    height: int
    dpi: int | None  # written into the file (JFIF density)
    kb: float  # 1024 bytes
    quality: int | None  # JPEG quality; None for PNG
    icao_proportions: bool
    crop: tuple[int, int, int, int]


def make_photo(data: bytes, spec: Spec, m: Measurements) -> MadePhoto:
    """The file ``spec`` asks for, made from the user's original ``data`` measured as ``m``.

    The head as measured, with hair, is sized to the middle of the head band. For a spec
    measured to the skull (``Crown.SKULL``) that is the band's middle plus half of
    ``crop.HAIR_ALLOWANCE_SHARE``: the middle of the band ``judge`` holds a with-hair head to,
    which leaves the skull inside the spec's band for any hair from none to the allowance.
    The eye line goes mid-band (else the top margin, else the head is centred), the face
    centred across. Where the eye line cannot sit
    mid-band without leaving the photo it moves within the band. Raises ``CannotMake``;
    ``ImageError`` for a file that is no photo.
    """
    if spec.medium is Medium.OFFICE:
        raise CannotMake(Reason.OFFICE)
    if spec.medium is Medium.PRINT and (spec.width_mm is None or spec.height_mm is None):
        raise CannotMake(Reason.NOT_PRINTABLE)
    info = inspect_image(data, verify=False)  # _cut's decode refuses a broken photo
    source_w, source_h = info.width, info.height
    dpi = spec.dpi
    icao = False
    if not spec.crop_allowed:
        box = Box(0, 0, source_w, source_h)
        size = _fit(source_w, source_h, spec)
    elif spec.width_mm is not None and spec.height_mm is not None:
        dpi = spec.dpi or DEFAULT_DPI
        size = (_px(spec.width_mm.middle, dpi), _px(spec.height_mm.middle, dpi))
        box, icao = _plan(spec, m, source_w, source_h, size[0] / size[1])
    else:
        box, icao = _plan(spec, m, source_w, source_h, spec.aspect or DEFAULT_ASPECT)
        size = _fit(box.width, box.height, spec)
    if round(box.width) < size[0] or round(box.height) < size[1]:
        have = (round(box.width), round(box.height))
        raise CannotMake(Reason.TOO_FEW_PIXELS, needed_px=size, have_px=have)

    picture = _cut(data, info, box, size)
    takes_png_only = "PNG" in spec.formats and "JPEG" not in spec.formats
    fmt = "PNG" if takes_png_only else "JPEG"
    encoded, quality = _encode_within(picture, fmt, dpi, spec.kb)
    return MadePhoto(
        data=encoded,
        format=fmt,
        width=size[0],
        height=size[1],
        dpi=dpi,
        kb=len(encoded) / 1024,
        quality=quality,
        icao_proportions=icao,
        crop=(
            round(box.left),
            round(box.top),
            round(box.left + box.width),
            round(box.top + box.height),
        ),
    )


def print_sheet(photo: MadePhoto, spec: Spec) -> bytes:
    """A 10x15 cm JPEG at ``SHEET_DPI`` with as many print-size copies of ``photo`` as fit.

    Portrait or landscape, whichever holds more (portrait on a tie); copies ``GAP_MM``
    apart, each outlined in ``CUT_MARK_GREY``, the grid centred on the sheet.
    """
    if spec.width_mm is None or spec.height_mm is None:
        raise CannotMake(Reason.NOT_PRINTABLE)
    cell = (_px(spec.width_mm.middle, SHEET_DPI), _px(spec.height_mm.middle, SHEET_DPI))
    gap = _px(GAP_MM, SHEET_DPI)
    portrait = SHEET_PX
    landscape = (SHEET_PX[1], SHEET_PX[0])
    grids = [(sheet, _grid(cell, sheet, gap)) for sheet in (portrait, landscape)]
    sheet_size, (columns, rows) = max(grids, key=lambda grid: grid[1][0] * grid[1][1])
    if columns * rows == 0:
        raise CannotMake(Reason.NOT_PRINTABLE)

    with Image.open(io.BytesIO(photo.data)) as opened:
        copy = opened.convert("RGB")
    if copy.size != cell:
        copy = copy.resize(cell, Image.Resampling.LANCZOS)
    sheet = Image.new("RGB", sheet_size, (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    left0 = (sheet_size[0] - columns * cell[0] - (columns - 1) * gap) // 2
    top0 = (sheet_size[1] - rows * cell[1] - (rows - 1) * gap) // 2
    for column in range(columns):
        for row in range(rows):
            x, y = left0 + column * (cell[0] + gap), top0 + row * (cell[1] + gap)
            sheet.paste(copy, (x, y))
            draw.rectangle((x - 1, y - 1, x + cell[0], y + cell[1]), outline=CUT_MARK_GREY)
    return _encode(sheet, "JPEG", SHEET_DPI, BEST_QUALITY)


# --- geometry ------------------------------------------------------------------------------


def _px(mm: float, dpi: int) -> int:
    return round(mm / MM_PER_INCH * dpi)


def _plan(
    spec: Spec, m: Measurements, photo_w: int, photo_h: int, aspect: float
) -> tuple[Box, bool]:
    """The frame ``crop.place`` gives, or the refusal it explains."""
    placement = place(spec, m, photo_w, photo_h, aspect)
    if placement.misfit is not None or placement.box is None:
        reason = Reason(placement.misfit or Misfit.NOT_MEASURED)
        raise CannotMake(reason, missing=placement.missing, outside=placement.outside)
    return placement.box, placement.icao


def _fit(width: float, height: float, spec: Spec) -> tuple[int, int]:
    """The largest size inside the spec's pixel bounds that ``width`` x ``height`` source
    pixels give without enlarging; the bounds' minimum where they give less."""
    if spec.width_px is None or spec.height_px is None:
        return round(width), round(height)
    scale = min(1.0, spec.width_px.high / width, spec.height_px.high / height)
    return (
        round(min(max(width * scale, spec.width_px.low), spec.width_px.high)),
        round(min(max(height * scale, spec.height_px.low), spec.height_px.high)),
    )


def _grid(cell: tuple[int, int], sheet: tuple[int, int], gap: int) -> tuple[int, int]:
    """Columns and rows of ``cell``-sized copies ``gap`` apart that fit on ``sheet``."""
    return (sheet[0] + gap) // (cell[0] + gap), (sheet[1] + gap) // (cell[1] + gap)


# --- pixels and bytes ----------------------------------------------------------------------


def _cut(data: bytes, info: ImageInfo, box: Box, size: tuple[int, int]) -> Image.Image:
    """The upright sRGB pixels of ``box`` at ``size``, with one LANCZOS resize of the box.

    A JPEG is decoded at the smallest of 1/1..1/8 that still holds ``size`` (libjpeg's
    ``draft``, through ``open_for_drawing``), so a 12 MP phone photo made into a 51 mm print
    costs a quarter-size decode; the resize then reads only the box.
    """
    reduction = 1
    if info.format in _DRAFTABLE:
        scale = max(size[0] / box.width, size[1] / box.height)
        while reduction < _MAX_DRAFT and scale * reduction * 2 <= 1:
            reduction *= 2
    image = open_for_drawing(data, math.ceil(max(info.width, info.height) / reduction))
    sx, sy = image.width / info.width, image.height / info.height
    width, height = min(box.width * sx, image.width), min(box.height * sy, image.height)
    left = min(max(box.left * sx, 0.0), image.width - width)  # rounding: half a pixel at most
    top = min(max(box.top * sy, 0.0), image.height - height)
    picture = image.resize(
        size, Image.Resampling.LANCZOS, box=(left, top, left + width, top + height)
    )
    icc = image.info.get("icc_profile")
    if isinstance(icc, bytes) and icc[16:20] == _RGB_PROFILE:
        converted = ImageCms.profileToProfile(
            picture, ImageCms.ImageCmsProfile(io.BytesIO(icc)), _SRGB, outputMode="RGB"
        )
        assert converted is not None  # None only when converting in place
        picture = converted
    return picture


def _encode_within(
    image: Image.Image, fmt: str, dpi: int | None, kb: Range | None
) -> tuple[bytes, int | None]:
    """The file and its JPEG quality: the best quality whose size is inside ``kb``.

    Quality 95 when it fits; when it is too big, a binary search down to
    ``LOWEST_QUALITY``, ``MAX_ENCODES`` encodes at most. A file too small even at the
    best quality is refused, not padded.
    """
    quality = BEST_QUALITY if fmt == "JPEG" else None
    data = _encode(image, fmt, dpi, quality)
    if kb is None or kb.holds(len(data) / 1024):
        return data, quality
    if len(data) / 1024 < kb.low:
        raise CannotMake(Reason.FILE_TOO_SMALL, kb=len(data) / 1024, kb_range=kb)
    if quality is None:  # PNG: nothing to search
        raise CannotMake(Reason.FILE_TOO_LARGE, kb=len(data) / 1024, kb_range=kb)
    best: tuple[bytes, int] | None = None
    low, high = LOWEST_QUALITY, BEST_QUALITY - 1
    for _ in range(MAX_ENCODES - 1):
        if low > high:
            break
        quality = (low + high) // 2
        data = _encode(image, fmt, dpi, quality)
        if len(data) / 1024 <= kb.high:
            best, low = (data, quality), quality + 1
        else:
            high = quality - 1
    if best is None:
        raise CannotMake(Reason.FILE_TOO_LARGE, kb=len(data) / 1024, kb_range=kb)
    if len(best[0]) / 1024 < kb.low:  # the range is narrower than one quality step
        raise CannotMake(Reason.FILE_TOO_SMALL, kb=len(best[0]) / 1024, kb_range=kb)
    return best


def _encode(image: Image.Image, fmt: str, dpi: int | None, quality: int | None) -> bytes:
    """Write ``image`` with the dpi as its only metadata: no camera EXIF, GPS or profile."""
    image.info = {}
    options: dict[str, Any] = {}
    if dpi is not None:
        options["dpi"] = (dpi, dpi)
    if quality is not None:
        options.update(quality=quality, subsampling=_FULL_CHROMA)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()
