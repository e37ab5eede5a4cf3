"""Drawing face results: numbered boxes on a photo, and two faces side by side.

Face boxes and landmarks are pixels of the image the provider was sent, the
``PreparedImage``; the copy drawn on is usually smaller (``max_side``), so every
coordinate is scaled by drawn size over ``image.width``/``image.height``.

Sizes follow the face, not the photo: a 40 px face in a crowd gets a thin line
and a small (still legible) number, a 600 px portrait face a thick line and a
large one. Labels are digits only: no CJK font is shipped with the bot.
"""

from __future__ import annotations

import asyncio
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from PIL import Image, ImageDraw, ImageFont

from services.annotate import FAIL, PASS
from services.faces import Box, Face
from services.images import PreparedImage, open_for_drawing

Colour = tuple[int, int, int]
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

# High-contrast cycle; face i gets FACE_COLOURS[i % len].
FACE_COLOURS: Final[tuple[Colour, ...]] = (
    (255, 214, 0),  # yellow
    (0, 200, 255),  # cyan
    (255, 60, 200),  # magenta
    (90, 230, 60),  # lime
    (255, 120, 0),  # orange
    (150, 110, 255),  # violet
)
SAME_COLOUR: Final[Colour] = PASS
DIFFERENT_COLOUR: Final[Colour] = FAIL
BACKGROUND: Final[Colour] = (24, 24, 24)  # gaps, padding and the score band

_HALO: Final[Colour] = (0, 0, 0)
_DARK_TEXT: Final[Colour] = (0, 0, 0)
_LIGHT_TEXT: Final[Colour] = (255, 255, 255)
_JPEG_QUALITY: Final = 88

MIN_LABEL_PX: Final = 12  # smallest number drawn, however crowded the photo
_LABEL_SHARE: Final = 0.22  # label font size per pixel of face size
_MAX_LABEL_SHARE_OF_IMAGE: Final = 1 / 12
_LINE_SHARE: Final = 1 / 45
_MAX_LINE: Final = 10
_THIN_FACE: Final = 20  # faces smaller than this (drawn px) get a 1 px line

CROP_MARGIN: Final = 0.35  # the face box side grows by this share before cropping
_BAND_SHARE: Final = 0.22  # score band height per tile side
_SCORE_TEXT_SHARE: Final = 0.7  # score digits height per band height
# Largest side decoded for a crop; keeps a hostile size from overflowing the maths.
_MAX_DECODE_SIDE: Final = 1 << 16


# --------------------------------------------------------------------------- shared


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    # 4:4:4 so thin coloured lines keep their colour.
    image.save(buffer, "JPEG", quality=_JPEG_QUALITY, subsampling=0)
    return buffer.getvalue()


@lru_cache(maxsize=64)
def _font(size: int) -> Font:
    return ImageFont.load_default(size=size)


def _text_colour(background: Colour) -> Colour:
    r, g, b = background
    return _DARK_TEXT if 0.299 * r + 0.587 * g + 0.114 * b > 140 else _LIGHT_TEXT


def _finite(*values: float) -> bool:
    return all(isinstance(v, int | float) and math.isfinite(v) for v in values)


def face_colour(index: int) -> Colour:
    """The colour of the face at 0-based ``index`` (label ``index + 1``)."""
    return FACE_COLOURS[index % len(FACE_COLOURS)]


# --------------------------------------------------------------------------- numbered boxes


def annotate_faces(
    image: PreparedImage,
    faces: Sequence[Face],
    *,
    max_side: int = 1280,
    draw_landmarks: bool = True,
) -> bytes:
    """JPEG of ``image`` with each face boxed and numbered 1..N in the order given.

    A face whose box lies wholly outside the photo is not drawn, but keeps its
    number, so the numbers always match the caller's list.
    """
    canvas = open_for_drawing(image.data, max_side)
    sx = canvas.width / image.width
    sy = canvas.height / image.height
    marks = [
        mark
        for index, face in enumerate(faces)
        if (mark := _FaceMark.of(face, index, sx, sy, canvas.size)) is not None
    ]
    draw = ImageDraw.Draw(canvas)
    # Layers, so no face's line covers another face's number.
    for mark in marks:
        mark.halo(draw)
    for mark in marks:
        mark.box(draw)
    if draw_landmarks:
        for mark in marks:
            mark.landmarks(draw)
    for mark in marks:
        mark.label(draw)
    return _jpeg(canvas)


async def annotate_faces_async(
    image: PreparedImage,
    faces: Sequence[Face],
    *,
    max_side: int = 1280,
    draw_landmarks: bool = True,
) -> bytes:
    return await asyncio.to_thread(
        annotate_faces, image, faces, max_side=max_side, draw_landmarks=draw_landmarks
    )


@dataclass(frozen=True, slots=True)
class _FaceMark:
    """One face in drawn pixels, clipped to the canvas."""

    number: int
    colour: Colour
    # The box as drawn: clipped to the canvas, integer pixels, inclusive.
    x0: int
    y0: int
    x1: int
    y1: int
    size: int  # the face's (unclipped) short side in drawn pixels
    line: int
    points: tuple[tuple[float, float], ...]
    canvas: tuple[int, int]

    @classmethod
    def of(
        cls, face: Face, index: int, sx: float, sy: float, canvas: tuple[int, int]
    ) -> _FaceMark | None:
        box = face.box
        if not _finite(box.left, box.top, box.width, box.height):
            return None
        left, right = sorted((box.left * sx, (box.left + box.width) * sx))
        top, bottom = sorted((box.top * sy, (box.top + box.height) * sy))
        width, height = canvas
        if right < 0 or bottom < 0 or left > width - 1 or top > height - 1:
            return None  # wholly outside the photo
        size = max(1, round(min(right - left, bottom - top)))
        points = tuple(
            (p.x * sx, p.y * sy)
            for p in face.landmarks
            if _finite(p.x, p.y) and 0 <= p.x * sx < width and 0 <= p.y * sy < height
        )
        return cls(
            number=index + 1,
            colour=face_colour(index),
            x0=max(0, round(left)),
            y0=max(0, round(top)),
            x1=min(width - 1, round(right)),
            y1=min(height - 1, round(bottom)),
            size=size,
            line=_line_width(size),
            points=points,
            canvas=canvas,
        )

    def halo(self, draw: ImageDraw.ImageDraw) -> None:
        """A dark contour just outside the coloured line, so it shows on light photos too."""
        if self.line < 2:
            return
        width, height = self.canvas
        outer = (
            max(0, self.x0 - 1),
            max(0, self.y0 - 1),
            min(width - 1, self.x1 + 1),
            min(height - 1, self.y1 + 1),
        )
        draw.rectangle(outer, outline=_HALO, width=1)

    def box(self, draw: ImageDraw.ImageDraw) -> None:
        draw.rectangle((self.x0, self.y0, self.x1, self.y1), outline=self.colour, width=self.line)

    def landmarks(self, draw: ImageDraw.ImageDraw) -> None:
        r = max(1.0, self.line * 0.8)
        for x, y in self.points:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=self.colour, outline=_HALO)

    def label(self, draw: ImageDraw.ImageDraw) -> None:
        """The number on a tag of the box colour: above the box, or inside at the top."""
        text = str(self.number)
        width, height = self.canvas
        font, pad, bbox = _label_font(text, self.size, self.x1 - self.x0 + 1, min(self.canvas))
        left, top, right, bottom = bbox
        tag_w = right - left + 2 * pad
        tag_h = bottom - top + 2 * pad
        y = self.y0 - tag_h
        if y < 0:
            y = self.y0 + self.line  # no room above: inside, under the top line
        x = min(max(0, self.x0), max(0, width - tag_w))
        y = min(max(0, y), max(0, height - tag_h))
        draw.rectangle((x, y, x + tag_w - 1, y + tag_h - 1), fill=self.colour)
        draw.text((x + pad - left, y + pad - top), text, font=font, fill=_text_colour(self.colour))


def _line_width(size: int) -> int:
    if size < _THIN_FACE:
        return 1
    return min(_MAX_LINE, max(2, round(size * _LINE_SHARE)))


def _label_font(
    text: str, face_size: int, box_width: int, image_short_side: int
) -> tuple[Font, int, tuple[int, int, int, int]]:
    """Font, padding and text bbox: from the face size, narrowed to the box width.

    Never below ``MIN_LABEL_PX``: in a crowd a number a little wider than its box
    is better than one nobody can read.
    """
    cap = max(MIN_LABEL_PX, round(image_short_side * _MAX_LABEL_SHARE_OF_IMAGE))
    px = min(cap, max(MIN_LABEL_PX, round(face_size * _LABEL_SHARE)))
    for _ in range(4):
        font = _font(px)
        pad = max(2, px // 5)
        bbox = _bbox(font, text)
        text_w = bbox[2] - bbox[0]
        if text_w + 2 * pad <= box_width or px <= MIN_LABEL_PX:
            break
        fit = math.floor(px * (box_width - 2 * pad) / max(1, text_w))
        px = max(MIN_LABEL_PX, min(px - 1, fit))
    return font, pad, bbox


def _bbox(font: Font, text: str) -> tuple[int, int, int, int]:
    left, top, right, bottom = font.getbbox(text)
    return (round(left), round(top), round(right), round(bottom))


# --------------------------------------------------------------------------- side by side


def tile_gap(tile: int) -> int:
    """The gap between the two tiles of ``compare_side_by_side``."""
    return max(4, round(tile / 32))


def band_height(tile: int) -> int:
    """The height of the score band under the tiles."""
    return max(32, round(tile * _BAND_SHARE))


def compare_side_by_side(
    image_a: PreparedImage,
    face_a: Face | None,
    image_b: PreparedImage,
    face_b: Face | None,
    score: float,
    *,
    tile: int = 512,
    same: bool,
) -> bytes:
    """JPEG: face A and face B as ``tile`` squares, the score as "87%" in a band below.

    The score and the tile frames are green when ``same`` and red otherwise.
    Size: ``2 * tile + tile_gap(tile)`` by ``tile + band_height(tile)``.
    """
    if tile < 1:
        raise ValueError("tile must be positive")
    gap = tile_gap(tile)
    band = band_height(tile)
    colour = SAME_COLOUR if same else DIFFERENT_COLOUR
    canvas = Image.new("RGB", (2 * tile + gap, tile + band), BACKGROUND)
    tiles = (
        _tile(image_a, face_a, tile),
        _tile(image_b, face_b, tile),
    )
    draw = ImageDraw.Draw(canvas)
    frame = max(2, round(tile / 128))
    for x, picture in zip((0, tile + gap), tiles, strict=True):
        canvas.paste(picture, (x, 0))
        draw.rectangle((x, 0, x + tile - 1, tile - 1), outline=colour, width=frame)
    font = _font(max(MIN_LABEL_PX, round(band * _SCORE_TEXT_SHARE)))
    draw.text(
        (canvas.width / 2, tile + band / 2), _percent(score), font=font, fill=colour, anchor="mm"
    )
    return _jpeg(canvas)


async def compare_side_by_side_async(
    image_a: PreparedImage,
    face_a: Face | None,
    image_b: PreparedImage,
    face_b: Face | None,
    score: float,
    *,
    tile: int = 512,
    same: bool,
) -> bytes:
    return await asyncio.to_thread(
        compare_side_by_side, image_a, face_a, image_b, face_b, score, tile=tile, same=same
    )


def _tile(image: PreparedImage, face: Face | None, size: int) -> Image.Image:
    box = face.box if face is not None else None
    return crop_face(image.data, box, size, frame=(image.width, image.height))


def _percent(score: float) -> str:
    if not _finite(score):
        return "--%"
    return f"{round(min(1.0, max(0.0, float(score))) * 100)}%"


def crop_face(
    data: bytes,
    box: Box | None,
    size: int,
    *,
    frame: tuple[int, int] | None = None,
) -> Image.Image:
    """An RGB ``size`` x ``size`` picture of the face in ``data``.

    The box grows by ``CROP_MARGIN``, becomes a square on the face centre and is
    moved (not cut) to stay inside the photo; only a face larger than the photo's
    short side gives a cut, non-square region, which is fitted with padding, never
    stretched. ``box`` is in the pixels of ``frame``, the size the provider saw
    (``PreparedImage.width``/``height``); without ``frame``, in the decoded photo's
    own pixels, which then costs a full-size decode. With no usable box (``None``,
    not finite, empty, or outside the photo) the whole photo is fitted.
    """
    if size < 1:
        raise ValueError("size must be positive")
    if frame is not None and (frame[0] < 1 or frame[1] < 1):
        raise ValueError("frame must be positive")
    if box is None or not _finite(box.left, box.top, box.width, box.height):
        return _fit_whole(data, size)
    if box.width <= 0 or box.height <= 0:
        return _fit_whole(data, size)

    if frame is None:
        photo = open_for_drawing(data, _MAX_DECODE_SIDE)
        frame = photo.size
        region = _crop_region(box, frame)
        if region is None:
            return _fit_whole(data, size, photo)
    else:
        region = _crop_region(box, frame)
        if region is None:
            return _fit_whole(data, size)
        # Decode only as large as the crop needs to fill ``size`` pixels.
        shown = max(region[2] - region[0], region[3] - region[1])
        wanted = max(frame) * size / shown
        photo = open_for_drawing(data, max(1, min(_MAX_DECODE_SIDE, math.ceil(wanted))))

    sx = photo.width / frame[0]
    sy = photo.height / frame[1]
    x0, y0, x1, y1 = region
    source = (x0 * sx, y0 * sy, x1 * sx, y1 * sy)
    target = _fit((x1 - x0) * sx, (y1 - y0) * sy, size)
    face = photo.resize(target, Image.Resampling.LANCZOS, box=source, reducing_gap=2.0)
    return _centred(face, size)


def _crop_region(box: Box, frame: tuple[int, int]) -> tuple[float, float, float, float] | None:
    """The square around the face, inside ``frame``; ``None`` when the face is not in it."""
    width, height = frame
    if box.right <= 0 or box.bottom <= 0 or box.left >= width or box.top >= height:
        return None
    side = max(box.width, box.height) * (1 + CROP_MARGIN)
    cx = box.left + box.width / 2
    cy = box.top + box.height / 2
    span_x = min(side, width)
    span_y = min(side, height)
    x0 = min(max(0.0, cx - span_x / 2), width - span_x)
    y0 = min(max(0.0, cy - span_y / 2), height - span_y)
    return (x0, y0, x0 + span_x, y0 + span_y)


def _fit(width: float, height: float, size: int) -> tuple[int, int]:
    if width >= height:
        return (size, max(1, min(size, round(size * height / width))))
    return (max(1, min(size, round(size * width / height))), size)


def _fit_whole(data: bytes, size: int, photo: Image.Image | None = None) -> Image.Image:
    if photo is None:
        photo = open_for_drawing(data, size)
    if max(photo.size) > size:
        photo = photo.resize(
            _fit(photo.width, photo.height, size), Image.Resampling.LANCZOS, reducing_gap=2.0
        )
    elif max(photo.size) < size:  # a small photo: enlarge to fill the tile like a crop does
        photo = photo.resize(_fit(photo.width, photo.height, size), Image.Resampling.LANCZOS)
    return _centred(photo, size)


def _centred(picture: Image.Image, size: int) -> Image.Image:
    if picture.size == (size, size):
        return picture
    tile = Image.new("RGB", (size, size), BACKGROUND)
    tile.paste(picture, ((size - picture.width) // 2, (size - picture.height) // 2))
    return tile
