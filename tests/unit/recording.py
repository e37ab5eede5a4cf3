"""The bot's dispatcher driven in memory, as aiogram's own tests drive theirs.

``RecordingSession`` is aiogram's ``tests/mocked_bot.py`` idea: a ``BaseSession`` that
records every request instead of sending it and answers it (with a queued result, or a
plausible default), and serves file downloads from memory. ``Conversation`` is one user
writing to the bot: each message is an ``Update`` fed to ``Dispatcher.feed_update`` and the
requests the bot made for it are returned. ``FakeProvider`` stands in for every provider,
so no model or network is needed.
"""

from __future__ import annotations

import itertools
from collections import defaultdict, deque
from collections.abc import AsyncGenerator, Mapping
from datetime import UTC, datetime
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.base import BaseSession
from aiogram.enums import ParseMode
from aiogram.fsm.context import FSMContext
from aiogram.methods import GetFile, SendChatAction, TelegramMethod
from aiogram.types import (
    CallbackQuery,
    Chat,
    Document,
    File,
    Message,
    PhotoSize,
    Update,
    User,
)

from services.images import ACCEPTED_FORMATS, MAX_DOWNLOAD_BYTES, ImageLimits, PreparedImage
from services.models import (
    Box,
    CheckResult,
    CompareResult,
    CompareThresholds,
    Face,
    FacesResult,
    Gender,
    Measurements,
    Operation,
    Usage,
)
from services.providers.base import Analyzer, Checker, Comparer, Detector, Provider
from services.rules import evaluate
from tests.fakes.jumdata import DEFAULT_CHECK_PROFILE

TOKEN = "42:TEST"
BOT_USER = User(id=42, is_bot=True, first_name="FaceCheck", username="facecheck_bot")


class RecordingSession(BaseSession):
    """Records each request; answers with the result queued for its method, else a default."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[TelegramMethod[Any]] = []
        self.results: dict[type[TelegramMethod[Any]], deque[Any]] = defaultdict(deque)
        self.files: dict[str, bytes] = {}
        self.downloads: list[str] = []
        self._message_ids = itertools.count(10_000)

    def add_result_for(self, method: type[TelegramMethod[Any]], result: Any) -> None:
        self.results[method].append(result)

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[Any],
        timeout: int | None = None,  # noqa: ASYNC109 - BaseSession's signature
    ) -> Any:
        self.requests.append(method)
        queued = self.results[type(method)]
        return queued.popleft() if queued else self._default_result(method)

    def _default_result(self, method: TelegramMethod[Any]) -> Any:
        if isinstance(method, GetFile):
            return File(
                file_id=method.file_id,
                file_unique_id=f"u-{method.file_id}",
                file_size=len(self.files[method.file_id]),
                file_path=f"photos/{method.file_id}",
            )
        if method.__returning__ is Message:
            chat_id = getattr(method, "chat_id", 0)
            return Message(
                message_id=next(self._message_ids),
                date=datetime.now(UTC),
                chat=Chat(id=int(chat_id), type="private"),
                from_user=BOT_USER,
            )
        return True  # answerCallbackQuery, sendChatAction, edits, setMyCommands...

    async def stream_content(
        self,
        url: str,
        headers: dict[str, Any] | None = None,
        timeout: int = 30,  # noqa: ASYNC109 - BaseSession's signature
        chunk_size: int = 65536,
        raise_for_status: bool = True,
    ) -> AsyncGenerator[bytes, None]:
        file_id = url.rsplit("/", 1)[1]
        self.downloads.append(file_id)
        yield self.files[file_id]

    async def close(self) -> None:
        pass


def recording_bot() -> tuple[Bot, RecordingSession]:
    session = RecordingSession()
    bot = Bot(TOKEN, session=session, default=DefaultBotProperties(parse_mode=ParseMode.HTML))
    return bot, session


def replies(requests: list[TelegramMethod[Any]]) -> list[TelegramMethod[Any]]:
    """What the user sees: the requests without file look-ups and "sending a photo..."."""
    return [r for r in requests if not isinstance(r, GetFile | SendChatAction)]


def api_names(requests: list[TelegramMethod[Any]]) -> list[str]:
    return [r.__api_method__ for r in requests]


def replied_to(request: TelegramMethod[Any]) -> int | None:
    """The message a request answers as a reply (``Message.reply``), None for ``answer``."""
    parameters = getattr(request, "reply_parameters", None)
    return parameters.message_id if parameters is not None else None


def buttons(request: TelegramMethod[Any]) -> list[tuple[str, str]]:
    """The inline keyboard a request sends: (text, callback data) for every button."""
    markup = getattr(request, "reply_markup", None)
    if markup is None:
        return []
    return [(b.text, b.callback_data) for row in markup.inline_keyboard for b in row]


class Conversation:
    """One user in a private chat with the bot."""

    _update_ids = itertools.count(1)
    _message_ids = itertools.count(1)

    def __init__(
        self,
        dispatcher: Dispatcher,
        bot: Bot,
        session: RecordingSession,
        *,
        user_id: int = 1000,
        language_code: str | None = "en",
    ) -> None:
        self.dispatcher = dispatcher
        self.bot = bot
        self.session = session
        self.user = User(id=user_id, is_bot=False, first_name="Ann", language_code=language_code)
        self.chat = Chat(id=user_id, type="private")
        self.sent: list[Message] = []

    @property
    def state(self) -> FSMContext:
        return self.dispatcher.fsm.get_context(self.bot, self.chat.id, self.user.id)

    async def send(
        self,
        text: str | None = None,
        *,
        photo: bytes | None = None,
        document: bytes | None = None,
        caption: str | None = None,
        reply_to: Message | None = None,
    ) -> list[TelegramMethod[Any]]:
        """The user sends a message; the requests the bot made while handling it."""
        message_id = next(self._message_ids)
        content: dict[str, Any] = {"text": text, "caption": caption}
        if photo is not None:
            file_id = f"photo-{message_id}"
            self.session.files[file_id] = photo
            content["photo"] = [
                PhotoSize(
                    file_id=file_id,
                    file_unique_id=f"u-{file_id}",
                    width=600,
                    height=800,
                    file_size=len(photo),
                )
            ]
        if document is not None:
            file_id = f"document-{message_id}"
            self.session.files[file_id] = document
            content["document"] = Document(
                file_id=file_id,
                file_unique_id=f"u-{file_id}",
                file_name="photo.jpg",
                mime_type="image/jpeg",
                file_size=len(document),
            )
        message = Message(
            message_id=message_id,
            date=datetime.now(UTC),
            chat=self.chat,
            from_user=self.user,
            reply_to_message=reply_to,
            **content,
        )
        self.sent.append(message)
        return await self._feed(Update(update_id=next(self._update_ids), message=message))

    async def press(
        self, data: str, *, under: Message, menu_id: int | None = None
    ) -> list[TelegramMethod[Any]]:
        """The user taps a button of the bot's menu that replied to the message ``under``
        (the menu ``menu_id``, to tap one menu again; a new one by default)."""
        menu = Message(
            message_id=next(self._message_ids) if menu_id is None else menu_id,
            date=datetime.now(UTC),
            chat=self.chat,
            from_user=BOT_USER,
            text="menu",
            reply_to_message=under,
        )
        query = CallbackQuery(
            id=str(next(self._update_ids)),
            from_user=self.user,
            chat_instance="1",
            message=menu,
            data=data,
        )
        return await self._feed(Update(update_id=next(self._update_ids), callback_query=query))

    async def _feed(self, update: Update) -> list[TelegramMethod[Any]]:
        mark = len(self.session.requests)
        await self.dispatcher.feed_update(self.bot, update)
        return self.session.requests[mark:]


FAKE_LIMITS = ImageLimits(
    max_bytes=MAX_DOWNLOAD_BYTES, max_side=12000, min_side=100, formats=ACCEPTED_FORMATS
)
FACE = Face(box=Box(left=200, top=150, width=200, height=260), age=30, gender=Gender.FEMALE)


class FakeProvider(Checker, Comparer, Detector, Analyzer):
    """Answers every operation at once, the same way, and remembers what it was asked."""

    billable = False
    limits = FAKE_LIMITS
    thresholds = CompareThresholds()

    def __init__(self, name: str = "fake") -> None:
        self.name = name
        self.unavailable_reason: str | None = None  # as the local engine's
        self.calls: list[tuple[str, bytes]] = []

    async def check(self, image: PreparedImage) -> CheckResult:
        self.calls.append(("check", image.data))
        measurements = Measurements.from_provider(DEFAULT_CHECK_PROFILE)
        return CheckResult(
            passed=True,
            reasons=(),
            measurements=measurements,
            outcomes=evaluate(measurements),
            provider=self.name,
            usage=Usage(charged=False),
        )

    async def compare(self, a: PreparedImage, b: PreparedImage) -> CompareResult:
        self.calls.append(("compare", a.data + b.data))
        return CompareResult(
            score=0.9, faces_a=(FACE,), faces_b=(FACE,), provider=self.name, usage=Usage(False)
        )

    async def detect(
        self, image: PreparedImage, *, max_faces: int, attributes: bool
    ) -> FacesResult:
        self.calls.append(("detect", image.data))
        return FacesResult(faces=(FACE,), provider=self.name, usage=Usage(charged=False))

    async def analyze(self, image: PreparedImage, *, max_faces: int) -> FacesResult:
        self.calls.append(("analyze", image.data))
        return FacesResult(faces=(FACE,), provider=self.name, usage=Usage(charged=False))

    async def close(self) -> None:
        pass


def dispatcher_with(
    providers: Mapping[Operation, Provider], **overrides: Any
) -> tuple[Dispatcher, Bot, RecordingSession]:
    """The bot as ``create_dispatcher`` builds it, each operation on the given provider,
    with a recording session instead of Telegram."""
    from bot.app import create_dispatcher
    from bot.config import Settings
    from services.wiring import Services

    settings = Settings.model_validate(
        {"bot_token": TOKEN, "default_locale": "en", "fallback_to_local": False, **overrides}
    )
    services = Services.from_settings(settings)
    for operation, provider in providers.items():
        services.of(operation).provider = provider
    bot, session = recording_bot()
    return create_dispatcher(settings, services), bot, session
