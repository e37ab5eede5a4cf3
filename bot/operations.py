"""Running an operation for a message: download, call the service, reply.

Shared by every way into an operation (command, caption, reply, button, waiting
flow), so each way is only a filter and a call.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from aiogram import Bot
from aiogram.types import BufferedInputFile, Message
from aiogram.utils.chat_action import ChatActionSender
from aiogram.utils.i18n import gettext as _

from bot import render
from bot.config import Settings
from bot.media import ImageRef, download, image_ref
from services.errors import ImageError, OperationUnavailable, ProviderError, ServiceError
from services.facecheck import Services
from services.metering import Caller
from services.models import Operation

log = logging.getLogger(__name__)

# The command of each operation; ``detect`` is ``/faces`` to users.
COMMANDS: dict[Operation, str] = {
    Operation.CHECK: "check",
    Operation.COMPARE: "compare",
    Operation.DETECT: "faces",
    Operation.ANALYZE: "analyze",
}
SINGLE_PHOTO = (Operation.CHECK, Operation.DETECT, Operation.ANALYZE)
MAX_ALBUM_PHOTOS = 10


@dataclass(frozen=True, slots=True)
class Options:
    """What the user asked for beyond the photo: ``/faces all`` adds the attributes."""

    attributes: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, args: str | None) -> Options:
        words = set((args or "").lower().split())
        return cls(attributes=bool(words & {"all", "attributes", "attrs", "full"}))

    def to_data(self) -> dict[str, Any]:
        return {"attributes": self.attributes}

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Options:
        return cls(attributes=bool(data.get("attributes")))


async def on_not_a_photo(message: Message) -> None:
    """A flow waiting for a photo got something else."""
    await message.answer(_("flow.expecting_photo"))


async def refuse_if_unavailable(message: Message, services: Services, operation: Operation) -> bool:
    """Say so, and return True, when the operation has no working provider here."""
    if services.available(operation):
        return False
    error = OperationUnavailable(operation.value, services.provider_name(operation))
    await message.reply(render.error_text(error))
    return True


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
    options = options or Options()
    async with ChatActionSender.upload_photo(bot=bot, chat_id=message.chat.id):
        try:
            data = await download(bot, image)
            if operation is Operation.CHECK:
                check = await services.check.check(data, caller)
                sections = render.check_report(
                    check.result,
                    check.image,
                    compressed=not image.as_document,
                    fell_back_from=check.fell_back_from,
                )
                picture, name = check.annotated, "check.jpg"
            elif operation is Operation.DETECT:
                detect = await services.detect.detect(
                    data, attributes=options.attributes, caller=caller
                )
                sections = render.detect_report(detect, attributes=options.attributes)
                picture, name = detect.picture, "faces.jpg"
            else:
                analyze = await services.analyze.analyze(data, caller)
                sections = render.analyze_report(
                    analyze, sensitive=settings.analyze_sensitive_attributes
                )
                picture, name = analyze.picture, "analyze.jpg"
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
