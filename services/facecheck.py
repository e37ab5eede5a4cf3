"""The operations as a plain-Python API: bytes in, typed outcome out.

This is what the bot calls and what a script can call: it runs the image pipeline
and the drawing off the event loop, calls the configured provider, and knows
nothing of Telegram.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from services.annotate import annotate_check_async
from services.annotate_faces import annotate_faces_async, compare_side_by_side_async
from services.budget import ProviderBudgets
from services.config import ServiceSettings
from services.errors import ImageError, OperationUnavailable
from services.faces import (
    AnalyzeResult,
    CompareResult,
    CompareThresholds,
    DetectResult,
    Face,
    Usage,
    Verdict,
)
from services.images import ImageLimits, PreparedImage, inspect_image, prepare_image_async
from services.metering import Answered, Caller, Metering, run_unmetered
from services.models import CheckResult, Operation
from services.providers.base import (
    FaceAnalyzer,
    FaceComparer,
    FaceDetector,
    HttpTransport,
    IdPhotoChecker,
)
from services.providers.huawei import HuaweiChecker
from services.providers.jdcloud import JdCloudClient
from services.providers.jumdata import JumdataChecker
from services.providers.jumdata_detect import JumdataDetector
from services.providers.local import LocalEngine
from services.quota import Ledger
from services.storage.db import Database, open_database

log = logging.getLogger(__name__)

X = TypeVar("X")
R = TypeVar("R")

DETECT_MAX_FACES = 120
ANALYZE_MAX_FACES = 10


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


class _OperationService:
    """What the four services share: the provider, the fallback, the metering."""

    operation: Operation

    def __init__(
        self,
        provider: Any,
        *,
        fallback: Any | None = None,
        metering: Metering | None = None,
    ) -> None:
        self.provider = provider
        self.fallback = fallback if fallback is not provider else None
        self.metering = metering

    @property
    def available(self) -> bool:
        return bool(self.provider.available or (self.fallback and self.fallback.available))

    def _providers(self) -> list[Any]:
        providers = [p for p in (self.provider, self.fallback) if p is not None and p.available]
        if not providers:
            raise OperationUnavailable(self.operation.value, self.provider.name)
        return providers

    async def _run(
        self,
        caller: Caller | None,
        prepare: Callable[[Any], Awaitable[X]],
        call: Callable[[Any, X], Awaitable[R]],
        usage_of: Callable[[R], Usage],
    ) -> Answered[Any, X, R]:
        providers = self._providers()
        started = time.perf_counter()
        if self.metering is None or caller is None:
            answered = await run_unmetered(providers, prepare, call)
        else:
            answered = await self.metering.run(
                self.operation, caller, providers, prepare, call, usage_of
            )
        usage = usage_of(answered.result)
        log.info(
            "%s via %s%s: charged=%s remain=%s task=%s in %.0f ms",
            self.operation.value,
            answered.provider.name,
            f" (instead of {answered.fell_back_from})" if answered.fell_back_from else "",
            usage.charged,
            usage.remain,
            usage.task_no,
            _ms(started),
        )
        return answered


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    result: CheckResult
    image: PreparedImage  # what the provider saw
    annotated: bytes  # JPEG of that image with the rules drawn on it
    fell_back_from: str | None = None


class CheckService(_OperationService):
    operation = Operation.CHECK

    async def check(self, data: bytes, caller: Caller | None = None) -> CheckOutcome:
        async def prepare(provider: IdPhotoChecker) -> PreparedImage:
            return await prepare_image_async(data, provider.limits)

        async def call(provider: IdPhotoChecker, image: PreparedImage) -> CheckResult:
            return await provider.check(image)

        answered = await self._run(
            caller, prepare, call, lambda r: Usage(charged=r.charged, task_no=r.task_no)
        )
        result, image = answered.result, answered.prepared
        log.info("check: pass=%s reasons=%d", result.passed, len(result.reasons))
        annotated = await annotate_check_async(image, result)
        return CheckOutcome(result, image, annotated, answered.fell_back_from)


@dataclass(frozen=True, slots=True)
class CompareOutcome:
    result: CompareResult
    verdict: Verdict
    thresholds: CompareThresholds
    images: tuple[PreparedImage, PreparedImage]
    faces: tuple[Face | None, Face | None]  # the largest face of each photo: the one compared
    picture: bytes  # the two faces side by side with the score
    fell_back_from: str | None = None


class CompareService(_OperationService):
    operation = Operation.COMPARE

    @property
    def thresholds(self) -> CompareThresholds:
        return self.provider.thresholds

    async def compare(
        self, first: bytes, second: bytes, caller: Caller | None = None
    ) -> CompareOutcome:
        async def prepare(provider: FaceComparer) -> tuple[PreparedImage, PreparedImage]:
            a, b = await asyncio.gather(
                _prepare_nth(first, provider.limits, 1),
                _prepare_nth(second, provider.limits, 2),
            )
            return a, b

        async def call(
            provider: FaceComparer, images: tuple[PreparedImage, PreparedImage]
        ) -> CompareResult:
            return await provider.compare(*images)

        answered = await self._run(caller, prepare, call, lambda r: r.usage)
        result, (a, b) = answered.result, answered.prepared
        thresholds: CompareThresholds = answered.provider.thresholds
        verdict = thresholds.verdict(result.score)
        log.info(
            "compare: score=%.3f verdict=%s faces=%d/%d",
            result.score,
            verdict.value,
            len(result.faces_a),
            len(result.faces_b),
        )
        face_a, face_b = result.face_a(), result.face_b()
        picture = await compare_side_by_side_async(
            a, face_a, b, face_b, result.score, same=verdict is not Verdict.DIFFERENT
        )
        return CompareOutcome(
            result, verdict, thresholds, (a, b), (face_a, face_b), picture, answered.fell_back_from
        )


async def _prepare_nth(data: bytes, limits: ImageLimits, nth: int) -> PreparedImage:
    """Prepare one of several photos; a refusal says which photo it was."""
    try:
        return await prepare_image_async(data, limits)
    except ImageError as error:
        error.values["photo"] = nth
        raise


def _largest_first(faces: tuple[Face, ...]) -> tuple[Face, ...]:
    return tuple(sorted(faces, key=lambda face: face.box.area, reverse=True))


@dataclass(frozen=True, slots=True)
class DetectOutcome:
    result: DetectResult
    faces: tuple[Face, ...]  # largest first: the numbers on the picture
    image: PreparedImage
    picture: bytes
    fell_back_from: str | None = None


class DetectService(_OperationService):
    operation = Operation.DETECT

    async def detect(
        self, data: bytes, *, attributes: bool = False, caller: Caller | None = None
    ) -> DetectOutcome:
        info = await asyncio.to_thread(inspect_image, data)

        async def prepare(provider: FaceDetector) -> PreparedImage:
            return await prepare_image_async(data, provider.limits_for(info.width, info.height))

        async def call(provider: FaceDetector, image: PreparedImage) -> DetectResult:
            return await provider.detect(image, max_faces=DETECT_MAX_FACES, attributes=attributes)

        answered = await self._run(caller, prepare, call, lambda r: r.usage)
        faces = _largest_first(answered.result.faces)
        picture = await annotate_faces_async(answered.prepared, faces)
        return DetectOutcome(
            answered.result, faces, answered.prepared, picture, answered.fell_back_from
        )


@dataclass(frozen=True, slots=True)
class AnalyzeOutcome:
    result: AnalyzeResult
    faces: tuple[Face, ...]  # largest first: the numbers on the picture
    image: PreparedImage
    picture: bytes
    fell_back_from: str | None = None


class AnalyzeService(_OperationService):
    operation = Operation.ANALYZE

    async def analyze(self, data: bytes, caller: Caller | None = None) -> AnalyzeOutcome:
        async def prepare(provider: FaceAnalyzer) -> PreparedImage:
            return await prepare_image_async(data, provider.limits)

        async def call(provider: FaceAnalyzer, image: PreparedImage) -> AnalyzeResult:
            return await provider.analyze(image, max_faces=ANALYZE_MAX_FACES)

        answered = await self._run(caller, prepare, call, lambda r: r.usage)
        faces = _largest_first(answered.result.faces)
        picture = await annotate_faces_async(answered.prepared, faces, draw_landmarks=False)
        return AnalyzeOutcome(
            answered.result, faces, answered.prepared, picture, answered.fell_back_from
        )


@dataclass(slots=True)
class Services:
    """Everything the bot hands to its handlers; built once, closed once."""

    check: CheckService
    compare: CompareService
    detect: DetectService
    analyze: AnalyzeService
    metering: Metering | None = None
    database: Database | None = None

    def available(self, operation: Operation) -> bool:
        return bool(getattr(self, operation.value).available)

    def provider_name(self, operation: Operation) -> str:
        return str(getattr(self, operation.value).provider.name)

    @classmethod
    async def open(cls, settings: ServiceSettings) -> Services:
        """Services with storage: the database (migrated), quotas and provider budgets."""
        database = await open_database(settings.database_url)
        ledger = Ledger.from_settings(database, settings)
        released = await ledger.expire_stale()  # units left by a process that died mid-call
        if released:
            log.info("released %d reservation(s) left by an earlier run", released)
        metering = Metering(ledger, ProviderBudgets.from_settings(database, settings))
        services = cls.from_settings(settings, metering=metering)
        services.database = database
        return services

    @classmethod
    def from_settings(
        cls, settings: ServiceSettings, *, metering: Metering | None = None
    ) -> Services:
        """The providers as configured; without ``metering`` nothing is counted."""
        timeout = settings.provider_timeout
        local = LocalEngine.from_settings(settings)
        jdcloud: JdCloudClient | None = None
        if "jdcloud" in (settings.compare_provider, settings.analyze_provider):
            # One client, one session, for both JD operations.
            jdcloud = JdCloudClient(
                settings.jdcloud_access_key,
                settings.jdcloud_secret_key.get_secret_value(),
                settings.jdcloud_url,
                timeout,
            )
        # One session per provider: the jumdata check and detect share theirs.
        jumdata = HttpTransport("jumdata", timeout)
        checker: IdPhotoChecker = local
        if settings.check_provider == "jumdata":
            checker = JumdataChecker(
                settings.jumdata_app_id,
                settings.jumdata_app_secret.get_secret_value(),
                settings.jumdata_url,
                timeout,
                transport=jumdata,
            )
        elif settings.check_provider == "huawei":
            checker = HuaweiChecker(
                settings.huawei_app_key,
                settings.huawei_app_secret.get_secret_value(),
                settings.huawei_check_url,
                timeout,
            )
        detector: FaceDetector = local
        if settings.detect_provider == "jumdata":
            detector = JumdataDetector(
                settings.jumdata_app_id,
                settings.jumdata_app_secret.get_secret_value(),
                settings.jumdata_url,
                timeout,
                transport=jumdata,
            )
        comparer: FaceComparer = (
            jdcloud if settings.compare_provider == "jdcloud" and jdcloud else local
        )
        analyzer: FaceAnalyzer = (
            jdcloud if settings.analyze_provider == "jdcloud" and jdcloud else local
        )
        fallback = local if settings.fallback_to_local else None
        options = {"fallback": fallback, "metering": metering}
        return cls(
            check=CheckService(checker, **options),
            compare=CompareService(comparer, **options),
            detect=DetectService(detector, **options),
            analyze=AnalyzeService(analyzer, **options),
            metering=metering,
        )

    def _providers(self) -> list[Any]:
        unique: dict[int, Any] = {}
        for service in (self.check, self.compare, self.detect, self.analyze):
            for provider in (service.provider, service.fallback):
                if provider is not None:
                    unique[id(provider)] = provider
        return list(unique.values())

    async def start(self) -> None:
        """Warm up what needs it (the local engine's worker processes) before users come."""
        for provider in self._providers():
            start = getattr(provider, "start", None)
            if start is not None and provider.available:
                await start()

    async def close(self) -> None:
        await asyncio.gather(*(provider.close() for provider in self._providers()))
        if self.database is not None:
            await self.database.close()
