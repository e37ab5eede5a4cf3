"""Running an operation for a message: download, call the service, reply.

Shared by every way into an operation (command, caption, reply, button, waiting
flow), so each way is only a filter and a call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, fields, replace
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.fsm.storage.base import BaseStorage, StorageKey
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.types import BufferedInputFile, InlineKeyboardMarkup, Message
from aiogram.utils.chat_action import ChatActionSender

from bot import render
from bot.config import Settings
from bot.keyboards import can_make, make_buttons, spec_countries
from bot.media import ImageRef, download, image_ref
from bot.pacing import paced
from services import metrics
from services.errors import ImageError, ProviderError, ServiceError
from services.metering import Caller
from services.models import HeadPose, Measurements, Operation
from services.specs import Spec
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
    """What the user asked for beyond the photo: ``/faces all`` adds the attributes;
    a check's ``spec`` is the id of the document spec it judges against (resolved
    before the download: see ``bot.handlers.spec.spec_for_check``), and ``offer_spec``
    says nothing was chosen, so the reply offers /spec."""

    attributes: bool = False
    spec: str | None = None
    offer_spec: bool = False

    @classmethod
    def parse(cls, args: str | None) -> Options:
        words = set((args or "").lower().split())
        return cls(attributes=bool(words & {"all", "attributes", "attrs", "full"}))

    def with_spec(self, spec: Spec | None, *, offer: bool) -> Options:
        return replace(self, spec=None if spec is None else spec.id, offer_spec=offer)

    def to_data(self) -> dict[str, Any]:
        return {"attributes": self.attributes, "spec": self.spec, "offer_spec": self.offer_spec}

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Options:
        spec = data.get("spec")
        return cls(
            attributes=bool(data.get("attributes")),
            spec=spec if isinstance(spec, str) else None,
            offer_spec=bool(data.get("offer_spec")),
        )


@dataclass(frozen=True, slots=True)
class Photo:
    """One photo to run an operation on, with what its reply depends on."""

    data: bytes
    ref: ImageRef
    options: Options
    settings: Settings
    caller: Caller | None


@dataclass(frozen=True, slots=True)
class Report:
    """The reply's text sections, its picture and the picture's file name; for a check
    against a document, the spec and what the check measured (for "Make the file")."""

    sections: list[str]
    picture: bytes
    name: str
    spec: Spec | None = None
    measurements: Measurements | None = None


async def _check(services: Services, photo: Photo) -> Report:
    # A spec id kept in a waiting flow may have been renamed by a deploy since: logged,
    # and the generic check. (Imported here: ``bot.handlers`` imports this module.)
    from bot.handlers.spec import stored_spec

    spec = stored_spec(photo.options.spec)
    outcome = await services.check.check(photo.data, photo.caller, spec=spec)
    sections = render.check_report(
        outcome.result,
        outcome.image,
        compressed=not photo.ref.as_document,
        fell_back_from=outcome.fell_back_from,
        judgement=outcome.judgement,
        passed=outcome.passed,
        offer_spec=photo.options.offer_spec and spec is None,
    )
    return Report(sections, outcome.picture, "check.jpg", spec, outcome.result.measurements)


async def _detect(services: Services, photo: Photo) -> Report:
    attributes = photo.options.attributes
    outcome = await services.detect.detect(photo.data, attributes=attributes, caller=photo.caller)
    sections = render.detect_report(outcome, attributes=attributes)
    return Report(sections, outcome.picture, "faces.jpg")


async def _analyze(services: Services, photo: Photo) -> Report:
    outcome = await services.analyze.analyze(photo.data, photo.caller)
    sensitive = photo.settings.analyze_sensitive_attributes
    sections = render.analyze_report(outcome, sensitive=sensitive)
    return Report(sections, outcome.picture, "analyze.jpg")


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


async def send_report(
    message: Message,
    picture: bytes,
    name: str,
    sections: list[str],
    markup: InlineKeyboardMarkup | None = None,
) -> Message:
    """The picture, replying to ``message``, with what fits in its caption, then the rest;
    ``markup`` goes under the last message, which is returned."""
    caption, rest = render.split_for_caption(sections)
    last = await message.reply_photo(
        BufferedInputFile(picture, filename=name),
        caption=caption,
        reply_markup=None if rest else markup,
    )
    for index, text in enumerate(rest):
        last = await message.answer(text, reply_markup=markup if index == len(rest) - 1 else None)
    return last


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
    """Check, detect or analyze one photo and answer ``message`` (the photo's message),
    if the user's pacing lets it start (``bot.pacing``)."""
    async with paced(message, caller) as admission:
        if admission.granted:
            await _run_single(operation, message, image, bot, services, settings, options, caller)


async def _run_single(
    operation: Operation,
    message: Message,
    image: ImageRef,
    bot: Bot,
    services: Services,
    settings: Settings,
    options: Options | None,
    caller: Caller | None,
) -> None:
    run = _SINGLE[operation]
    options = options or Options()
    started = time.perf_counter()
    async with ChatActionSender.upload_photo(bot=bot, chat_id=message.chat.id):
        try:
            data = await download(bot, image)
            photo = Photo(data, image, options, settings, caller)
            report = await run(services, photo)
        except ServiceError as error:
            _log_failure(operation, message, error)
            await message.reply(render.error_text(error))
            metrics.reply(operation, metrics.outcome_of(error), time.perf_counter() - started)
            return
    offer = operation is Operation.CHECK and options.offer_spec and options.spec is None
    # Under a report a press answers with a new message (``SpecChoice.fresh``).
    markup = spec_countries(None, fresh=True) if offer else None
    last = await send_report(message, report.picture, report.name, report.sections, markup)
    metrics.reply(operation, "ok", time.perf_counter() - started)
    if report.spec is not None and report.measurements is not None:
        user_id = caller.user_id if caller is not None else _user_of(message)
        await offer_make(
            bot, last, image, report.spec, report.measurements, user_id, settings.flow_timeout
        )


async def run_album(
    operation: Operation,
    album: list[Message],
    bot: Bot,
    services: Services,
    settings: Settings,
    options: Options | None = None,
    caller: Caller | None = None,
) -> None:
    """Each photo of the album in turn, as many as the user's pacing admits (one in-flight
    slot for the album, a token a photo); the first photo is told about the others."""
    items = [(item, ref) for item in album[:MAX_ALBUM_PHOTOS] if (ref := image_ref(item))]
    if not items:
        return
    async with paced(items[0][0], caller, len(items)) as admission:
        for item, ref in items[: admission.granted]:
            await _run_single(operation, item, ref, bot, services, settings, options, caller)


async def run_compare(
    message: Message,
    first: ImageRef,
    second: ImageRef,
    bot: Bot,
    services: Services,
    caller: Caller | None = None,
    admitted: Callable[[], Awaitable[bool]] | None = None,
) -> None:
    """Compare two photos; answer ``message`` (the second photo's message), if the user's
    pacing lets it start and then ``admitted`` agrees (a waiting flow ends only when its
    compare does start, and only once)."""
    async with paced(message, caller) as admission:
        if admission.granted and (admitted is None or await admitted()):
            await _run_compare(message, first, second, bot, services, caller)


async def _run_compare(
    message: Message,
    first: ImageRef,
    second: ImageRef,
    bot: Bot,
    services: Services,
    caller: Caller | None,
) -> None:
    started = time.perf_counter()
    async with ChatActionSender.upload_photo(bot=bot, chat_id=message.chat.id):
        try:
            data_a, data_b = await asyncio.gather(
                _download_nth(bot, first, 1), _download_nth(bot, second, 2)
            )
            outcome = await services.compare.compare(data_a, data_b, caller)
        except ServiceError as error:
            _log_failure(Operation.COMPARE, message, error)
            await message.reply(render.error_text(error))
            outcome_label = metrics.outcome_of(error)
            metrics.reply(Operation.COMPARE, outcome_label, time.perf_counter() - started)
            return
    await send_report(message, outcome.picture, "compare.jpg", render.compare_report(outcome))
    metrics.reply(Operation.COMPARE, "ok", time.perf_counter() - started)


async def _download_nth(bot: Bot, ref: ImageRef, nth: int) -> bytes:
    try:
        return await download(bot, ref)
    except ImageError as error:
        error.values["photo"] = nth
        raise


# --- "Make the file": what a check reply's buttons need ------------------------------------


def _user_of(message: Message) -> int:
    return message.from_user.id if message.from_user is not None else message.chat.id


def measurements_data(measurements: Measurements) -> dict[str, Any]:
    """The measured fields as plain JSON values (``Measurements.from_provider`` reads them
    back): the whole ``Measurements``, not only what ``make_photo`` reads today."""
    data: dict[str, Any] = {}
    for field in fields(measurements):
        value = getattr(measurements, field.name)
        if value is None:
            continue
        if isinstance(value, HeadPose):
            value = {"yaw": value.yaw, "pitch": value.pitch, "roll": value.roll}
        elif isinstance(value, tuple):
            value = list(value)
        data[field.name] = value
    return data


@dataclass(frozen=True, slots=True)
class Kept:
    """What a check reply's "Make" buttons work from."""

    spec_id: str
    image: ImageRef  # the user's original, downloaded again by its file id
    measurements: Measurements
    at: float  # time.time() of the check
    made: bool = False  # the file was made: its button is gone, a press makes nothing


class MakeKeeper:
    """Keeps what each check reply's "Make" buttons need for ``FLOW_TIMEOUT`` seconds.

    One per dispatcher. The data goes into the dispatcher's FSM storage (memory, or Redis
    with ``REDIS_URL``, so a webhook process other than the one that checked can answer
    the press) under a key of its own per reply message, ``destiny="make:<message id>"``:
    not the chat's one flow slot, so a later command or a newer check does not lose it.
    The photo itself is never kept, only its Telegram file id.

    What this process kept is deleted once it is older than the timeout, the next time it
    keeps something, so memory storage does not grow; a press on an older reply finds
    nothing, or finds it stale, either way "too old".

    ``claim``/``release`` guard against a double press: an in-process set of the
    (chat, message) pairs being made. That is enough because a press is answered by the
    process that received it and Telegram shows the user the first press's progress;
    two processes each taking one of two quick presses could still both make a file,
    which costs nothing but a second file (and the re-check of the second).
    """

    def __init__(self, storage: BaseStorage) -> None:
        self.storage = storage
        self._busy: set[tuple[int, int]] = set()
        self._kept: deque[tuple[float, StorageKey]] = deque()

    @staticmethod
    def key(bot_id: int, chat_id: int, user_id: int, message_id: int) -> StorageKey:
        return StorageKey(
            bot_id=bot_id, chat_id=chat_id, user_id=user_id, destiny=f"make:{message_id}"
        )

    async def keep(self, key: StorageKey, kept: Kept, max_age: float) -> None:
        data = {
            "spec": kept.spec_id,
            "image": kept.image.to_data(),
            "measurements": measurements_data(kept.measurements),
            "at": kept.at,
            "made": kept.made,
        }
        await self.storage.set_data(key, data)
        self._kept.append((kept.at, key))
        while self._kept and kept.at - self._kept[0][0] > max_age:
            _at, old = self._kept.popleft()
            await self.forget(old)

    async def load(self, key: StorageKey, max_age: float) -> Kept | None:
        """What was kept under ``key``; None when nothing was, or it is over ``max_age`` s old."""
        data = await self.storage.get_data(key)
        try:
            kept = Kept(
                spec_id=str(data["spec"]),
                image=ImageRef.from_data(data["image"]),
                measurements=Measurements.from_provider(data["measurements"]),
                at=float(data["at"]),
                made=bool(data.get("made", False)),
            )
        except (KeyError, TypeError, ValueError):
            if data:
                log.warning("make data under %s is malformed; dropping it", key.destiny)
                await self.forget(key)
            return None
        if time.time() - kept.at > max_age:
            await self.forget(key)
            return None
        return kept

    async def mark_made(self, key: StorageKey) -> None:
        """The reply's file was made: a press of its (removed) "Make" button makes no other."""
        await self.storage.update_data(key, {"made": True})

    async def forget(self, key: StorageKey) -> None:
        await self.storage.set_data(key, {})  # Redis deletes the key
        if isinstance(self.storage, MemoryStorage):
            self.storage.storage.pop(key, None)  # an empty record would stay

    def claim(self, chat_id: int, message_id: int) -> bool:
        """Mark the reply as being made; False when it already is (a second press)."""
        pair = (chat_id, message_id)
        if pair in self._busy:
            return False
        self._busy.add(pair)
        return True

    def release(self, chat_id: int, message_id: int) -> None:
        self._busy.discard((chat_id, message_id))


MAKE_KEEPER: ContextVar[MakeKeeper | None] = ContextVar("make_keeper", default=None)
"""The keeper of the dispatcher handling the current update, set by
``bot.app.create_dispatcher`` (``run_single`` is called from many handlers, none
of which has the FSM storage to pass on). None outside a dispatcher: no buttons then."""


async def offer_make(
    bot: Bot,
    reply: Message,
    image: ImageRef,
    spec: Spec,
    measurements: Measurements,
    user_id: int,
    max_age: float,
) -> None:
    """Put "Make a ... photo" (and the print sheet) under a check reply against ``spec``,
    keeping what the buttons need under that reply's message id for ``max_age`` seconds."""
    keeper = MAKE_KEEPER.get()
    if keeper is None or not can_make(spec):
        return
    key = keeper.key(bot.id, reply.chat.id, user_id, reply.message_id)
    await keeper.keep(key, Kept(spec.id, image, measurements, time.time()), max_age)
    try:
        await bot.edit_message_reply_markup(
            chat_id=reply.chat.id,
            message_id=reply.message_id,
            reply_markup=make_buttons(spec, reply.message_id),
        )
    except TelegramAPIError as error:
        log.info("could not add the make buttons to message %s: %s", reply.message_id, error)
