"""``/metrics`` and ``/health`` on ``METRICS_LISTEN``; a bare ``/health`` on the webhook server.

``/health`` answers 200 only when every part this process depends on answers within
``HEALTH_TIMEOUT`` seconds: the database (``SELECT 1``), Redis (``PING`` on the FSM
storage's own connection, when ``REDIS_URL`` is set) and the local engine's workers
(their processes alive, when an operation uses the local engine; asked of the pool, no
work queued, so a busy pool is a healthy one). Otherwise 503. On ``METRICS_LISTEN`` the
body names each part::

    {"database": "ok", "redis": "failed: ConnectionError", "local_pool": "ok"}

A part not in use reads ``"off"``. The webhook server is public: its ``/health`` says only
``{"status": "ok"}`` or ``{"status": "unavailable"}``. Either way the parts are asked at
most once per ``HEALTH_CACHE`` seconds, however often the checks come. ``/metrics``
reads the providers' budgets once per scrape (one query; not on the update path), then
serves ``services.metrics``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol

from aiogram.fsm.storage.base import BaseStorage
from aiogram.fsm.storage.redis import RedisStorage
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from bot.config import Settings
from services.budget import ProviderBudgets
from services.local.pool import EnginePool
from services.metrics import METRICS, Metrics
from services.models import Operation
from services.providers.local import LocalProvider
from services.storage.db import Database
from services.wiring import Services

log = logging.getLogger(__name__)

HEALTH_TIMEOUT: Final = 2.0  # seconds each part has to answer
HEALTH_CACHE: Final = 1.0  # seconds an answer is served again before the parts are asked
OK: Final = "ok"
OFF: Final = "off"


class Pingable(Protocol):
    """A Redis client, as ``/health`` uses it."""

    def ping(self) -> Any: ...


class Workers(Protocol):
    """What ``/health`` asks of the local pool (``services.local.pool.EnginePool``)."""

    def alive(self) -> bool: ...

    async def revive(self) -> None: ...


class WorkersDown(RuntimeError):
    """The local engine's worker processes are not all alive."""


class Health:
    """The readiness of this process's parts; ``handle`` is the detailed ``/health`` view,
    ``handle_public`` the bare one."""

    def __init__(
        self,
        database: Database | None,
        redis: Pingable | None = None,
        pool: Workers | None = None,
        *,
        timeout: float = HEALTH_TIMEOUT,
        cache_for: float = HEALTH_CACHE,
    ) -> None:
        self.database = database
        self.redis = redis  # not ours: its owner (the FSM storage) closes it
        self.pool = pool
        self.timeout = timeout
        self.cache_for = cache_for
        self._revival: asyncio.Future[None] | None = None
        self._latest: asyncio.Future[dict[str, str]] | None = None
        self._latest_at = 0.0

    @classmethod
    def for_services(cls, services: Services, storage: BaseStorage | None = None) -> Health:
        """The parts of ``services``, and Redis when ``storage`` (the FSM's) lives there."""
        redis = storage.redis if isinstance(storage, RedisStorage) else None
        return cls(services.database, redis, local_pool(services))

    async def check(self) -> dict[str, str]:
        """Each part's answer: ``ok``, ``off`` (not in use) or why it failed."""
        parts: dict[str, Callable[[], Awaitable[object]] | None] = {
            "database": None if self.database is None else self._database,
            "redis": None if self.redis is None else self._redis_ping,
            "local_pool": None if self.pool is None else self._workers,
        }
        names = [name for name, probe in parts.items() if probe is not None]
        answers = await asyncio.gather(
            *(self._answer(name, probe) for name, probe in parts.items() if probe is not None)
        )
        result = dict.fromkeys(parts, OFF)
        result.update(zip(names, answers, strict=True))
        return result

    async def recent(self) -> dict[str, str]:
        """``check``'s answer, asked at most once per ``cache_for`` seconds: checks that
        come together or close behind share one round of probes."""
        loop = asyncio.get_running_loop()
        latest = self._latest
        if latest is None or (latest.done() and loop.time() - self._latest_at >= self.cache_for):
            latest = self._latest = asyncio.ensure_future(self.check())
            self._latest_at = loop.time()
        return dict(await asyncio.shield(latest))

    async def ready(self) -> bool:
        return all(answer in (OK, OFF) for answer in (await self.recent()).values())

    async def _answer(self, name: str, probe: Callable[[], Awaitable[object]]) -> str:
        try:
            await asyncio.wait_for(probe(), self.timeout)
        except TimeoutError:
            log.warning("health: %s did not answer within %.1f s", name, self.timeout)
            return "timeout"
        except Exception as error:
            log.warning("health: %s failed: %s", name, type(error).__name__)
            return f"failed: {type(error).__name__}"
        return OK

    async def _database(self) -> None:
        assert self.database is not None
        await self.database.read(lambda connection: connection.execute(text("SELECT 1")).scalar())

    async def _redis_ping(self) -> None:
        assert self.redis is not None
        await self.redis.ping()

    async def _workers(self) -> None:
        """Alive, or revived: workers gone while no request came are replaced here, since
        a process taken out of service for them would never get the request that would.
        One revival at a time, never cut short by a check's timeout."""
        assert self.pool is not None
        if self.pool.alive():
            return
        if self._revival is None or self._revival.done():
            self._revival = asyncio.ensure_future(self.pool.revive())
            self._revival.add_done_callback(_retrieve)
        await asyncio.shield(self._revival)
        if not self.pool.alive():
            raise WorkersDown("the local workers are not all alive")

    async def handle(self, request: web.Request) -> web.Response:
        parts = await self.recent()
        ready = all(answer in (OK, OFF) for answer in parts.values())
        return web.json_response(parts, status=200 if ready else 503)

    async def handle_public(self, request: web.Request) -> web.Response:
        if await self.ready():
            return web.json_response({"status": "ok"})
        return web.json_response({"status": "unavailable"}, status=503)

    async def close(self) -> None:
        for pending in (self._revival, self._latest):
            if pending is not None and not pending.done():
                pending.cancel()


def _retrieve(probe: asyncio.Future[Any]) -> None:
    """The outcome of a revival nobody awaited any more is read here (and told by
    ``_answer`` of the next check), so asyncio does not log it as never retrieved."""
    if not probe.cancelled():
        probe.exception()


def local_pool(services: Services) -> EnginePool | None:
    """The local engine's pool when an operation (or the fallback) uses it, else None."""
    for operation in Operation:
        for provider in services.of(operation).providers:
            if isinstance(provider, LocalProvider) and provider.available:
                return provider.pool
    return None


def add_health(app: web.Application, health: Health) -> None:
    """The bare ``GET /health`` on ``app`` (the webhook server's, public)."""
    app.router.add_get("/health", health.handle_public)


class Monitor:
    """The monitoring server: ``/metrics`` and ``/health``."""

    def __init__(
        self,
        health: Health,
        *,
        budgets: ProviderBudgets | None = None,
        metrics: Metrics = METRICS,
    ) -> None:
        self.health = health
        self.budgets = budgets
        self.metrics = metrics
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self.handle_metrics)
        app.router.add_get("/health", self.health.handle)
        return app

    async def handle_metrics(self, request: web.Request) -> web.Response:
        if self.budgets is not None:
            try:
                statuses = await asyncio.wait_for(self.budgets.status(), self.health.timeout)
            except Exception as error:  # served with the figures last read
                log.warning("metrics: budgets unreadable: %s", type(error).__name__)
            else:
                for status in statuses:
                    self.metrics.budget(status)
        response = web.Response(body=self.metrics.exposition())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def start(self, host: str, port: int) -> None:
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        self._runner = runner
        log.info("metrics and health on %s:%s", host, port)

    async def stop(self) -> None:
        """Stop serving; the ``Health`` is its owner's to close (the webhook server may
        still be serving it)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def start_monitor(settings: Settings, services: Services, health: Health) -> Monitor | None:
    """The monitoring server on ``METRICS_LISTEN``, with the local pool's queue and the
    budgets shown; None when the setting is empty."""
    address = settings.metrics_address
    if address is None:
        return None
    METRICS.watch_pool(local_pool(services))
    budgets = None if services.metering is None else services.metering.budgets
    monitor = Monitor(health, budgets=budgets)
    await monitor.start(*address)
    return monitor
