"""Per-user pacing (``bot.pacing``): both stores' arithmetic with an injected clock, and
thirty captioned photos from one user through the real dispatcher."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiogram import Bot, Dispatcher

from bot.config import Settings
from bot.pacing import (
    Admission,
    Limits,
    MemoryPaceStore,
    PaceStore,
    Pacing,
    RedisPaceStore,
    Refusal,
)
from bot.states import CompareFlow
from services.budget import ProviderBudgets
from services.images import PreparedImage
from services.ledger import Ledger
from services.metering import Caller, Metering
from services.models import CheckResult, Operation
from services.storage.db import Database, open_database
from services.wiring import Services
from tests.conftest import portrait_jpeg, tr
from tests.db import RedisTarget
from tests.unit.recording import (
    TOKEN,
    Conversation,
    FakeProvider,
    RecordingSession,
    dispatcher_with,
    recording_bot,
)

PHOTO = portrait_jpeg()
# 2 at once; 5 at once, then one every 6 s (10 a minute); a slot expires after 300 s.
LIMITS = Limits(in_flight=2, per_second=10 / 60, burst=5, slot_ttl=300)


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


StoreFactory = Callable[[Limits, Clock], PaceStore]


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> RedisTarget | None:
    """None for memory stores, else the Redis server they share, as processes would."""
    if request.param == "memory":
        return None
    target: RedisTarget = request.getfixturevalue("redis_target")
    return target


@pytest.fixture
async def stores(backend: RedisTarget | None) -> AsyncIterator[StoreFactory]:
    """Makes stores of the backend's kind."""
    if backend is None:
        yield lambda limits, clock: MemoryPaceStore(limits, clock=clock)
        return
    client = backend.client()
    yield lambda limits, clock: RedisPaceStore(
        client, limits, prefix=backend.key("pace:"), clock=clock
    )
    await client.aclose()


async def take(store: PaceStore, user: int = 7, want: int = 1) -> Admission:
    """Admit and give the slot back at once: only the bucket is left changed."""
    admission = await store.admit(user, want)
    if admission.slot is not None:
        await store.release(user, admission.slot)
    return admission


async def test_the_bucket_lets_a_burst_through_then_refills_at_the_rate(
    stores: StoreFactory,
) -> None:
    clock = Clock()
    store = stores(LIMITS, clock)
    assert [(await take(store)).granted for _ in range(5)] == [1, 1, 1, 1, 1]

    refused = await take(store)
    assert (refused.granted, refused.refusal, refused.slot) == (0, Refusal.SLOW, None)
    assert refused.wait == pytest.approx(6.0)
    clock.advance(4.5)
    assert (await take(store)).wait == pytest.approx(1.5)
    clock.advance(1.5)
    assert (await take(store)).granted == 1
    assert (await take(store)).refusal is Refusal.SLOW

    clock.advance(3600)  # a long pause fills the bucket, no more
    assert [(await take(store)).granted for _ in range(6)] == [1, 1, 1, 1, 1, 0]
    assert (await take(store, user=8)).granted == 1  # another user has a bucket of their own


async def test_an_album_takes_what_the_bucket_holds_and_learns_when_the_rest_can_go(
    stores: StoreFactory,
) -> None:
    clock = Clock()
    store = stores(LIMITS, clock)
    assert (await take(store, want=2)).granted == 2
    partial = await take(store, want=10)
    assert (partial.granted, partial.refusal) == (3, None)
    assert partial.wait == pytest.approx(5 * 6.0)  # the rest: at most a full bucket of five
    clock.advance(12)
    partial = await take(store, want=3)
    assert partial.granted == 2
    assert partial.wait == pytest.approx(6.0)


async def test_in_flight_slots_limit_a_user_and_a_busy_refusal_costs_no_token(
    stores: StoreFactory,
) -> None:
    clock = Clock()
    store = stores(LIMITS, clock)
    first = await store.admit(7, 1)
    second = await store.admit(7, 1)
    assert (first.running, second.running) == (1, 2)
    assert first.slot is not None and second.slot is not None and first.slot != second.slot
    for _ in range(10):
        busy = await store.admit(7, 1)
        assert (busy.granted, busy.refusal, busy.running, busy.slot) == (0, Refusal.BUSY, 2, None)
    assert (await store.admit(8, 1)).granted == 1  # other users are not held up

    await store.release(7, first.slot)
    await store.release(7, first.slot)  # giving a slot back twice frees one slot only
    third = await store.admit(7, 1)
    assert third.granted == 1
    assert (await store.admit(7, 1)).refusal is Refusal.BUSY
    await store.release(7, second.slot)
    assert third.slot is not None
    await store.release(7, third.slot)
    # Three taken from the bucket of five, none by the ten busy refusals.
    assert [(await take(store)).granted for _ in range(3)] == [1, 1, 0]


async def test_a_slot_left_by_a_process_that_died_expires_in_redis(
    redis_target: RedisTarget,
) -> None:
    clock = Clock()
    client = redis_target.client()
    try:
        dead = RedisPaceStore(client, LIMITS, prefix=redis_target.key("pace:"), clock=clock)
        alive = RedisPaceStore(client, LIMITS, prefix=redis_target.key("pace:"), clock=clock)
        assert (await dead.admit(7, 1)).granted == 1
        assert (await dead.admit(7, 1)).granted == 1  # and the process dies holding both
        assert (await alive.admit(7, 1)).refusal is Refusal.BUSY
        clock.advance(299)
        assert (await alive.admit(7, 1)).refusal is Refusal.BUSY
        clock.advance(2)
        admitted = await alive.admit(7, 1)
        assert (admitted.granted, admitted.running) == (1, 1)

        slots, bucket = redis_target.key("pace:7:slots"), redis_target.key("pace:7:bucket")
        assert await client.zcard(slots) == 1
        assert 0 < await client.ttl(slots) <= 301
        # The bucket's key goes once it would be full again: 2 tokens short, 6 s each.
        assert 0 < await client.ttl(bucket) <= 13
    finally:
        await client.aclose()


async def test_an_albums_slot_lasts_a_ttl_for_each_photo_in_redis(
    redis_target: RedisTarget,
) -> None:
    """Ten photos run one after another under one slot: it must not expire after the
    first photo's time and let the user start more than USER_IN_FLIGHT."""
    clock = Clock()
    client = redis_target.client()
    try:
        limits = Limits(in_flight=1, per_second=0, burst=10, slot_ttl=300)
        store = RedisPaceStore(client, limits, prefix=redis_target.key("pace:"), clock=clock)
        assert (await store.admit(8, 10)).granted == 10
        clock.advance(301)  # the album is on its second photo
        assert (await store.admit(8, 1)).refusal is Refusal.BUSY
        clock.advance(2700)
        assert (await store.admit(8, 1)).granted == 1  # its process died: gone after all ten
    finally:
        await client.aclose()


async def test_no_rate_limit_leaves_only_the_in_flight_slots(stores: StoreFactory) -> None:
    store = stores(Limits(in_flight=1, per_second=0, burst=1, slot_ttl=300), Clock())
    assert [(await take(store, want=10)).granted for _ in range(20)] == [10] * 20


async def test_hold_gives_the_slot_back_on_errors_and_cancellation() -> None:
    store = MemoryPaceStore(Limits(in_flight=1, per_second=0, burst=1, slot_ttl=300))
    pacing = Pacing(store)
    user = Caller(7)
    with pytest.raises(RuntimeError):
        async with pacing.hold(user):
            raise RuntimeError("the provider failed")

    started = asyncio.Event()

    async def operation() -> None:
        async with pacing.hold(user) as admission:
            assert admission.granted == 1
            started.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(operation())
    await started.wait()
    async with pacing.hold(user) as admission:
        assert admission.refusal is Refusal.BUSY
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with pacing.hold(user) as admission:
        assert admission.granted == 1


async def test_admins_and_updates_without_a_user_are_not_paced() -> None:
    pacing = Pacing(MemoryPaceStore(Limits(in_flight=1, per_second=1, burst=1, slot_ttl=300)))
    async with pacing.hold(Caller(7, admin=True), 3) as outer:
        async with pacing.hold(Caller(7, admin=True), 3) as inner:
            assert (outer.granted, inner.granted) == (3, 3)
    async with pacing.hold(None) as admission:
        assert admission.granted == 1


# --- thirty photos from one user, through the dispatcher ----------------------------------


class GatedProvider(FakeProvider):
    """Checks only once ``gate`` is open, counting the checks running at once."""

    def __init__(self) -> None:
        super().__init__("gated")
        self.gate = asyncio.Event()
        self.running = 0
        self.most = 0

    async def check(self, image: PreparedImage) -> CheckResult:
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await self.gate.wait()
            return await super().check(image)
        finally:
            self.running -= 1


@dataclass
class Paced:
    dispatcher: Dispatcher
    bot: Bot
    session: RecordingSession
    provider: GatedProvider
    ledger: Ledger
    clock: Clock


@pytest.fixture
async def paced_bot(tmp_path: Path) -> AsyncIterator[Paced]:
    """The bot as ``create_dispatcher`` builds it, with the quota ledger in SQLite, the
    defaults USER_IN_FLIGHT=2, USER_RATE=10, USER_BURST=5, and pacing on a fake clock."""
    from bot.app import create_dispatcher

    settings = Settings.model_validate(
        {
            "bot_token": TOKEN,
            "default_locale": "en",
            "database_url": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
            "user_in_flight": 2,
            "user_rate": 10,
            "user_burst": 5,
        }
    )
    database: Database = await open_database(settings.database_url)
    ledger = Ledger.from_settings(database, settings)
    metering = Metering(ledger, ProviderBudgets.from_settings(database, settings))
    services = Services.from_settings(settings, metering=metering)
    provider = GatedProvider()
    for operation in Operation:
        services.of(operation).provider = provider
    dispatcher = create_dispatcher(settings, services)
    clock = Clock()
    Pacing(MemoryPaceStore(Limits.from_settings(settings), clock=clock)).setup(dispatcher)
    bot, session = recording_bot()
    try:
        yield Paced(dispatcher, bot, session, provider, ledger, clock)
    finally:
        await dispatcher["timers"].close()
        await database.close()


def answers(session: RecordingSession, start: int = 0) -> list[str]:
    """The texts and captions the bot sent, from request ``start`` on."""
    sent = [r for r in session.requests[start:] if r.__api_method__ in {"sendMessage", "sendPhoto"}]
    return [str(getattr(r, "text", None) or getattr(r, "caption", None)) for r in sent]


async def settle(condition: Callable[[], bool]) -> None:
    """Let the event loop run until ``condition`` holds (a bounded number of turns)."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the bot did not get there")


async def test_thirty_photos_at_once_start_two_calls_and_the_bucket_holds_the_rest(
    paced_bot: Paced,
) -> None:
    app = paced_bot
    chat = Conversation(app.dispatcher, app.bot, app.session)
    busy = tr("en", "pace.busy").format(count=2)
    checked = tr("en", "check.verdict.pass")

    sending = [asyncio.create_task(chat.send(photo=PHOTO, caption="/check")) for _ in range(30)]
    try:  # each photo is answered or waits in the provider
        await settle(lambda: app.provider.running + len(answers(app.session)) == 30)
        assert app.provider.running == 2
        assert answers(app.session) == [busy] * 28
    finally:
        app.provider.gate.set()
        await asyncio.gather(*sending)
    assert app.provider.most == 2
    assert len(app.provider.calls) == 2
    texts = answers(app.session)
    assert texts.count(busy) == 28
    assert sum(checked in text for text in texts) == 2

    # One at a time: the three tokens left, then "slow" until the bucket refills.
    mark = len(app.session.requests)
    for _ in range(4):
        await chat.send(photo=PHOTO, caption="/check")
    texts = answers(app.session, mark)
    assert sum(checked in text for text in texts) == 3
    assert texts[-1] == tr("en", "pace.slow").format(seconds=6)
    app.clock.advance(6)
    mark = len(app.session.requests)
    await chat.send(photo=PHOTO, caption="/check")
    [report] = answers(app.session, mark)
    assert checked in report

    assert len(app.provider.calls) == 6  # USER_BURST, and one refilled
    quota = await app.ledger.remaining(chat.user.id)
    assert quota[Operation.CHECK].used == 6  # units only for the calls made
    stats = await app.ledger.stats()
    assert stats.total.calls == 6


async def test_a_refused_compare_costs_nothing(paced_bot: Paced) -> None:
    app = paced_bot
    app.provider.gate.set()
    chat = Conversation(app.dispatcher, app.bot, app.session)
    for _ in range(5):
        await chat.send(photo=PHOTO, caption="/check")
    await chat.send("/compare")
    mark = len(app.session.requests)
    await chat.send(photo=PHOTO)  # photo 1 is only kept: no provider call, no pacing
    assert answers(app.session, mark) == [tr("en", "compare.send_second")]
    mark = len(app.session.requests)
    await chat.send(photo=PHOTO)
    assert answers(app.session, mark) == [tr("en", "pace.slow").format(seconds=6)]
    assert [name for name, _data in app.provider.calls] == ["check"] * 5
    assert (await app.ledger.remaining(chat.user.id))[Operation.COMPARE].used == 0

    # The flow still waits for the second photo: sent again once a token is back, compared.
    assert await chat.state.get_state() == CompareFlow.second.state
    app.clock.advance(6)
    await chat.send(photo=PHOTO)
    assert [name for name, _data in app.provider.calls] == ["check"] * 5 + ["compare"]
    assert await chat.state.get_state() is None


async def test_the_two_faces_of_a_first_photo_are_looked_for_only_when_paced_in() -> None:
    from tests.unit.test_compare_faces import PairFake

    comparer = PairFake()
    providers = {op: FakeProvider(f"fake-{op.value}") for op in Operation}
    providers[Operation.COMPARE] = comparer
    dispatcher, bot, session = dispatcher_with(providers, user_burst=1, user_rate=10)
    clock = Clock()
    limits = Limits.from_settings(dispatcher["settings"])
    Pacing(MemoryPaceStore(limits, clock=clock)).setup(dispatcher)
    chat = Conversation(dispatcher, bot, session)
    slow = tr("en", "pace.slow").format(seconds=6)
    try:
        await chat.send(photo=PHOTO, caption="/compare")
        assert tr("en", "compare.within") in answers(session)[0]
        mark = len(session.requests)
        await chat.send(photo=PHOTO, caption="/compare")
        assert answers(session, mark) == [slow]
        assert await chat.state.get_state() is None

        await chat.send("/compare")
        mark = len(session.requests)
        await chat.send(photo=PHOTO)
        assert answers(session, mark) == [slow]
        assert await chat.state.get_state() == CompareFlow.first.state  # send it again later
        assert [name for name, _data in comparer.calls] == ["compare_within"]

        clock.advance(6)
        mark = len(session.requests)
        await chat.send(photo=PHOTO)
        assert tr("en", "compare.within") in answers(session, mark)[0]
        assert [name for name, _data in comparer.calls] == ["compare_within"] * 2
    finally:
        await dispatcher["timers"].close()


async def test_pacing_is_kept_in_redis_when_the_fsm_storage_is(redis_target: RedisTarget) -> None:
    from aiogram.fsm.storage.memory import MemoryStorage
    from aiogram.fsm.storage.redis import RedisStorage

    settings = Settings.model_validate({"bot_token": TOKEN, "user_burst": 3, "user_rate": 6})
    storage = RedisStorage(redis_target.client())
    try:
        shared = Pacing.create(settings, storage).store
        assert isinstance(shared, RedisPaceStore) and shared.redis is storage.redis
        assert shared.limits == Limits(in_flight=2, per_second=0.1, burst=3, slot_ttl=300)
    finally:
        await storage.close()
    assert isinstance(Pacing.create(settings, MemoryStorage()).store, MemoryPaceStore)
