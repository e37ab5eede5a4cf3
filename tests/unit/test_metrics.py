"""Prometheus metrics: what each recording call adds, what a scrape reads, and the bot's
updates and replies counted through the real dispatcher."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiogram import Bot, Dispatcher
from aiogram.types import Update

from bot.middlewares.metrics import MetricsMiddleware
from services.budget import BudgetStatus, ProviderBudgets, ProviderSpent
from services.errors import (
    ImageError,
    ImageProblem,
    OperationUnavailable,
    ProviderUnavailableError,
    ServiceError,
)
from services.images import PreparedImage
from services.ledger import Ledger, QuotaExceeded
from services.metering import Caller, Metering
from services.metrics import METRICS, Metrics, billing_of, outcome_of
from services.models import FacesResult, Operation, Usage
from services.providers.base import Provider
from services.storage.db import open_database
from tests.conftest import portrait_jpeg
from tests.unit.recording import Conversation, FakeProvider, RecordingSession, dispatcher_with

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_provider_calls_by_code_and_billing_with_latency() -> None:
    metrics = Metrics(process=False)
    metrics.provider_call("jdcloud", "compare", None, "charged", 0.3)
    metrics.provider_call("jdcloud", "compare", None, "charged", 0.7)
    metrics.provider_call("jdcloud", "compare", 10020, "free", 0.1)
    metrics.provider_call("jumdata", "check", None, "unknown", 15.0)
    metrics.provider_call("huawei", "check", "APIG." + "X" * 60, "free", 0.2)

    calls = "facecheck_provider_calls_total"
    ok = {"provider": "jdcloud", "operation": "compare", "code": "ok", "billing": "charged"}
    assert value(metrics, calls, **ok) == 2
    assert value(metrics, calls, **{**ok, "code": "10020", "billing": "free"}) == 1
    assert (
        value(metrics, calls, provider="jumdata", operation="check", code="ok", billing="unknown")
        == 1
    )
    long_code = "APIG." + "X" * 35  # cut at 40 characters: a label is a bounded set
    assert (
        value(metrics, calls, provider="huawei", operation="check", code=long_code, billing="free")
        == 1
    )
    seconds = "facecheck_provider_seconds"
    jd = {"provider": "jdcloud", "operation": "compare"}
    assert value(metrics, f"{seconds}_count", **jd) == 3
    assert value(metrics, f"{seconds}_sum", **jd) == pytest.approx(1.1)
    assert value(metrics, f"{seconds}_bucket", **jd, le="0.25") == 1
    assert value(metrics, f"{seconds}_bucket", **jd, le="0.5") == 2


def test_replies_quota_refusals_and_updates() -> None:
    metrics = Metrics(process=False)
    metrics.reply("check", "ok", 0.4)
    metrics.reply("check", "quota", 0.01)
    metrics.quota_refused("check")
    metrics.update_handled("message")
    metrics.update_handled("message", failed=True)
    metrics.update_handled("callback_query")
    assert value(metrics, "facecheck_replies_total", operation="check", outcome="ok") == 1
    assert value(metrics, "facecheck_replies_total", operation="check", outcome="quota") == 1
    assert value(metrics, "facecheck_reply_seconds_count", operation="check") == 2
    assert value(metrics, "facecheck_quota_refusals_total", operation="check") == 1
    assert value(metrics, "facecheck_updates_total", kind="message") == 2
    assert value(metrics, "facecheck_updates_total", kind="callback_query") == 1
    assert value(metrics, "facecheck_update_errors_total", kind="message") == 1


class Pool:
    def __init__(self) -> None:
        self.in_flight = 0
        self.waiting = 0
        self.capacity = 34


def test_the_pool_queue_is_read_at_scrape_time() -> None:
    metrics = Metrics(process=False)
    assert value(metrics, "facecheck_local_pool_in_flight") is None  # no local engine
    pool = Pool()
    metrics.watch_pool(pool)
    assert value(metrics, "facecheck_local_pool_in_flight") == 0
    pool.in_flight, pool.waiting = 5, 3
    assert value(metrics, "facecheck_local_pool_in_flight") == 5
    assert value(metrics, "facecheck_local_pool_waiting") == 3
    assert value(metrics, "facecheck_local_pool_capacity") == 34


def status(
    provider: str, remain: int | None, remain_times: int | None, spent: bool
) -> BudgetStatus:
    return BudgetStatus(
        provider=provider,
        remain=remain,
        remain_times=remain_times,
        resets_at=None,
        spent=spent,
        spent_code=None,
        spent_until=None,
        backoff_until=None,
        backoff_code=None,
        updated=NOW,
    )


def test_budgets_show_the_figures_last_read() -> None:
    metrics = Metrics(process=False)
    metrics.budget(status("jdcloud", 40, 900, spent=False))
    metrics.budget(status("jumdata", None, None, spent=True))
    remaining = "facecheck_provider_remaining"
    assert value(metrics, remaining, provider="jdcloud", figure="remain") == 40
    assert value(metrics, remaining, provider="jdcloud", figure="remain_times") == 900
    assert value(metrics, remaining, provider="jumdata", figure="remain") is None  # unknown
    assert value(metrics, "facecheck_provider_spent", provider="jumdata") == 1
    metrics.budget(status("jdcloud", 39, 899, spent=False))
    assert value(metrics, remaining, provider="jdcloud", figure="remain") == 39
    assert value(metrics, "facecheck_provider_spent", provider="jdcloud") == 0


def test_the_exposition_is_prometheus_text() -> None:
    metrics = Metrics()
    metrics.reply("analyze", "ok", 1.0)
    text = metrics.exposition().decode()
    assert "# TYPE facecheck_replies_total counter" in text
    assert 'facecheck_replies_total{operation="analyze",outcome="ok"} 1.0' in text
    assert "process_resident_memory_bytes" in text


@pytest.mark.parametrize(
    ("usage", "billing"),
    [
        (Usage(charged=True), "charged"),
        (Usage(charged=False, unknown=True), "unknown"),
        (Usage(charged=False), "free"),
    ],
)
def test_billing_labels(usage: Usage, billing: str) -> None:
    assert billing_of(usage) == billing


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (None, "ok"),
        (ImageError(ImageProblem.NOT_IMAGE), "bad_photo"),
        (QuotaExceeded(Operation.CHECK, 5, NOW), "quota"),
        (ProviderSpent("jdcloud", None), "budget"),
        (OperationUnavailable("check", "local"), "unavailable"),
        (ProviderUnavailableError("jdcloud", code=503), "provider_error"),
        (ServiceError("something else"), "error"),
    ],
)
def test_reply_outcomes(error: ServiceError | None, outcome: str) -> None:
    assert outcome_of(error) == outcome


# --- through the dispatcher -----------------------------------------------------------------


class Failing(FakeProvider):
    async def detect(
        self, image: PreparedImage, *, max_faces: int, attributes: bool
    ) -> FacesResult:
        raise RuntimeError("a bug")


@pytest.fixture
async def bot_with_metrics() -> AsyncIterator[tuple[Dispatcher, Bot, RecordingSession, Metrics]]:
    providers = {operation: FakeProvider(f"fake-{operation.value}") for operation in Operation}
    providers[Operation.DETECT] = Failing("fake-detect")
    dispatcher, bot, session = dispatcher_with(providers)
    metrics = Metrics(process=False)
    dispatcher.update.outer_middleware(MetricsMiddleware(metrics))
    yield dispatcher, bot, session, metrics
    await dispatcher["timers"].close()


async def test_updates_and_replies_through_the_dispatcher(
    bot_with_metrics: tuple[Dispatcher, Bot, RecordingSession, Metrics],
) -> None:
    dispatcher, bot, session, metrics = bot_with_metrics
    chat = Conversation(dispatcher, bot, session)

    def replies(outcome: str, operation: str = "check") -> float:
        labels = {"operation": operation, "outcome": outcome}
        return METRICS.registry.get_sample_value("facecheck_replies_total", labels) or 0.0

    ok, bad = replies("ok"), replies("bad_photo")
    await chat.send("/start")
    await chat.send(photo=portrait_jpeg(), caption="/check")
    await chat.send(document=b"not an image at all", caption="/check")
    assert value(metrics, "facecheck_updates_total", kind="message") == 3
    assert value(metrics, "facecheck_update_errors_total", kind="message") is None
    assert (replies("ok"), replies("bad_photo")) == (ok + 1, bad + 1)

    await chat.send(photo=portrait_jpeg(), caption="/faces")  # the provider has a bug
    assert value(metrics, "facecheck_updates_total", kind="message") == 4
    assert value(metrics, "facecheck_update_errors_total", kind="message") == 1


async def test_an_update_of_a_kind_aiogram_does_not_know_is_counted_as_unknown(
    bot_with_metrics: tuple[Dispatcher, Bot, RecordingSession, Metrics],
) -> None:
    """aiogram warns about it and skips it; the middleware must not fail on it first."""
    dispatcher, bot, _session, metrics = bot_with_metrics
    with pytest.warns(RuntimeWarning, match="unknown update type"):
        await dispatcher.feed_update(bot, Update(update_id=99))
    assert value(metrics, "facecheck_updates_total", kind="unknown") == 1
    assert value(metrics, "facecheck_update_errors_total", kind="unknown") is None


# --- the metering's calls (services/metering.py records into METRICS) -----------------------


class Cloud(Provider):
    name = "jdcloud"

    async def close(self) -> None:
        pass


@dataclass(frozen=True)
class Answer:
    provider: str
    usage: Usage


async def test_the_metering_records_provider_calls_and_quota_refusals(tmp_path: Path) -> None:
    database = await open_database(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    metering = Metering(Ledger(database, daily_limit=1), ProviderBudgets(database))
    caller = Caller(7)

    async def prepare(_provider: Provider) -> str:
        return "photo"

    async def charged(_provider: Provider, _photo: str) -> Answer:
        return Answer("jdcloud", Usage(charged=True))

    async def timeout(_provider: Provider, _photo: str) -> Answer:
        raise ProviderUnavailableError("jdcloud", code="timeout", usage=Usage(False, unknown=True))

    def calls(code: str, billing: str) -> float:
        labels = {"provider": "jdcloud", "operation": "compare", "code": code, "billing": billing}
        return METRICS.registry.get_sample_value("facecheck_provider_calls_total", labels) or 0.0

    def refusals() -> float:
        labels = {"operation": "compare"}
        return METRICS.registry.get_sample_value("facecheck_quota_refusals_total", labels) or 0.0

    before = calls("ok", "charged"), calls("timeout", "unknown"), refusals()
    try:
        with pytest.raises(ProviderUnavailableError):  # the user's unit is given back
            await metering.run(Operation.COMPARE, caller, [Cloud()], prepare, timeout)
        await metering.run(Operation.COMPARE, caller, [Cloud()], prepare, charged)
        with pytest.raises(QuotaExceeded):
            await metering.run(Operation.COMPARE, caller, [Cloud()], prepare, charged)
    finally:
        await database.close()
    after = calls("ok", "charged"), calls("timeout", "unknown"), refusals()
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1]
