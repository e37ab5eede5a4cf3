"""Filters that hand the photo to the handler, and the one that keeps handlers from
operations this deployment cannot serve."""

from __future__ import annotations

from typing import Any

from aiogram import Router
from aiogram.dispatcher.event.handler import CallbackType
from aiogram.filters import Filter
from aiogram.fsm.context import FSMContext
from aiogram.types import Message

from bot import render
from bot.flows import FlowTimers, end_flow
from bot.media import image_ref
from services.errors import OperationUnavailable
from services.metering import Caller
from services.models import Operation
from services.wiring import Services


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


async def refuse_if_unavailable(message: Message, services: Services, operation: Operation) -> bool:
    """Say so, and return True, when the operation has no working provider here."""
    if services.available(operation):
        return False
    error = OperationUnavailable(operation.value, services.provider_name(operation))
    await message.reply(render.error_text(error))
    return True


class OperationAvailable(Filter):
    """Passes, injecting ``operation``, when the operation has a working provider; otherwise
    tells the user it has none and fails.

    Use it through ``OperationGate``: aiogram offers a message whose filters fail to the
    routers after, which would answer the refused message a second time.
    """

    def __init__(self, operation: Operation) -> None:
        self.operation = operation

    async def __call__(self, message: Message, services: Services) -> bool | dict[str, Any]:
        if await refuse_if_unavailable(message, services, self.operation):
            return False
        return {"operation": self.operation}


class OperationGate:
    """The router of a feature's messages (those the ``entry`` filters pass), whose
    handlers run only while ``operation`` is available.

    The handlers sit in a router behind ``OperationAvailable``; a second router takes
    what that filter refused, with each handler's own filters, so a refused message ends
    in this feature as a served one would, and a handler that ends the user's flow
    (``ends_flow``) ends it when refused too.
    """

    def __init__(self, name: str, operation: Operation, *entry: CallbackType) -> None:
        self.router = Router(name=name)
        self.router.message.filter(*entry)
        self._served = Router(name=f"{name}.served")
        self._served.message.filter(OperationAvailable(operation))
        self._refused = Router(name=f"{name}.refused")
        self.router.include_routers(self._served, self._refused)

    def register(
        self, handler: CallbackType, *filters: CallbackType, ends_flow: bool = False
    ) -> None:
        self._served.message.register(handler, *filters)
        self._refused.message.register(_end_refused_flow if ends_flow else _refused, *filters)


async def _refused(message: Message) -> None:
    """``OperationAvailable`` has answered; the message goes no further."""


async def _end_refused_flow(message: Message, state: FSMContext, timers: FlowTimers) -> None:
    """``OperationAvailable`` has answered; the command still ends the user's flow."""
    await end_flow(state, timers, message)
