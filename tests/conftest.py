"""Shared test helpers: catalogue look-ups and synthetic photos."""

from __future__ import annotations

import gettext
import io
import re
from functools import cache
from pathlib import Path

from PIL import Image, ImageDraw

LOCALES_DIR = Path(__file__).resolve().parent.parent / "bot" / "locales"


@cache
def catalogue(locale: str) -> gettext.GNUTranslations:
    with open(LOCALES_DIR / locale / "LC_MESSAGES" / "messages.mo", "rb") as fh:
        return gettext.GNUTranslations(fh)


def tr(locale: str, message_id: str) -> str:
    """The translation, failing loudly when the catalogue lacks it."""
    text = catalogue(locale).gettext(message_id)
    assert text != message_id, f"{message_id} missing in {locale}"
    return text


def fragment(locale: str, message_id: str) -> str:
    """The longest placeholder-free run of a translation, for matching rendered text."""
    parts = re.split(r"\{[^}]*\}", tr(locale, message_id))
    return max(parts, key=len).strip()


def portrait_jpeg(
    width: int = 600,
    height: int = 800,
    *,
    dpi: int | None = 300,
    background: tuple[int, int, int] = (60, 144, 232),
    quality: int = 92,
) -> bytes:
    """A simple ID-photo-like picture: plain background, a head and shoulders."""
    image = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(image)
    cx = width // 2
    draw.ellipse(
        [cx - width * 0.18, height * 0.18, cx + width * 0.18, height * 0.62], fill=(224, 180, 150)
    )
    draw.rectangle([cx - width * 0.4, height * 0.7, cx + width * 0.4, height], fill=(40, 40, 60))
    buffer = io.BytesIO()
    kwargs = {"dpi": (dpi, dpi)} if dpi else {}
    image.save(buffer, "JPEG", quality=quality, **kwargs)
    return buffer.getvalue()
