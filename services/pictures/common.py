"""What every picture shares: the pass/fail colours, the font and the JPEG encoding.

Labels are digits and ASCII only: no CJK font is shipped with the bot.
"""

from __future__ import annotations

import io
import math
from functools import lru_cache
from typing import Final

from PIL import Image, ImageFont

Colour = tuple[int, int, int]
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

PASS: Final[Colour] = (40, 200, 70)
FAIL: Final[Colour] = (235, 30, 30)
BACKGROUND: Final[Colour] = (24, 24, 24)  # gaps, padding and the score band
MIN_LABEL_PX: Final = 12  # smallest text drawn, however crowded the photo
_JPEG_QUALITY: Final = 88


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    # 4:4:4 so thin coloured lines keep their colour.
    image.save(buffer, "JPEG", quality=_JPEG_QUALITY, subsampling=0)
    return buffer.getvalue()


@lru_cache(maxsize=64)
def font(size: int) -> Font:
    return ImageFont.load_default(size=size)


def finite(*values: float) -> bool:
    return all(isinstance(v, int | float) and math.isfinite(v) for v in values)
