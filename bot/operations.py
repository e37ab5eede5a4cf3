"""Running an operation for a message: download, call the service, reply.

Shared by every way into an operation (command, caption, reply, button, waiting
flow), so each way is only a filter and a call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiogram import Bot
from aiogram.types import BufferedInputFile, Message
from aiogram.utils.chat_action import ChatActionSender

from bot import render
from bot.config import Settings
from bot.media import ImageRef, download, image_ref
from services.errors import ImageError, ProviderError, ServiceError
from services.metering import Caller
from services.models import Operation
from services.wiring import Services

log = logging.getLogger(__name__)

# The command of each operation; ``detect`` is ``/faces`` to users.
COMMANDS: dict[Operation, str] = {
    Operation.CHECK: "check",
    Operation.COMPARE: "compare",
    Operation.DETECT: "faces",
    Operation.ANALYZE: "analyze",
}
MAX_ALBUM_PHOTOS = 10


@dataclass(frozen=True, slots=True)
class Options:
    """What the user asked for beyond the photo: ``/faces all`` adds the attributes."""

    attributes: bool = False

    @classmethod
    def parse(cls, args: str | None) -> Options:
        words = set((args or "").lower().split())
        return cls(attributes=bool(words & {"all", "attributes", "attrs", "full"}))

    def to_data(self) -> dict[str, Any]:
        return {"attributes": self.attributes}

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Options:
        return cls(attributes=bool(data.get("attributes")))


@dataclass(frozen=True, slots=True)
class Photo:
    """One photo to run an operation on, with what its reply depends on."""

    data: bytes
    ref: ImageRef
    options: Options
    settings: Settings
    caller: Caller | None


Report = tuple[list[str], bytes, str]
"""The reply's text sections, its picture and the picture's file name."""


async def _check(services: Services, photo: Photo) -> Report:
    outcome = await services.check.check(photo.data, photo.caller)
    sections = render.check_report(
        outcome.result,
        outcome.image,
        compressed=not photo.ref.as_document,
        fell_back_from=outcome.fell_back_from,
    )
    return sections, outcome.picture, "check.jpg"


async def _detect(services: Services, photo: Photo) -> Report:
    attributes = photo.options.attributes
    outcome = await services.detect.detect(photo.data, attributes=attributes, caller=photo.caller)
    return render.detect_report(outcome, attributes=attributes), outcome.picture, "faces.jpg"


async def _analyze(services: Services, photo: Photo) -> Report:
    outcome = await services.analyze.analyze(photo.data, photo.caller)
    sensitive = photo.settings.analyze_sensitive_attributes
    return render.analyze_report(outcome, sensitive=sensitive), outcome.picture, "analyze.jpg"


# The operations that take one photo (compare takes two: ``run_compare``).
_SINGLE: dict[Operation, Callable[[Services, Photo], Awaitable[Report]]] = {
    Operation.CHECK: _check,
    Operation.DETECT: _detect,
    Operation.ANALYZE: _analyze,
}


def _log_failure(operation: Operation, message: Message, error: ServiceError) -> None:
    user = message.from_user.id if message.from_user else None
    if isinstance(error, ProviderError):
        log.warning(
            "%s for user %s: %s code=%s charged=%s msg=%r task=%s",
            operation.value,
            user,
            error.provider,
            error.code,
            error.charged,
            error.provider_msg,
            error.task_no,
        )
    elif isinstance(error, ImageError):
        log.info("%s for user %s: refused input: %s", operation.value, user, error.problem.value)
    else:
        log.info("%s for user %s: %s", operation.value, user, error)


async def _send(message: Message, picture: bytes, name: str, sections: list[str]) -> None:
    caption, rest = render.split_for_caption(sections)
    await message.reply_photo(BufferedInputFile(picture, filename=name), caption=caption)
    for text in rest:
        await message.answer(text)


async def run_single(
    operation: Operation,
    message: Message,
    image: ImageRef,
    bot: Bot,
    services: Services,
    settings: Settings,
    options: Options | None = None,
    caller: Caller | None = None,
) -> None:
    """Check, detect or analyze one photo and answer ``message`` (the photo's message)."""
    run = _SINGLE[operation]
    async with ChatActionSender.upload_photo(bot=bot, chat_id=message.chat.id):
        try:
            data = await download(bot, image)
            photo = Photo(data, image, options or Options(), settings, caller)
            sections, picture, name = await run(services, photo)
        except ServiceError as error:
            _log_failure(operation, message, error)
            await message.reply(render.error_text(error))
            return
    await _send(message, picture, name, sections)


async def run_album(
    operation: Operation,
    album: list[Message],
    bot: Bot,
    services: Services,
    settings: Settings,
    options: Options | None = None,
    caller: Caller | None = None,
) -> None:
    for item in album[:MAX_ALBUM_PHOTOS]:
        ref = image_ref(item)
        if ref is not None:
            await run_single(operation, item, ref, bot, services, settings, options, caller)


async def run_compare(
    message: Message,
    first: ImageRef,
    second: ImageRef,
    bot: Bot,
    services: Services,
    caller: Caller | None = None,
) -> None:
    """Compare two photos; answer ``message`` (the second photo's message)."""
    async with ChatActionSender.upload_photo(bot=bot, chat_id=message.chat.id):
        try:
            data_a, data_b = await asyncio.gather(
                _download_nth(bot, first, 1), _download_nth(bot, second, 2)
            )
            outcome = await services.compare.compare(data_a, data_b, caller)
        except ServiceError as error:
            _log_failure(Operation.COMPARE, message, error)
            await message.reply(render.error_text(error))
            return
    await _send(message, outcome.picture, "compare.jpg", render.compare_report(outcome))


async def _download_nth(bot: Bot, ref: ImageRef, nth: int) -> bytes:
    try:
        return await download(bot, ref)
    except ImageError as error:
        error.values["photo"] = nth
        raise
