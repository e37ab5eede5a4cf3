"""Building the services from the settings: one provider instance per vendor, the operations
over them, storage, quotas and budgets. Built once at start-up, closed once at the end."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TypeVar

from services import workers
from services.alerts import BudgetAlerts
from services.budget import ProviderBudgets
from services.config import ServiceSettings
from services.ledger import Ledger
from services.metering import Metering
from services.models import Operation
from services.operations import (
    AnalyzeService,
    AnyService,
    CheckService,
    CompareService,
    DetectService,
)
from services.providers.base import Analyzer, Checker, Comparer, Detector, Provider
from services.providers.http import HttpTransport
from services.providers.huawei import HuaweiChecker
from services.providers.jdcloud import JdCloudClient
from services.providers.jumdata import JumdataChecker, JumdataClient
from services.providers.jumdata_detect import JumdataDetector
from services.providers.local import LocalProvider
from services.storage.db import Database, open_database

log = logging.getLogger(__name__)
J = TypeVar("J", bound=JumdataClient)


@dataclass(slots=True)
class Services:
    """Everything the bot hands to its handlers."""

    check: CheckService
    compare: CompareService
    detect: DetectService
    analyze: AnalyzeService
    metering: Metering | None = None
    database: Database | None = None
    alerts: BudgetAlerts | None = None  # the bot sets its ``notify`` at start-up

    def of(self, operation: Operation) -> AnyService:
        services: dict[Operation, AnyService] = {
            Operation.CHECK: self.check,
            Operation.COMPARE: self.compare,
            Operation.DETECT: self.detect,
            Operation.ANALYZE: self.analyze,
        }
        return services[operation]

    def available(self, operation: Operation) -> bool:
        return self.of(operation).available

    def provider_name(self, operation: Operation) -> str:
        return self.of(operation).provider.name

    def billable_providers(self) -> list[str]:
        """The cloud providers in use: the ones with budgets an operator may clear."""
        return sorted({p.name for p in self._providers() if p.billable})

    @classmethod
    async def open(cls, settings: ServiceSettings) -> Services:
        """Services with storage: the database (migrated), quotas and provider budgets."""
        workers.configure(settings.image_workers)
        database = await open_database(settings.database_url)
        ledger = Ledger.from_settings(database, settings)
        released = await ledger.expire_stale()  # units left by a process that died mid-call
        if released:
            log.info("released %d reservation(s) left by an earlier run", released)
        budgets = ProviderBudgets.from_settings(database, settings)
        alerts = BudgetAlerts.from_settings(database, budgets, settings)
        metering = Metering(ledger, budgets, alerts)
        services = cls.from_settings(settings, metering=metering)
        services.database = database
        services.alerts = alerts
        return services

    @classmethod
    def from_settings(
        cls, settings: ServiceSettings, *, metering: Metering | None = None
    ) -> Services:
        """The providers as configured; without ``metering`` nothing is counted."""
        providers = _Providers(settings)
        fallback = providers.local if settings.fallback_to_local else None
        return cls(
            check=CheckService(providers.checker(), fallback=fallback, metering=metering),
            compare=CompareService(providers.comparer(), fallback=fallback, metering=metering),
            detect=DetectService(providers.detector(), fallback=fallback, metering=metering),
            analyze=AnalyzeService(providers.analyzer(), fallback=fallback, metering=metering),
            metering=metering,
        )

    def _providers(self) -> list[Provider]:
        unique: dict[int, Provider] = {}
        for operation in Operation:
            for provider in self.of(operation).providers:
                unique[id(provider)] = provider
        return list(unique.values())

    def unavailable(self) -> list[str]:
        """Why a provider the settings chose cannot serve, one line each: ``python -m bot``
        stops with these instead of starting and refusing every photo."""
        return [f"{p.name}: {p.unavailable_reason}" for p in self._providers() if not p.available]

    async def start(self) -> None:
        """Warm up what needs it (the local engine's worker processes) before users come."""
        for provider in self._providers():
            if provider.available:
                await provider.start()

    async def close(self) -> None:
        await asyncio.gather(*(provider.close() for provider in self._providers()))
        await workers.close()
        if self.alerts is not None:
            await self.alerts.close()  # the alerts being sent, before the database goes
        if self.database is not None:
            await self.database.close()


class _Providers:
    """One instance per vendor: jumdata's check and detect share one session, and one JD
    client serves both compare and analyze."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.local = LocalProvider.from_settings(settings)
        self._jumdata = HttpTransport("jumdata", settings.provider_timeout)
        self._jdcloud: JdCloudClient | None = None

    def checker(self) -> Checker:
        s = self.settings
        if s.check_provider == "jumdata":
            return self._jumdata_client(JumdataChecker)
        if s.check_provider == "huawei":
            return HuaweiChecker(
                s.huawei_app_key,
                s.huawei_app_secret.get_secret_value(),
                s.huawei_check_url,
                s.provider_timeout,
            )
        return self.local

    def detector(self) -> Detector:
        if self.settings.detect_provider == "jumdata":
            return self._jumdata_client(JumdataDetector)
        return self.local

    def _jumdata_client(self, kind: type[J]) -> J:
        s = self.settings
        return kind(
            s.jumdata_app_id,
            s.jumdata_app_secret.get_secret_value(),
            s.jumdata_url,
            s.provider_timeout,
            transport=self._jumdata,
        )

    def comparer(self) -> Comparer:
        return self.jdcloud() if self.settings.compare_provider == "jdcloud" else self.local

    def analyzer(self) -> Analyzer:
        return self.jdcloud() if self.settings.analyze_provider == "jdcloud" else self.local

    def jdcloud(self) -> JdCloudClient:
        if self._jdcloud is None:
            s = self.settings
            self._jdcloud = JdCloudClient(
                s.jdcloud_access_key,
                s.jdcloud_secret_key.get_secret_value(),
                s.jdcloud_url,
                s.provider_timeout,
            )
        return self._jdcloud
