"""Albums: gathered in one process or, with Redis, across processes; their photos paced
per user; their replies paced per chat."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.client.session.middlewares.base import (
    NextRequestMiddlewareType,
    RequestMiddlewareType,
)
from aiogram.fsm.storage.base import BaseStorage, DefaultKeyBuilder
from aiogram.fsm.storage.redis import RedisStorage
from aiogram.methods import TelegramMethod
from aiogram.types import Chat, Message, PhotoSize, TelegramObject, Update, User

from bot.config import Settings
from bot.middlewares.album import AlbumMiddleware
from bot.pacing import Admission, Limits, MemoryPaceStore, Pacing
from bot.session import PRIVATE_CHAT, SENDS, ChatPacer
from bot.states import CompareFlow
from services.models import Operation
from services.wiring import Services
from tests.conftest import portrait_jpeg, tr
from tests.db import RedisTarget
from tests.unit.recording import TOKEN, FakeProvider, RecordingSession, recording_bot, replied_to

PHOTO = portrait_jpeg()
USER = User(id=3100, is_bot=False, first_name="Ann", language_code="en")
CHAT = Chat(id=3100, type="private")
_ids = itertools.count(5000)
_updates = itertools.count(9000)


class Window:
    """Stands in for the album window's sleep: it ends when the test says so."""

    def __init__(self) -> None:
        self.waiting = asyncio.Event()
        self.over = asyncio.Event()

    async def __call__(self, _seconds: float) -> None:
        self.waiting.set()
        await self.over.wait()


@dataclass
class Process:
    """One bot process: its dispatcher, its recorded requests, its provider."""

    dispatcher: Dispatcher
    bot: Bot
    session: RecordingSession
    provider: FakeProvider
    window: Window

    def feed(self, message: Message) -> asyncio.Task[Any]:
        update = Update(update_id=next(_updates), message=message)
        return asyncio.create_task(self.dispatcher.feed_update(self.bot, update))

    def replies(self) -> list[TelegramMethod[Any]]:
        return [r for r in self.session.requests if type(r) in SENDS]


def process(storage: BaseStorage | None = None, **overrides: Any) -> Process:
    """The bot as ``create_dispatcher`` builds it, each operation on one fake provider."""
    from bot.app import create_dispatcher

    settings = Settings.model_validate(
        {"bot_token": TOKEN, "default_locale": "en", "user_burst": 10, **overrides}
    )
    services = Services.from_settings(settings)
    provider = FakeProvider()
    for operation in Operation:
        services.of(operation).provider = provider
    dispatcher = create_dispatcher(settings, services, storage=storage)
    window = Window()
    middleware = album_middleware(dispatcher)
    middleware.sleep = window
    bot, session = recording_bot()
    return Process(dispatcher, bot, session, provider, window)


def album_middleware(dispatcher: Dispatcher) -> AlbumMiddleware:
    [middleware] = [
        m for m in dispatcher.message.outer_middleware if isinstance(m, AlbumMiddleware)
    ]
    return middleware


def album(size: int, caption_at: int = 0, *into: RecordingSession) -> list[Message]:
    """An album of ``size`` photos, ``/check`` in the caption of part ``caption_at``; its
    files are served by each session in ``into`` (Telegram's file ids are global)."""
    group = uuid.uuid4().hex
    parts = []
    for index in range(size):
        message_id = next(_ids)
        file_id = f"album-{message_id}"
        for session in into:
            session.files[file_id] = PHOTO
        photo = PhotoSize(file_id=file_id, file_unique_id=f"u-{file_id}", width=600, height=800)
        parts.append(
            Message(
                message_id=message_id,
                date=datetime.now(UTC),
                chat=CHAT,
                from_user=USER,
                media_group_id=group,
                photo=[photo],
                caption="/check" if index == caption_at else None,
            )
        )
    return parts


async def close(*processes: Process) -> None:
    for each in processes:
        await each.dispatcher["timers"].close()


# --- in one process -----------------------------------------------------------------------


async def test_an_album_in_one_process_is_handled_once_with_every_photo() -> None:
    app = process()
    parts = album(3, 0, app.session)
    leading = app.feed(parts[0])
    await app.window.waiting.wait()
    await asyncio.gather(*(app.feed(part) for part in parts[1:]))
    app.window.over.set()
    await leading
    assert [replied_to(r) for r in app.replies()] == [p.message_id for p in parts]
    assert [name for name, _data in app.provider.calls] == ["check"] * 3
    await close(app)


# --- across processes, in Redis -----------------------------------------------------------


async def test_parts_that_keep_coming_join_the_album_however_slow() -> None:
    """Each window that brought a part is waited again: a slow delivery (each part within
    the window of the one before, the last long after the first) does not split it."""
    middleware = AlbumMiddleware()
    parts = album(3)
    late = parts[1:]
    joining: list[asyncio.Task[Any]] = []
    handled: list[list[int]] = []

    async def handler(event: TelegramObject, data: dict[str, Any]) -> None:
        handled.append([m.message_id for m in data["album"]])

    async def window(_seconds: float) -> None:
        if late:
            joining.append(asyncio.create_task(middleware(handler, late.pop(0), {})))
            await asyncio.sleep(0)

    middleware.sleep = window
    await middleware(handler, parts[0], {})
    await asyncio.gather(*joining)
    assert handled == [[m.message_id for m in parts]]


@pytest.fixture
async def shared(redis_target: RedisTarget) -> AsyncIterator[tuple[Process, Process]]:
    """Two processes, each with its own connection to one Redis."""
    storages = [
        RedisStorage(
            redis_target.client(), key_builder=DefaultKeyBuilder(prefix=redis_target.key("fsm"))
        )
        for _ in range(2)
    ]
    first, second = (process(storage) for storage in storages)
    for each in (first, second):
        album_middleware(each.dispatcher).prefix = redis_target.key("album:")
        each.dispatcher["pacing"].store.prefix = redis_target.key("pace:")  # a bucket of its own
    yield first, second
    await close(first, second)
    for storage in storages:
        await storage.close()


async def test_an_album_split_between_two_processes_is_answered_once_by_one(
    shared: tuple[Process, Process], redis_target: RedisTarget
) -> None:
    a, b = shared
    parts = album(4, 1, a.session, b.session)  # the caption on the part B gets
    b.window.over.set()  # B would not wait for an album it does not lead
    leading = a.feed(parts[0])
    await a.window.waiting.wait()
    await asyncio.gather(b.feed(parts[1]), a.feed(parts[2]), b.feed(parts[3]))
    assert not b.window.waiting.is_set()  # B's parts went to Redis, and B is done
    a.window.over.set()
    await leading

    assert b.replies() == [] and b.provider.calls == []
    assert [replied_to(r) for r in a.replies()] == [p.message_id for p in parts]
    assert [name for name, _data in a.provider.calls] == ["check"] * 4
    assert a.session.downloads == [p.photo[-1].file_id for p in parts if p.photo]
    client = redis_target.client()
    assert [k async for k in client.scan_iter(match=redis_target.key("album:*"))] == []
    await client.aclose()


async def test_a_part_after_the_window_starts_an_album_of_its_own_in_redis(
    shared: tuple[Process, Process],
) -> None:
    a, b = shared
    parts = album(2, 0, a.session, b.session)
    leading = a.feed(parts[0])
    await a.window.waiting.wait()
    a.window.over.set()
    await leading
    b.window.over.set()
    await b.feed(parts[1])  # too late for A's album: B handles it, as one process would
    assert [replied_to(r) for r in a.replies()] == [parts[0].message_id]
    assert b.window.waiting.is_set()
    assert b.provider.calls == []  # no caption: the photo menu, as a lone photo gets
    assert [tr("en", "menu.choose")] == [getattr(r, "text", None) for r in b.replies()]


# --- pacing ---------------------------------------------------------------------------------


async def test_an_album_beyond_the_users_bucket_checks_what_it_holds_and_says_so() -> None:
    app = process(user_burst=5, user_rate=10)
    Pacing(MemoryPaceStore(Limits.from_settings(app.dispatcher["settings"]))).setup(app.dispatcher)
    parts = album(7, 0, app.session)
    leading = app.feed(parts[0])
    await app.window.waiting.wait()
    await asyncio.gather(*(app.feed(part) for part in parts[1:]))
    app.window.over.set()
    await leading

    notice, *reports = app.replies()
    assert getattr(notice, "text", None) == tr("en", "pace.album_rest").format(
        count=5, total=7, seconds=12
    )
    assert replied_to(notice) == parts[0].message_id
    assert [replied_to(r) for r in reports] == [p.message_id for p in parts[:5]]
    assert len(app.provider.calls) == 5
    await close(app)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


def stamped(clock: FakeClock, times: list[float]) -> RequestMiddlewareType:
    """A request middleware noting when each message goes out, on the fake clock."""

    async def stamp(
        make_request: NextRequestMiddlewareType[Any], bot: Bot, method: TelegramMethod[Any]
    ) -> Any:
        if type(method) in SENDS:
            times.append(clock())
        return await make_request(bot, method)

    return stamp


def pairs(times: list[float]) -> Iterator[tuple[int, float]]:
    """For every two sends: how many went out from one to the other, and in what time."""
    for i, j in itertools.combinations(range(len(times)), 2):
        yield j - i + 1, times[j] - times[i]


async def test_an_albums_replies_keep_to_the_chats_bucket() -> None:
    app = process()
    clock, times = FakeClock(), list[float]()
    app.session.middleware(ChatPacer(clock=clock, sleep=clock.sleep))
    app.session.middleware(stamped(clock, times))
    parts = album(10, 0, app.session)
    leading = app.feed(parts[0])
    await app.window.waiting.wait()
    await asyncio.gather(*(app.feed(part) for part in parts[1:]))
    app.window.over.set()
    await leading

    assert [replied_to(r) for r in app.replies()] == [p.message_id for p in parts]
    assert len(times) == 10
    burst, rate = PRIVATE_CHAT.burst, PRIVATE_CHAT.per_second
    for sent, seconds in pairs(times):
        assert sent <= burst + rate * seconds + 1e-9
    assert times[-1] - times[0] == pytest.approx(5.0)  # five at once, then one a second
    await close(app)


# --- a flow across processes ---------------------------------------------------------------


async def test_two_second_photos_at_once_to_two_processes_make_one_compare(
    shared: tuple[Process, Process],
) -> None:
    a, b = shared
    token = uuid.uuid4().hex
    first = {"file_id": "first-photo", "file_size": None, "as_document": False}
    flow = a.dispatcher.fsm.get_context(a.bot, CHAT.id, USER.id)
    await flow.set_state(CompareFlow.second)
    await flow.set_data({"first": first, "flow_token": token})
    photos = []
    for file_id in ("first-photo", "second-a", "second-b"):
        for each in (a, b):
            each.session.files[file_id] = PHOTO
    for file_id in ("second-a", "second-b"):
        photo = PhotoSize(file_id=file_id, file_unique_id=f"u-{file_id}", width=600, height=800)
        photos.append(
            Message(
                message_id=next(_ids),
                date=datetime.now(UTC),
                chat=CHAT,
                from_user=USER,
                photo=[photo],
            )
        )
    # Both read the flow before either goes on: they meet at the pacing (as two processes
    # whose updates come at once can).
    met = asyncio.Barrier(2)
    for each in (a, b):
        store = each.dispatcher["pacing"].store
        admit = store.admit

        async def at_once(user_id: int, want: int, admit: Any = admit) -> Admission:
            await asyncio.wait_for(met.wait(), 5)
            return await admit(user_id, want)

        store.admit = at_once
    await asyncio.gather(a.feed(photos[0]), b.feed(photos[1]))
    compares = [name for p in (a, b) for name, _data in p.provider.calls if name == "compare"]
    assert compares == ["compare"]
    sent = [type(r).__name__ for p in (a, b) for r in p.replies()]
    assert sent == ["SendPhoto"]  # one report; the other photo is no error either
    assert await flow.get_state() is None
