"""The provider contract: what every provider is, and the four capabilities it may have.

A provider has a ``name`` (in logs, usage records and replies), says whether it is
``available`` on this deployment and whether its calls are ``billable`` (a cloud
provider's are; the offline engine's are not), gives the image limits it accepts for
a photo, and is started and closed with the bot. The operations (``services.operations``)
are generic over the capability they need; the local engine has all four.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from services.images import ImageInfo, ImageLimits, PreparedImage
from services.models import CheckResult, CompareResult, CompareThresholds, FacesResult


class Provider(ABC):
    name: str
    billable: bool = True
    limits: ImageLimits

    @property
    def available(self) -> bool:
        """False when this deployment cannot serve calls (the local models are missing)."""
        return True

    def limits_for(self, info: ImageInfo) -> ImageLimits:
        """The limits a photo of this size is prepared with; most providers have one set."""
        return self.limits

    async def start(self) -> None:  # noqa: B027 - optional: only the local engine warms up
        """Warm up before users come; nothing to do for an HTTP client."""

    @abstractmethod
    async def close(self) -> None: ...


class Checker(Provider):
    """An ID-photo compliance check: jumdata, its Huawei resale, the local engine."""

    @abstractmethod
    async def check(self, image: PreparedImage) -> CheckResult: ...


class Comparer(Provider):
    """1:1 face compare: JD Cloud ``faceCompareV1`` or the local engine."""

    thresholds: CompareThresholds

    @abstractmethod
    async def compare(self, a: PreparedImage, b: PreparedImage) -> CompareResult: ...


class Detector(Provider):
    """Every face in a photo: jumdata ``/face/detect`` or the local engine."""

    @abstractmethod
    async def detect(
        self, image: PreparedImage, *, max_faces: int, attributes: bool
    ) -> FacesResult: ...


class Analyzer(Provider):
    """Per-face attributes: JD Cloud ``facePropV1`` or the local engine."""

    @abstractmethod
    async def analyze(self, image: PreparedImage, *, max_faces: int) -> FacesResult: ...
