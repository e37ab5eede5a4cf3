"""The monitoring server: /health with each part up or down, /metrics after real work."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.config import Settings
from bot.middlewares.metrics import MetricsMiddleware
from bot.monitor import Health, Monitor, add_health, local_pool, start_monitor
from services.budget import ProviderBudgets
from services.config import ServiceSettings
from services.local.pool import EnginePool
from services.metrics import Metrics
from services.models import Operation, Usage
from services.storage.db import Database, open_database
from services.wiring import Services
from tests.unit.recording import TOKEN, Conversation, FakeProvider, dispatcher_with

if TYPE_CHECKING:
    from tests.db import RedisTarget

pytest_plugins = ["tests.db"]

CLOSED_PORT_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


class Pool:
    """The local pool as ``/health`` asks it: ``alive`` as set; ``revive`` brings it back
    unless ``hang``."""

    def __init__(self, *, alive: bool = True, hang: bool = False) -> None:
        self.up = alive
        self.hang = hang
        self.revivals = 0

    def alive(self) -> bool:
        return self.up

    async def revive(self) -> None:
        self.revivals += 1
        if self.hang:
            await asyncio.Event().wait()
        self.up = True


class CountingRedis:
    """A Redis client that answers every ``PING`` and counts them."""

    def __init__(self) -> None:
        self.pings = 0

    async def ping(self) -> bool:
        self.pings += 1
        return True


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[Database]:
    database = await open_database(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    yield database
    await database.close()


async def get(app: web.Application, path: str) -> tuple[int, Any]:
    async with TestClient(TestServer(app)) as client:
        response = await client.get(path)
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, await response.text()


async def test_health_ok_when_every_part_answers(
    sqlite: Database, redis_target: RedisTarget
) -> None:
    client = redis_target.client()  # the FSM storage's, in the bot
    health = Health(sqlite, client, Pool())
    try:
        status, body = await get(Monitor(health).app(), "/health")
        await health.close()
        assert await client.ping()  # not closed by the health check: not its client
    finally:
        await client.aclose()
    assert (status, body) == (200, {"database": "ok", "redis": "ok", "local_pool": "ok"})


async def test_health_parts_not_in_use_are_off(sqlite: Database) -> None:
    health = Health(sqlite)
    status, body = await get(Monitor(health).app(), "/health")
    assert (status, body) == (200, {"database": "ok", "redis": "off", "local_pool": "off"})


async def test_health_503_names_redis_when_it_does_not_answer(sqlite: Database) -> None:
    import redis.asyncio as redis

    client = redis.Redis.from_url(CLOSED_PORT_REDIS)
    try:
        status, body = await get(Monitor(Health(sqlite, client, Pool())).app(), "/health")
    finally:
        await client.aclose()
    assert status == 503
    assert body == {"database": "ok", "redis": "failed: ConnectionError", "local_pool": "ok"}


async def test_health_503_when_the_database_is_gone(tmp_path: Path) -> None:
    database = await open_database(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    await database.close()  # its worker threads are gone: every query fails
    status, body = await get(Monitor(Health(database)).app(), "/health")
    assert status == 503
    assert body["database"] == "failed: RuntimeError"


async def test_a_busy_pool_is_healthy_and_the_check_takes_no_place_in_it(
    sqlite: Database,
) -> None:
    pool = EnginePool(workers=1, queue_limit=0, timeout=30.0)
    try:
        await pool.start()
        busy = asyncio.ensure_future(pool.run(time.sleep, 1.0))
        await asyncio.sleep(0)
        assert pool.in_flight == 1  # full: one more photo would be refused as busy
        assert (await Health(sqlite, pool=pool).check())["local_pool"] == "ok"
        assert pool.in_flight == 1
        await busy
    finally:
        await pool.close()


async def test_dead_workers_are_revived_by_the_check(sqlite: Database) -> None:
    pool = Pool(alive=False)
    health = Health(sqlite, pool=pool)
    assert (await health.check())["local_pool"] == "ok"
    assert (await health.check())["local_pool"] == "ok"
    assert pool.revivals == 1  # alive since: the second check asked nothing more


async def test_a_revival_that_does_not_end_is_one_not_one_per_check(sqlite: Database) -> None:
    pool = Pool(alive=False, hang=True)
    health = Health(sqlite, pool=pool, timeout=0.05)
    try:
        assert (await health.check())["local_pool"] == "timeout"
        assert (await health.check())["local_pool"] == "timeout"
        assert pool.revivals == 1  # the second check waited for the first revival
        pool.hang = False
        await health.close()  # the stuck revival is cancelled
        assert (await health.check())["local_pool"] == "ok"
        assert pool.revivals == 2
    finally:
        await health.close()


async def test_health_on_the_webhook_server_names_nothing(tmp_path: Path) -> None:
    database = await open_database(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    health = Health(database, pool=Pool())
    app = web.Application()
    add_health(app, health)
    try:
        assert await get(app, "/health") == (200, {"status": "ok"})
    finally:
        await database.close()
    app = web.Application()
    add_health(app, Health(database, pool=Pool()))
    assert await get(app, "/health") == (503, {"status": "unavailable"})


async def test_checks_close_together_ask_the_parts_once(sqlite: Database) -> None:
    redis = CountingRedis()
    app = web.Application()
    add_health(app, Health(sqlite, redis, cache_for=3600.0))
    async with TestClient(TestServer(app)) as client:
        for _ in range(3):
            assert (await client.get("/health")).status == 200
    assert redis.pings == 1

    redis = CountingRedis()
    app = Monitor(Health(sqlite, redis, cache_for=0.0)).app()
    async with TestClient(TestServer(app)) as client:
        for _ in range(3):
            assert (await client.get("/health")).status == 200
    assert redis.pings == 3


async def test_metrics_after_an_update_and_a_provider_call(sqlite: Database) -> None:
    metrics = Metrics(process=False)
    providers = {operation: FakeProvider(f"fake-{operation.value}") for operation in Operation}
    dispatcher, bot, session = dispatcher_with(providers)
    dispatcher.update.outer_middleware(MetricsMiddleware(metrics))
    try:
        await Conversation(dispatcher, bot, session).send("/start")
    finally:
        await dispatcher["timers"].close()
    metrics.provider_call("jdcloud", "compare", None, "charged", 0.42)
    budgets = ProviderBudgets(sqlite)
    await budgets.after_result("jdcloud", Usage(charged=True, remain=17, remain_times=250))

    monitor = Monitor(Health(sqlite), budgets=budgets, metrics=metrics)
    status, text = await get(monitor.app(), "/metrics")
    assert status == 200
    lines = set(text.splitlines())
    assert 'facecheck_updates_total{kind="message"} 1.0' in lines
    assert (
        'facecheck_provider_calls_total{billing="charged",code="ok",operation="compare",'
        'provider="jdcloud"} 1.0'
    ) in lines
    assert 'facecheck_provider_seconds_sum{operation="compare",provider="jdcloud"} 0.42' in lines
    # Read from the database at the scrape, as another process may have changed them.
    assert 'facecheck_provider_remaining{figure="remain",provider="jdcloud"} 17.0' in lines
    assert 'facecheck_provider_remaining{figure="remain_times",provider="jdcloud"} 250.0' in lines


async def test_the_server_on_metrics_listen(sqlite: Database) -> None:
    settings = Settings.model_validate({"bot_token": TOKEN})
    services = Services.from_settings(settings)
    health = Health(sqlite)
    assert await start_monitor(settings, services, health) is None  # METRICS_LISTEN empty

    settings = settings.model_copy(update={"metrics_listen": "127.0.0.1:0"})  # any free port
    monitor = await start_monitor(settings, services, health)
    assert monitor is not None
    try:
        assert monitor._runner is not None
        host, port = monitor._runner.addresses[0][:2]
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://{host}:{port}/health") as response:
                assert response.status == 200
            async with session.get(f"http://{host}:{port}/metrics") as response:
                text = await response.text()
    finally:
        await monitor.stop()
        await health.close()
    assert monitor._runner is None
    if local_pool(services) is not None:  # the offline engine's model files are here
        assert "facecheck_local_pool_capacity" in text


def test_the_local_pool_is_checked_only_when_an_operation_uses_it() -> None:
    local = Services.from_settings(ServiceSettings.model_validate({}))
    cloud = Services.from_settings(
        ServiceSettings.model_validate(
            {
                "check_provider": "jumdata",
                "detect_provider": "jumdata",
                "compare_provider": "jdcloud",
                "analyze_provider": "jdcloud",
                "fallback_to_local": False,
            }
        )
    )
    assert local_pool(cloud) is None
    if not local.check.provider.available:
        pytest.skip("the offline engine's model files are not here")
    assert isinstance(local_pool(local), EnginePool)
