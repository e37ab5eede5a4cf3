"""Finding the photo in a message and fetching its bytes, in memory only."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import Message

from services.errors import ImageError, ImageProblem
from services.images import MAX_DOWNLOAD_BYTES

log = logging.getLogger(__name__)

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".heic", ".heif", ".gif", ".jfif")


@dataclass(frozen=True, slots=True)
class ImageRef:
    file_id: str
    file_size: int | None
    as_document: bool

    def to_data(self) -> dict[str, Any]:
        """A plain dict for FSM storage (memory or Redis)."""
        return {
            "file_id": self.file_id,
            "file_size": self.file_size,
            "as_document": self.as_document,
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> ImageRef:
        return cls(str(data["file_id"]), data.get("file_size"), bool(data.get("as_document")))


def image_ref(message: Message | None, *, any_document: bool = True) -> ImageRef | None:
    """The photo a message carries: the largest ``PhotoSize``, or a document.

    With ``any_document`` every document counts (its bytes decide whether it is an
    image); without it, only documents that say they are images.
    """
    if message is None:
        return None
    if message.photo:
        largest = max(
            message.photo, key=lambda size: (size.width * size.height, size.file_size or 0)
        )
        return ImageRef(largest.file_id, largest.file_size, as_document=False)
    document = message.document
    if document is not None:
        if any_document or looks_like_image(document.mime_type, document.file_name):
            return ImageRef(document.file_id, document.file_size, as_document=True)
    return None


def looks_like_image(mime_type: str | None, file_name: str | None) -> bool:
    if mime_type and mime_type.startswith("image/"):
        return True
    return bool(file_name and file_name.lower().endswith(_IMAGE_SUFFIXES))


async def download(bot: Bot, ref: ImageRef) -> bytes:
    """Fetch the file into memory; refuse early what Telegram will not serve to a bot."""
    if ref.file_size is not None and ref.file_size > MAX_DOWNLOAD_BYTES:
        raise ImageError(ImageProblem.FILE_TOO_BIG, size=ref.file_size, limit_mb=20)
    try:
        file = await bot.get_file(ref.file_id)
    except TelegramBadRequest as error:
        if "too big" in error.message.lower():
            raise ImageError(ImageProblem.FILE_TOO_BIG, limit_mb=20) from None
        raise
    if file.file_size is not None and file.file_size > MAX_DOWNLOAD_BYTES:
        raise ImageError(ImageProblem.FILE_TOO_BIG, size=file.file_size, limit_mb=20)
    buffer = io.BytesIO()
    await bot.download_file(file.file_path or "", destination=buffer, timeout=60)
    data = buffer.getvalue()
    if len(data) > MAX_DOWNLOAD_BYTES:
        raise ImageError(ImageProblem.FILE_TOO_BIG, size=len(data), limit_mb=20)
    return data
