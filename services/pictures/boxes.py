"""Numbered face boxes on a photo: the picture of /faces (detect) and /analyze.

Face boxes and landmarks are pixels of the image the provider was sent, the
``PreparedImage``; the copy drawn on is usually smaller (``max_side``), so every
coordinate is scaled by drawn size over ``image.width``/``image.height``.

Sizes follow the face, not the photo: a 40 px face in a crowd gets a thin line
and a small (still legible) number, a 600 px portrait face a thick line and a
large one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from PIL import Image, ImageDraw

from services import workers
from services.images import PreparedImage, open_for_drawing
from services.models import Face
from services.pictures.common import MIN_LABEL_PX, Colour, Font, finite, font, jpeg

# High-contrast cycle; face i gets FACE_COLOURS[i % len].
FACE_COLOURS: Final[tuple[Colour, ...]] = (
    (255, 214, 0),  # yellow
    (0, 200, 255),  # cyan
    (255, 60, 200),  # magenta
    (90, 230, 60),  # lime
    (255, 120, 0),  # orange
    (150, 110, 255),  # violet
)

FACES_SIDE: Final = 1280  # the long side of the picture, at most

_HALO: Final[Colour] = (0, 0, 0)
_DARK_TEXT: Final[Colour] = (0, 0, 0)
_LIGHT_TEXT: Final[Colour] = (255, 255, 255)

_LABEL_SHARE: Final = 0.22  # label font size per pixel of face size
_MAX_LABEL_SHARE_OF_IMAGE: Final = 1 / 12
_LINE_SHARE: Final = 1 / 45
_MAX_LINE: Final = 10
_THIN_FACE: Final = 20  # faces smaller than this (drawn px) get a 1 px line


def _text_colour(background: Colour) -> Colour:
    r, g, b = background
    return _DARK_TEXT if 0.299 * r + 0.587 * g + 0.114 * b > 140 else _LIGHT_TEXT


def face_colour(index: int) -> Colour:
    """The colour of the face at 0-based ``index`` (label ``index + 1``)."""
    return FACE_COLOURS[index % len(FACE_COLOURS)]


def annotate_faces(
    image: PreparedImage,
    faces: Sequence[Face],
    *,
    max_side: int = FACES_SIDE,
    draw_landmarks: bool = True,
    canvas: Image.Image | None = None,
) -> bytes:
    """JPEG of ``image`` with each face boxed and numbered 1..N in the order given.

    A face whose box lies wholly outside the photo is not drawn, but keeps its
    number, so the numbers always match the caller's list. ``canvas``, a copy of
    ``image`` from ``prepare_with_canvas``, is drawn on instead of decoding ``image``
    again.
    """
    if canvas is None:
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
    return jpeg(canvas)


async def annotate_faces_async(
    image: PreparedImage,
    faces: Sequence[Face],
    *,
    max_side: int = FACES_SIDE,
    draw_landmarks: bool = True,
    canvas: Image.Image | None = None,
) -> bytes:
    return await workers.run(
        annotate_faces,
        image,
        faces,
        max_side=max_side,
        draw_landmarks=draw_landmarks,
        canvas=canvas,
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
        if not finite(box.left, box.top, box.width, box.height):
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
            if finite(p.x, p.y) and 0 <= p.x * sx < width and 0 <= p.y * sy < height
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
        face_font = font(px)
        pad = max(2, px // 5)
        bbox = _bbox(face_font, text)
        text_w = bbox[2] - bbox[0]
        if text_w + 2 * pad <= box_width or px <= MIN_LABEL_PX:
            break
        fit = math.floor(px * (box_width - 2 * pad) / max(1, text_w))
        px = max(MIN_LABEL_PX, min(px - 1, fit))
    return face_font, pad, bbox


def _bbox(font: Font, text: str) -> tuple[int, int, int, int]:
    left, top, right, bottom = font.getbbox(text)
    return (round(left), round(top), round(right), round(bottom))
