"""``/metrics`` and ``/health`` on ``METRICS_LISTEN``; ``/health`` on the webhook server too.

``/health`` answers 200 only when every part this process depends on answers within
``HEALTH_TIMEOUT`` seconds: the database (``SELECT 1``), Redis (``PING``, when
``REDIS_URL`` is set) and the local engine's worker pool (a ping task through the pool,
when an operation uses the local engine). Otherwise 503, with the failing part named::

    {"database": "ok", "redis": "failed: ConnectionError", "local_pool": "ok"}

A part not in use reads ``"off"``. ``/metrics`` reads the providers' budgets once per
scrape (one query; not on the update path), then serves ``services.metrics``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from bot.config import Settings
from services.budget import ProviderBudgets
from services.local.pool import EnginePool, _ping
from services.metrics import METRICS, Metrics
from services.models import Operation
from services.providers.local import LocalProvider
from services.storage.db import Database
from services.wiring import Services

log = logging.getLogger(__name__)

HEALTH_TIMEOUT: Final = 2.0  # seconds each part has to answer
OK: Final = "ok"
OFF: Final = "off"


class Pingable(Protocol):
    """What ``/health`` asks of the local pool (``services.local.pool.EnginePool``)."""

    async def run(self, fn: Callable[..., Any], /, *args: Any, photos: int = 1) -> Any: ...


class Health:
    """The readiness of this process's parts; ``handle`` is the ``/health`` view."""

    def __init__(
        self,
        database: Database | None,
        redis_url: str = "",
        pool: Pingable | None = None,
        *,
        timeout: float = HEALTH_TIMEOUT,
    ) -> None:
        self.database = database
        self.redis_url = redis_url
        self.pool = pool
        self.timeout = timeout
        self._redis: Any = None
        self._pool_probe: asyncio.Future[Any] | None = None

    @classmethod
    def for_services(cls, services: Services, redis_url: str) -> Health:
        return cls(services.database, redis_url, local_pool(services))

    async def check(self) -> dict[str, str]:
        """Each part's answer: ``ok``, ``off`` (not in use) or why it failed."""
        parts: dict[str, Callable[[], Awaitable[object]] | None] = {
            "database": None if self.database is None else self._database,
            "redis": self._redis_ping if self.redis_url else None,
            "local_pool": None if self.pool is None else self._pool_ping,
        }
        names = [name for name, probe in parts.items() if probe is not None]
        answers = await asyncio.gather(
            *(self._answer(name, probe) for name, probe in parts.items() if probe is not None)
        )
        result = dict.fromkeys(parts, OFF)
        result.update(zip(names, answers, strict=True))
        return result

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
        if self._redis is None:
            import redis.asyncio as redis

            self._redis = redis.Redis.from_url(
                self.redis_url, socket_connect_timeout=self.timeout, socket_timeout=self.timeout
            )
        await self._redis.ping()

    async def _pool_ping(self) -> None:
        """One ping in flight at a time: a probe that outlives its timeout (the pool busy,
        or starting its workers again) is awaited by the next check, not cancelled, so a
        restart of the workers is never cut short by a health check."""
        assert self.pool is not None
        if self._pool_probe is None or self._pool_probe.done():
            self._pool_probe = asyncio.ensure_future(self.pool.run(_ping, 0.0))
            self._pool_probe.add_done_callback(_retrieve)
        await asyncio.shield(self._pool_probe)

    async def handle(self, request: web.Request) -> web.Response:
        parts = await self.check()
        ready = all(answer in (OK, OFF) for answer in parts.values())
        return web.json_response(parts, status=200 if ready else 503)

    async def close(self) -> None:
        if self._pool_probe is not None and not self._pool_probe.done():
            self._pool_probe.cancel()
        if self._redis is not None:
            await self._redis.aclose()


def _retrieve(probe: asyncio.Future[Any]) -> None:
    """The outcome of a probe nobody awaited any more is read here (and told by ``_answer``
    of the next check), so asyncio does not log it as never retrieved."""
    if not probe.cancelled():
        probe.exception()


def local_pool(services: Services) -> EnginePool | None:
    """The local engine's pool when an operation (or the fallback) uses it, else None."""
    for operation in Operation:
        for provider in services.of(operation).providers:
            if isinstance(provider, LocalProvider) and provider.available:
                return provider._pool
    return None


def add_health(app: web.Application, health: Health) -> None:
    """``GET /health`` on ``app`` (the webhook server's)."""
    app.router.add_get("/health", health.handle)


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
        add_health(app, self.health)
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
