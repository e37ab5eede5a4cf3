"""The monitoring server: /health with each part up or down, /metrics after real work."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
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
    """The local pool as ``/health`` uses it: ``hang`` makes it never answer."""

    def __init__(self, *, hang: bool = False) -> None:
        self.hang = hang
        self.runs = 0

    async def run(self, fn: Callable[..., Any], /, *args: Any, photos: int = 1) -> Any:
        self.runs += 1
        if self.hang:
            await asyncio.Event().wait()
        return fn(*args)


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
    health = Health(sqlite, redis_target.url, Pool())
    try:
        status, body = await get(Monitor(health).app(), "/health")
    finally:
        await health.close()
    assert (status, body) == (200, {"database": "ok", "redis": "ok", "local_pool": "ok"})


async def test_health_parts_not_in_use_are_off(sqlite: Database) -> None:
    health = Health(sqlite)
    status, body = await get(Monitor(health).app(), "/health")
    assert (status, body) == (200, {"database": "ok", "redis": "off", "local_pool": "off"})


async def test_health_503_names_redis_when_it_does_not_answer(sqlite: Database) -> None:
    health = Health(sqlite, CLOSED_PORT_REDIS, Pool())
    try:
        status, body = await get(Monitor(health).app(), "/health")
    finally:
        await health.close()
    assert status == 503
    assert body == {"database": "ok", "redis": "failed: ConnectionError", "local_pool": "ok"}


async def test_health_503_when_the_database_is_gone(tmp_path: Path) -> None:
    database = await open_database(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    await database.close()  # its worker threads are gone: every query fails
    status, body = await get(Monitor(Health(database)).app(), "/health")
    assert status == 503
    assert body["database"] == "failed: RuntimeError"


async def test_a_pool_that_does_not_answer_is_one_probe_not_one_per_check(
    sqlite: Database,
) -> None:
    pool = Pool(hang=True)
    health = Health(sqlite, pool=pool, timeout=0.05)
    try:
        assert (await health.check())["local_pool"] == "timeout"
        assert (await health.check())["local_pool"] == "timeout"
        assert pool.runs == 1  # the second check waited for the first probe
        pool.hang = False
        await health.close()  # the stuck probe is cancelled
        assert (await health.check())["local_pool"] == "ok"
        assert pool.runs == 2
    finally:
        await health.close()


async def test_health_on_the_webhook_server(sqlite: Database) -> None:
    app = web.Application()
    add_health(app, Health(sqlite, pool=Pool()))
    status, body = await get(app, "/health")
    assert (status, body) == (200, {"database": "ok", "redis": "off", "local_pool": "ok"})


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
