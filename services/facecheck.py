"""The operations as a plain-Python API: bytes in, typed outcome out.

This is what the bot calls and what a script can call: it runs the image pipeline
and the drawing off the event loop, calls the configured provider, and knows
nothing of Telegram.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from services.annotate import annotate_check_async
from services.annotate_faces import annotate_faces_async, compare_side_by_side_async
from services.config import ServiceSettings
from services.errors import ImageError, OperationUnavailable
from services.faces import (
    AnalyzeResult,
    CompareResult,
    CompareThresholds,
    DetectResult,
    Face,
    Verdict,
)
from services.images import ImageLimits, PreparedImage, inspect_image, prepare_image_async
from services.models import CheckResult, Operation
from services.providers.base import FaceAnalyzer, FaceComparer, FaceDetector, IdPhotoChecker
from services.providers.huawei import HuaweiChecker
from services.providers.jdcloud import JdCloudClient
from services.providers.jumdata import JumdataChecker
from services.providers.jumdata_detect import JumdataDetector
from services.providers.local import LocalEngine

log = logging.getLogger(__name__)

DETECT_MAX_FACES = 120
ANALYZE_MAX_FACES = 10


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    result: CheckResult
    image: PreparedImage  # what the provider saw
    annotated: bytes  # JPEG of that image with the rules drawn on it


class CheckService:
    def __init__(self, provider: IdPhotoChecker) -> None:
        self.provider = provider

    @property
    def available(self) -> bool:
        return self.provider.available

    async def check(self, data: bytes) -> CheckOutcome:
        if not self.provider.available:
            raise OperationUnavailable(Operation.CHECK.value, self.provider.name)
        image = await prepare_image_async(data, self.provider.limits)
        started = time.perf_counter()
        result = await self.provider.check(image)
        log.info(
            "check via %s: pass=%s reasons=%d charged=%s task=%s in %.0f ms",
            result.provider,
            result.passed,
            len(result.reasons),
            result.charged,
            result.task_no,
            _ms(started),
        )
        annotated = await annotate_check_async(image, result)
        return CheckOutcome(result=result, image=image, annotated=annotated)


@dataclass(frozen=True, slots=True)
class CompareOutcome:
    result: CompareResult
    verdict: Verdict
    thresholds: CompareThresholds
    images: tuple[PreparedImage, PreparedImage]
    faces: tuple[Face | None, Face | None]  # the largest face of each photo: the one compared
    picture: bytes  # the two faces side by side with the score


class CompareService:
    def __init__(self, provider: FaceComparer) -> None:
        self.provider = provider

    @property
    def thresholds(self) -> CompareThresholds:
        return self.provider.thresholds

    @property
    def available(self) -> bool:
        return self.provider.available

    async def compare(self, first: bytes, second: bytes) -> CompareOutcome:
        if not self.provider.available:
            raise OperationUnavailable(Operation.COMPARE.value, self.provider.name)
        a, b = await asyncio.gather(
            _prepare_nth(first, self.provider.limits, 1),
            _prepare_nth(second, self.provider.limits, 2),
        )
        started = time.perf_counter()
        result = await self.provider.compare(a, b)
        verdict = self.thresholds.verdict(result.score)
        log.info(
            "compare via %s: score=%.3f verdict=%s faces=%d/%d charged=%s remain=%s in %.0f ms",
            result.provider,
            result.score,
            verdict.value,
            len(result.faces_a),
            len(result.faces_b),
            result.usage.charged,
            result.usage.remain,
            _ms(started),
        )
        face_a, face_b = result.face_a(), result.face_b()
        picture = await compare_side_by_side_async(
            a, face_a, b, face_b, result.score, same=verdict is not Verdict.DIFFERENT
        )
        return CompareOutcome(result, verdict, self.thresholds, (a, b), (face_a, face_b), picture)


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


class DetectService:
    def __init__(self, provider: FaceDetector) -> None:
        self.provider = provider

    @property
    def available(self) -> bool:
        return self.provider.available

    async def detect(self, data: bytes, *, attributes: bool = False) -> DetectOutcome:
        if not self.provider.available:
            raise OperationUnavailable(Operation.DETECT.value, self.provider.name)
        info = await asyncio.to_thread(inspect_image, data)
        image = await prepare_image_async(data, self.provider.limits_for(info.width, info.height))
        started = time.perf_counter()
        result = await self.provider.detect(
            image, max_faces=DETECT_MAX_FACES, attributes=attributes
        )
        log.info(
            "detect via %s: faces=%d charged=%s task=%s in %.0f ms",
            result.provider,
            len(result.faces),
            result.usage.charged,
            result.usage.task_no,
            _ms(started),
        )
        faces = _largest_first(result.faces)
        picture = await annotate_faces_async(image, faces)
        return DetectOutcome(result, faces, image, picture)


@dataclass(frozen=True, slots=True)
class AnalyzeOutcome:
    result: AnalyzeResult
    faces: tuple[Face, ...]  # largest first: the numbers on the picture
    image: PreparedImage
    picture: bytes


class AnalyzeService:
    def __init__(self, provider: FaceAnalyzer) -> None:
        self.provider = provider

    @property
    def available(self) -> bool:
        return self.provider.available

    async def analyze(self, data: bytes) -> AnalyzeOutcome:
        if not self.provider.available:
            raise OperationUnavailable(Operation.ANALYZE.value, self.provider.name)
        image = await prepare_image_async(data, self.provider.limits)
        started = time.perf_counter()
        result = await self.provider.analyze(image, max_faces=ANALYZE_MAX_FACES)
        log.info(
            "analyze via %s: faces=%d charged=%s remain=%s in %.0f ms",
            result.provider,
            len(result.faces),
            result.usage.charged,
            result.usage.remain,
            _ms(started),
        )
        faces = _largest_first(result.faces)
        picture = await annotate_faces_async(image, faces, draw_landmarks=False)
        return AnalyzeOutcome(result, faces, image, picture)


@dataclass(slots=True)
class Services:
    """Everything the bot hands to its handlers; built once, closed once."""

    check: CheckService
    compare: CompareService
    detect: DetectService
    analyze: AnalyzeService

    def available(self, operation: Operation) -> bool:
        return bool(getattr(self, operation.value).available)

    def provider_name(self, operation: Operation) -> str:
        return str(getattr(self, operation.value).provider.name)

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> Services:
        timeout = settings.provider_timeout
        local = LocalEngine()
        jdcloud: JdCloudClient | None = None
        if "jdcloud" in (settings.compare_provider, settings.analyze_provider):
            # One client, one session, for both JD operations.
            jdcloud = JdCloudClient(
                settings.jdcloud_access_key,
                settings.jdcloud_secret_key.get_secret_value(),
                settings.jdcloud_url,
                timeout,
            )
        checker: IdPhotoChecker = local
        if settings.check_provider == "jumdata":
            checker = JumdataChecker(
                settings.jumdata_app_id,
                settings.jumdata_app_secret.get_secret_value(),
                settings.jumdata_url,
                timeout,
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
            )
        comparer: FaceComparer = (
            jdcloud if settings.compare_provider == "jdcloud" and jdcloud else local
        )
        analyzer: FaceAnalyzer = (
            jdcloud if settings.analyze_provider == "jdcloud" and jdcloud else local
        )
        return cls(
            check=CheckService(checker),
            compare=CompareService(comparer),
            detect=DetectService(detector),
            analyze=AnalyzeService(analyzer),
        )

    def _providers(self) -> list[Any]:
        unique = {
            id(s.provider): s.provider
            for s in (self.check, self.compare, self.detect, self.analyze)
        }
        return list(unique.values())

    async def start(self) -> None:
        """Warm up what needs it (the local engine's worker processes) before users come."""
        for provider in self._providers():
            start = getattr(provider, "start", None)
            if start is not None:
                await start()

    async def close(self) -> None:
        await asyncio.gather(*(provider.close() for provider in self._providers()))
