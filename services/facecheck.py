"""The operations as a plain-Python API: bytes in, typed outcome out.

This is what the bot calls and what a script can call: it runs the image pipeline
and the drawing off the event loop, calls the configured provider, and knows
nothing of Telegram.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from services.annotate import annotate_check_async
from services.config import ServiceSettings
from services.errors import OperationUnavailable
from services.images import PreparedImage, prepare_image_async
from services.models import CheckResult, Operation
from services.providers.base import IdPhotoChecker
from services.providers.huawei import HuaweiChecker
from services.providers.jumdata import JumdataChecker
from services.providers.local import LocalChecker

log = logging.getLogger(__name__)


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
            (time.perf_counter() - started) * 1000,
        )
        annotated = await annotate_check_async(image, result)
        return CheckOutcome(result=result, image=image, annotated=annotated)

    async def close(self) -> None:
        await self.provider.close()


def build_checker(settings: ServiceSettings) -> IdPhotoChecker:
    timeout = settings.provider_timeout
    match settings.check_provider:
        case "jumdata":
            return JumdataChecker(
                settings.jumdata_app_id,
                settings.jumdata_app_secret.get_secret_value(),
                settings.jumdata_url,
                timeout,
            )
        case "huawei":
            return HuaweiChecker(
                settings.huawei_app_key,
                settings.huawei_app_secret.get_secret_value(),
                settings.huawei_check_url,
                timeout,
            )
        case _:
            return LocalChecker()


@dataclass(slots=True)
class Services:
    """Everything the bot hands to its handlers; built once, closed once."""

    check: CheckService

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> Services:
        return cls(check=CheckService(build_checker(settings)))

    async def close(self) -> None:
        await self.check.close()
