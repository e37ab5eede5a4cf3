"""Two faces side by side with the score: the picture of a compare.

Each compared face is cropped with a margin into a square tile, decoded only as large
as the tile needs; the score sits in a band below, green for the same person and red
for different people. When a photo shows more than one face, the faces are numbered
as the reply numbers them (1 is ``faces[0]``): the tile carries the compared face's
number, and a row under the tiles shows the photos whole with every face boxed and
numbered, the compared pair in the verdict's colour, the others in grey. The two faces
of one photo (``compare_one_photo``) are two tiles numbered 1 and 2 over that photo.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import Final

from PIL import Image, ImageDraw

from services import workers
from services.images import PreparedImage, open_for_drawing
from services.models import Box, Face
from services.pictures.common import (
    BACKGROUND,
    FAIL,
    MIN_LABEL_PX,
    PASS,
    Colour,
    finite,
    font,
    jpeg,
)

SAME_COLOUR: Final = PASS
DIFFERENT_COLOUR: Final = FAIL
OTHER_FACE_COLOUR: Final[Colour] = (190, 190, 190)  # faces shown but not compared
CROP_MARGIN: Final = 0.35  # the face box side grows by this share before cropping
_BAND_SHARE: Final = 0.22  # score band height per tile side
_SCORE_TEXT_SHARE: Final = 0.7  # score digits height per band height
_TAG_SHARE: Final = 0.09  # number tag text height per tile side (or overview short side)
# Largest side decoded for a crop; keeps a hostile size from overflowing the maths.
_MAX_DECODE_SIDE: Final = 1 << 16


def tile_gap(tile: int) -> int:
    """The gap between the two tiles of ``compare_side_by_side``."""
    return max(4, round(tile / 32))


def band_height(tile: int) -> int:
    """The height of the score band under the tiles."""
    return max(32, round(tile * _BAND_SHARE))


def picture_size(tile: int, *, overview: bool) -> tuple[int, int]:
    """The compare picture's size: two tiles and the band, with the row of whole photos
    (``overview``) a tile high between them when faces are numbered."""
    gap = tile_gap(tile)
    height = tile + band_height(tile) + (tile + gap if overview else 0)
    return (2 * tile + gap, height)


@dataclass(frozen=True, slots=True)
class Shown:
    """One photo of the picture: its faces, and the position of the one compared."""

    image: PreparedImage
    faces: tuple[Face, ...] = ()
    index: int = 0

    @property
    def face(self) -> Face | None:
        return self.faces[self.index] if 0 <= self.index < len(self.faces) else None

    @property
    def numbered(self) -> bool:
        """More than one face: the numbers say which was compared."""
        return len(self.faces) > 1


def compare_side_by_side(
    a: Shown,
    b: Shown,
    score: float,
    *,
    tile: int = 512,
    same: bool,
) -> bytes:
    """JPEG: the compared faces of photos A and B as ``tile`` squares, the score as "87%"
    in a band below; the score, the tile frames and the compared faces' boxes are green
    when ``same`` and red otherwise.

    When either photo shows more than one face, each such tile is tagged with its face's
    number, and a row under the tiles shows each photo whole with its faces boxed (and
    numbered where there are several). Size: ``picture_size(tile, overview=...)``.
    """
    if tile < 1:
        raise ValueError("tile must be positive")
    overview = a.numbered or b.numbered
    colour = SAME_COLOUR if same else DIFFERENT_COLOUR
    canvas = Image.new("RGB", picture_size(tile, overview=overview), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    gap = tile_gap(tile)
    for x, shown in zip((0, tile + gap), (a, b), strict=True):
        number = shown.index + 1 if shown.numbered else None
        _put_tile(canvas, draw, _tile(shown.image, shown.face, tile), x, colour, number)
        if overview:
            view = _overview(
                shown.image,
                shown.faces,
                (tile, tile),
                colour,
                compared={shown.index},
                numbers=shown.numbered,
            )
            canvas.paste(view, (x, tile + gap))
    _score_band(canvas, draw, score, tile, colour)
    return jpeg(canvas)


async def compare_side_by_side_async(
    a: Shown,
    b: Shown,
    score: float,
    *,
    tile: int = 512,
    same: bool,
) -> bytes:
    return await workers.run(compare_side_by_side, a, b, score, tile=tile, same=same)


def compare_one_photo(
    image: PreparedImage,
    faces: tuple[Face, ...],
    pair: tuple[int, int],
    score: float,
    *,
    tile: int = 512,
    same: bool,
) -> bytes:
    """JPEG: the two faces of one photo compared with each other (``faces[pair[0]]`` and
    ``faces[pair[1]]``) as two tiles tagged with their numbers, the photo whole under
    them with both faces boxed and numbered in the verdict's colour, and the score band.
    Size: ``picture_size(tile, overview=True)``.
    """
    if tile < 1:
        raise ValueError("tile must be positive")
    colour = SAME_COLOUR if same else DIFFERENT_COLOUR
    width, height = picture_size(tile, overview=True)
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    gap = tile_gap(tile)
    for x, index in zip((0, tile + gap), pair, strict=True):
        face = faces[index] if 0 <= index < len(faces) else None
        _put_tile(canvas, draw, _tile(image, face, tile), x, colour, index + 1)
    view = _overview(image, faces, (width, tile), colour, compared=set(pair), numbers=True)
    canvas.paste(view, (0, tile + gap))
    _score_band(canvas, draw, score, tile, colour)
    return jpeg(canvas)


async def compare_one_photo_async(
    image: PreparedImage,
    faces: tuple[Face, ...],
    pair: tuple[int, int],
    score: float,
    *,
    tile: int = 512,
    same: bool,
) -> bytes:
    return await workers.run(compare_one_photo, image, faces, pair, score, tile=tile, same=same)


def _tile(image: PreparedImage, face: Face | None, size: int) -> Image.Image:
    box = face.box if face is not None else None
    return crop_face(image.data, box, size, frame=(image.width, image.height))


def _put_tile(
    canvas: Image.Image,
    draw: ImageDraw.ImageDraw,
    picture: Image.Image,
    x: int,
    colour: Colour,
    number: int | None,
) -> None:
    """A face tile at ``x`` with its frame and, when faces are numbered, its number."""
    tile = picture.width
    canvas.paste(picture, (x, 0))
    frame = max(2, round(tile / 128))
    draw.rectangle((x, 0, x + tile - 1, tile - 1), outline=colour, width=frame)
    if number is not None:
        px = max(MIN_LABEL_PX, round(tile * _TAG_SHARE))
        _tag(draw, str(number), x + frame, frame, px, colour)


def _score_band(
    canvas: Image.Image, draw: ImageDraw.ImageDraw, score: float, tile: int, colour: Colour
) -> None:
    band = band_height(tile)
    score_font = font(max(MIN_LABEL_PX, round(band * _SCORE_TEXT_SHARE)))
    draw.text(
        (canvas.width / 2, canvas.height - band / 2),
        _percent(score),
        font=score_font,
        fill=colour,
        anchor="mm",
    )


@dataclass(frozen=True, slots=True)
class FaceMark:
    """One face on the whole-photo row: its number as the reply says it, its box in
    drawn pixels (inclusive, inside the photo), and whether it was compared."""

    number: int
    box: tuple[int, int, int, int]
    compared: bool


def face_marks(
    faces: tuple[Face, ...],
    compared: Collection[int],
    scale: tuple[float, float],
    area: tuple[int, int, int, int],
) -> list[FaceMark]:
    """The boxes of ``faces`` (provider pixels times ``scale``, moved to ``area``'s
    corner and clipped to it), numbered ``index + 1``; a face wholly outside is left
    out but keeps its number. The compared faces come last, so they are drawn on top."""
    sx, sy = scale
    ax0, ay0, ax1, ay1 = area
    marks = []
    for index, face in enumerate(faces):
        box = face.box
        if not finite(box.left, box.top, box.width, box.height):
            continue
        left, right = sorted((ax0 + box.left * sx, ax0 + (box.left + box.width) * sx))
        top, bottom = sorted((ay0 + box.top * sy, ay0 + (box.top + box.height) * sy))
        x0, y0 = max(ax0, round(left)), max(ay0, round(top))
        x1, y1 = min(ax1, round(right)), min(ay1, round(bottom))
        if x1 < x0 or y1 < y0:
            continue
        marks.append(FaceMark(index + 1, (x0, y0, x1, y1), index in compared))
    marks.sort(key=lambda mark: mark.compared)
    return marks


def _overview(
    image: PreparedImage,
    faces: tuple[Face, ...],
    size: tuple[int, int],
    colour: Colour,
    *,
    compared: Collection[int],
    numbers: bool,
) -> Image.Image:
    """The whole photo fitted into ``size``, every face boxed: the ``compared`` ones in
    ``colour`` with a thicker line, the others grey; numbered 1.. when ``numbers``."""
    width, height = size
    photo = open_for_drawing(image.data, max(width, height))
    fitted = _fit_into(photo.width, photo.height, width, height)
    if photo.size != fitted:
        photo = photo.resize(fitted, Image.Resampling.LANCZOS, reducing_gap=2.0)
    view = Image.new("RGB", size, BACKGROUND)
    ox, oy = (width - photo.width) // 2, (height - photo.height) // 2
    view.paste(photo, (ox, oy))
    draw = ImageDraw.Draw(view)
    scale = (photo.width / max(1, image.width), photo.height / max(1, image.height))
    area = (ox, oy, ox + photo.width - 1, oy + photo.height - 1)
    marks = face_marks(faces, compared, scale, area)
    short = min(width, height)
    for mark in marks:
        line = max(2, round(short / 90)) if mark.compared else max(1, round(short / 256))
        draw.rectangle(mark.box, outline=colour if mark.compared else OTHER_FACE_COLOUR, width=line)
    if numbers:
        px = max(MIN_LABEL_PX, round(short * _TAG_SHARE * 0.6))
        for mark in marks:
            x0, y0 = mark.box[0], mark.box[1]
            tag_h = _tag_size(str(mark.number), px)[1]
            fill = colour if mark.compared else OTHER_FACE_COLOUR
            _tag(draw, str(mark.number), x0, y0 - tag_h if y0 >= tag_h else y0, px, fill)
    return view


def _tag_size(text: str, px: int) -> tuple[int, int]:
    left, top, right, bottom = font(px).getbbox(text)
    pad = max(2, px // 5)
    return (round(right - left) + 2 * pad, round(bottom - top) + 2 * pad)


def _tag(draw: ImageDraw.ImageDraw, text: str, x: int, y: int, px: int, fill: Colour) -> None:
    """``text`` on a ``fill`` tag whose top left corner is ``(x, y)``."""
    tag_font = font(px)
    left, top, _right, _bottom = tag_font.getbbox(text)
    pad = max(2, px // 5)
    width, height = _tag_size(text, px)
    draw.rectangle((x, y, x + width - 1, y + height - 1), fill=fill)
    draw.text((x + pad - left, y + pad - top), text, font=tag_font, fill=_ink(fill))


def _ink(background: Colour) -> Colour:
    r, g, b = background
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


def _fit_into(width: int, height: int, box_width: int, box_height: int) -> tuple[int, int]:
    """``width`` x ``height`` scaled (up or down) to fit ``box_width`` x ``box_height``."""
    scale = min(box_width / max(1, width), box_height / max(1, height))
    return (
        max(1, min(box_width, round(width * scale))),
        max(1, min(box_height, round(height * scale))),
    )


def _percent(score: float) -> str:
    if not finite(score):
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
    if box is None or not finite(box.left, box.top, box.width, box.height):
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
