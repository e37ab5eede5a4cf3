"""Prometheus metrics: what the operator sees of the bot at work.

One ``Metrics`` per process (``METRICS``), on a registry of its own rather than
prometheus-client's global one, so that a test can build a fresh one and read exact
values. Every recording function is an in-memory increment (no I/O), cheap enough for
the per-update path. Two families are read at scrape time instead of being kept up to
date: the local pool's queue (from the pool itself) and each provider's known budget
(the figures last handed to ``budget``).

Names (all prefixed ``facecheck_``):

- ``updates_total{kind}``, ``update_errors_total{kind}``: updates handled, and those that
  ended in an unexpected error;
- ``replies_total{operation,outcome}``, ``reply_seconds{operation}``: operation answers
  and how long each took, from the request to the reply (``outcome_of``);
- ``provider_calls_total{provider,operation,code,billing}``,
  ``provider_seconds{provider,operation}``: provider calls, ``code`` ``ok`` or the
  provider's code, ``billing`` ``charged``, ``unknown`` (sent, no answer: maybe billed)
  or ``free``;
- ``quota_refusals_total{operation}``: requests refused by the user's daily allowance;
- ``local_pool_in_flight``, ``local_pool_waiting``, ``local_pool_capacity``;
- ``provider_remaining{provider,figure}`` (``remain``: today, ``remain_times``: the
  package), ``provider_spent{provider}``;
- the process's own ``process_*`` figures (memory, CPU, open files).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Final, Literal, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from services.errors import ImageError, OperationUnavailable, ProviderError, ServiceError
from services.models import Usage

if TYPE_CHECKING:
    from services.budget import BudgetStatus

Billing = Literal["charged", "unknown", "free"]

PREFIX: Final = "facecheck"
# Longer codes (Huawei's and JD's free-text ones) are cut: a label is a bounded set.
CODE_LABEL_LENGTH: Final = 40
# Seconds: a local check takes about 0.1 s, a cloud call up to PROVIDER_TIMEOUT (15 s).
LATENCY_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)


class PoolGauge(Protocol):
    """What the local pool shows at scrape time (``services.local.pool.EnginePool``)."""

    @property
    def in_flight(self) -> int: ...

    @property
    def waiting(self) -> int: ...

    @property
    def capacity(self) -> int: ...


def billing_of(usage: Usage) -> Billing:
    """The ``billing`` label of a provider call."""
    if usage.charged:
        return "charged"
    return "unknown" if usage.unknown else "free"


def outcome_of(error: ServiceError | None) -> str:
    """The ``outcome`` label of a reply: ``ok`` or the kind of refusal or failure."""
    # Imported here: the ledger and budgets import storage, which a bare metric need not.
    from services.budget import ProviderBackingOff, ProviderSpent
    from services.ledger import QuotaExceeded

    if error is None:
        return "ok"
    if isinstance(error, ImageError):
        return "bad_photo"
    if isinstance(error, QuotaExceeded):
        return "quota"
    if isinstance(error, ProviderSpent | ProviderBackingOff):
        return "budget"
    if isinstance(error, OperationUnavailable):
        return "unavailable"
    if isinstance(error, ProviderError):
        return "provider_error"
    return "error"


class Metrics:
    """The metric objects of one process and the calls that record into them."""

    def __init__(self, *, process: bool = True) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.updates = Counter(
            f"{PREFIX}_updates", "Telegram updates handled", ["kind"], registry=registry
        )
        self.update_errors = Counter(
            f"{PREFIX}_update_errors",
            "Telegram updates whose handling raised an unexpected error",
            ["kind"],
            registry=registry,
        )
        self.replies = Counter(
            f"{PREFIX}_replies",
            "Operation replies by outcome",
            ["operation", "outcome"],
            registry=registry,
        )
        self.reply_seconds = Histogram(
            f"{PREFIX}_reply_seconds",
            "Seconds from an operation's request to its reply",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.provider_calls = Counter(
            f"{PREFIX}_provider_calls",
            "Provider calls by code and whether the provider billed them",
            ["provider", "operation", "code", "billing"],
            registry=registry,
        )
        self.provider_seconds = Histogram(
            f"{PREFIX}_provider_seconds",
            "Seconds a provider took to answer",
            ["provider", "operation"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.quota_refusals = Counter(
            f"{PREFIX}_quota_refusals",
            "Requests refused because the user's daily allowance was used",
            ["operation"],
            registry=registry,
        )
        self.pool: PoolGauge | None = None
        self.budgets: dict[str, BudgetStatus] = {}
        registry.register(_ScrapeTime(self))
        if process:
            ProcessCollector(registry=registry)

    # ------------------------------------------------------------- recording

    def update_handled(self, kind: str, *, failed: bool = False) -> None:
        self.updates.labels(kind).inc()
        if failed:
            self.update_errors.labels(kind).inc()

    def reply(self, operation: str, outcome: str, seconds: float) -> None:
        self.replies.labels(operation, outcome).inc()
        self.reply_seconds.labels(operation).observe(seconds)

    def provider_call(
        self,
        provider: str,
        operation: str,
        code: str | int | None,
        billing: Billing,
        seconds: float,
    ) -> None:
        label = "ok" if code is None else str(code)[:CODE_LABEL_LENGTH]
        self.provider_calls.labels(provider, operation, label, billing).inc()
        self.provider_seconds.labels(provider, operation).observe(seconds)

    def quota_refused(self, operation: str) -> None:
        self.quota_refusals.labels(operation).inc()

    def watch_pool(self, pool: PoolGauge | None) -> None:
        """Show ``pool``'s queue at every scrape (None: no local engine in use)."""
        self.pool = pool

    def budget(self, status: BudgetStatus) -> None:
        """A provider's figures as last read, shown at every scrape until replaced."""
        self.budgets[status.provider] = status

    def exposition(self) -> bytes:
        """Everything in the Prometheus text format."""
        return generate_latest(self.registry)


class _ScrapeTime(Collector):
    """The families read when Prometheus asks, not kept up to date by the hot path."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        pool = self.metrics.pool
        if pool is not None:
            for name, text, value in (
                ("in_flight", "Photos in the local engine, worked on or waiting", pool.in_flight),
                ("waiting", "Photos waiting for a local worker", pool.waiting),
                ("capacity", "Photos the local engine takes before refusing", pool.capacity),
            ):
                yield GaugeMetricFamily(f"{PREFIX}_local_pool_{name}", text, value=value)
        remaining = GaugeMetricFamily(
            f"{PREFIX}_provider_remaining",
            "Calls a provider last said were left (remain: today, remain_times: the package)",
            labels=["provider", "figure"],
        )
        spent = GaugeMetricFamily(
            f"{PREFIX}_provider_spent",
            "1 while the bot refuses a provider's calls as spent",
            labels=["provider"],
        )
        for provider, status in sorted(self.metrics.budgets.items()):
            if status.remain is not None:
                remaining.add_metric([provider, "remain"], status.remain)
            if status.remain_times is not None:
                remaining.add_metric([provider, "remain_times"], status.remain_times)
            spent.add_metric([provider], 1 if status.spent else 0)
        yield remaining
        yield spent


METRICS: Final = Metrics()
"""This process's metrics: what ``/metrics`` serves and the functions below record into."""

update_handled = METRICS.update_handled
reply = METRICS.reply
provider_call = METRICS.provider_call
quota_refused = METRICS.quota_refused
