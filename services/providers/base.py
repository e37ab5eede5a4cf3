"""The provider contract: what every provider is, and the four capabilities it may have.

A provider has a ``name`` (in logs, usage records and replies), says whether it is
``available`` on this deployment and whether its calls are ``billable`` (a cloud
provider's are; the offline engine's are not), gives the image limits it accepts for
a photo, and is started and closed with the bot. The operations (``services.operations``)
are generic over the capability they need; the local engine has all four, and can
also compare the two faces of one photo (``PairComparer``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from services.images import ImageInfo, ImageLimits, PreparedImage
from services.models import CheckResult, CompareResult, CompareThresholds, FacesResult


class Provider(ABC):
    name: str
    billable: bool = True
    limits: ImageLimits
    # Why this deployment cannot serve calls (the local model files are missing), or None.
    unavailable_reason: str | None = None

    @property
    def available(self) -> bool:
        return self.unavailable_reason is None

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


class NotAPair(Exception):
    """``compare_within`` found no pair to compare: the photo does not hold exactly two
    faces (``faces`` of them), or (``faces`` None) the provider cannot compare within one
    photo at all.

    Not a ``ServiceError``: nobody is told. The metering releases the user's reservation
    (nothing is charged), and the bot asks for the second photo as it always did.
    """

    def __init__(self, faces: int | None) -> None:
        super().__init__(
            "the provider compares two photos only" if faces is None else f"{faces} face(s)"
        )
        self.faces = faces


class PairComparer(Comparer):
    """A comparer that can also compare the two faces of one photo with each other: a
    selfie holding an ID card, a printed photo held next to the face. The local engine
    can; JD's ``faceCompareV1`` takes one face per image, so it cannot."""

    @abstractmethod
    async def compare_within(self, image: PreparedImage) -> CompareResult:
        """Face 1 against face 2 of ``image`` (``one_photo``, indices 0 and 1), or
        ``NotAPair`` when the photo does not hold exactly two faces."""


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
