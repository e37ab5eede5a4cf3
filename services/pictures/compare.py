"""Two faces side by side with the score: the picture of a compare.

Each face is cropped with a margin into a square tile, decoded only as large as
the tile needs; the score sits in a band below, green for the same person and red
for different people.
"""

from __future__ import annotations

import asyncio
import math
from typing import Final

from PIL import Image, ImageDraw

from services.images import PreparedImage, open_for_drawing
from services.models import Box, Face
from services.pictures.common import BACKGROUND, FAIL, MIN_LABEL_PX, PASS, finite, font, jpeg

SAME_COLOUR: Final = PASS
DIFFERENT_COLOUR: Final = FAIL
CROP_MARGIN: Final = 0.35  # the face box side grows by this share before cropping
_BAND_SHARE: Final = 0.22  # score band height per tile side
_SCORE_TEXT_SHARE: Final = 0.7  # score digits height per band height
# Largest side decoded for a crop; keeps a hostile size from overflowing the maths.
_MAX_DECODE_SIDE: Final = 1 << 16


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
    score_font = font(max(MIN_LABEL_PX, round(band * _SCORE_TEXT_SHARE)))
    draw.text(
        (canvas.width / 2, tile + band / 2),
        _percent(score),
        font=score_font,
        fill=colour,
        anchor="mm",
    )
    return jpeg(canvas)


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
