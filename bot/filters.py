"""Filters that hand the photo to the handler."""

from __future__ import annotations

from typing import Any

from aiogram.filters import Filter
from aiogram.types import Message

from bot.media import image_ref
from services.metering import Caller


class HasImage(Filter):
    """Passes when the message carries a photo or a document; injects ``image``.

    ``any_document=False`` keeps only documents that say they are images, for
    messages the user did not address to a command.
    """

    def __init__(self, *, any_document: bool = True) -> None:
        self.any_document = any_document

    async def __call__(self, message: Message) -> bool | dict[str, Any]:
        ref = image_ref(message, any_document=self.any_document)
        return {"image": ref} if ref is not None else False


class RepliesToImage(Filter):
    """A message sent as a reply to a photo: injects ``replied_image`` and its message."""

    async def __call__(self, message: Message) -> bool | dict[str, Any]:
        ref = image_ref(message.reply_to_message)
        if ref is None:
            return False
        return {"replied_image": ref, "replied_message": message.reply_to_message}


def is_album(message: Message, album: list[Message] | None = None) -> bool:
    """More than one photo arrived together (see ``AlbumMiddleware``)."""
    return album is not None and len(album) > 1


class IsAdmin(Filter):
    """The sender is in ``ADMIN_IDS`` (see ``CallerMiddleware``)."""

    async def __call__(self, message: Message, caller: Caller | None = None) -> bool:
        return caller is not None and caller.admin
