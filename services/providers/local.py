"""The offline engine: check, compare, detect and analyze on this machine, no photo leaves it.

dlib's HOG detector, its 5- or 68-point landmarks and its ResNet face descriptor
(the files of the ``face-recognition-models`` package) do the work in a pool of
worker processes (``services.local``). The results are the same typed results as the
cloud providers', so the bot renders them the same way; what these models cannot
judge is listed in ``CheckResult.not_checked``.

Compare: the descriptors' Euclidean distance ``d`` becomes ``score = 1 - d``
(clamped to 0..1), and ``LOCAL_THRESHOLDS`` maps it to the verdicts:

- dlib documents its model at 99.38 % on the LFW benchmark with pairs under
  ``d = 0.6`` taken as the same person, so ``0.6 -> 0.40`` is "probably the same";
- users of face_recognition (the same model) report false matches at 0.6 between
  relatives and look-alikes and use 0.5 to be strict: ``0.5 -> 0.50`` is "the same
  person, high confidence";
- ``0.45 -> 0.55`` is "very high": a margin of 0.15 below dlib's threshold, where
  the sample photos of one person all fall (at most 0.44 apart) and no stranger
  came near (the closest was 0.81).

Measured on face_recognition's sample photos: the five photos of one person are
0.23-0.44 apart (scores 0.56-0.77), the other person 0.81-0.87 away (0.13-0.19);
the PNG copy of a JPEG is 0.04 from it.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Final

from services.config import ServiceSettings
from services.errors import ImageError, ImageProblem, ProviderInputError
from services.i18n import N_
from services.images import ACCEPTED_FORMATS, MAX_DOWNLOAD_BYTES, ImageLimits, PreparedImage
from services.local import NAME, measure
from services.local.pool import EnginePool
from services.local.vision import EngineConfig, ModelsMissing, model_files
from services.models import (
    CheckResult,
    CompareResult,
    CompareThresholds,
    FacesResult,
    Reason,
    Usage,
)
from services.providers.base import Analyzer, Checker, Comparer, Detector
from services.rules import Side, evaluate

log = logging.getLogger(__name__)


# Photos are decoded here, so the engine takes whatever the pipeline accepts, as it
# is: the original bytes keep their DPI, format and size for the check's file fields.
LOCAL_LIMITS: Final = ImageLimits(
    max_bytes=MAX_DOWNLOAD_BYTES,
    max_side=12000,
    min_side=100,
    formats=ACCEPTED_FORMATS,
)

# score = 1 - descriptor distance; see the module docstring for where each comes from.
LOCAL_THRESHOLDS: Final = CompareThresholds(
    probably_same=0.40,  # distance 0.60, dlib's own threshold
    same_high=0.50,  # distance 0.50, face_recognition users' strict setting
    same_very_high=0.55,  # distance 0.45
    explain_id=N_("compare.explain_local"),
)

SEVERAL_FACES_TEXT: Final = "照片中有多张人脸"
_USAGE: Final = Usage(charged=False)


class LocalProvider(Checker, Comparer, Detector, Analyzer):
    """Check, compare, detect and analyze with dlib's models in local worker processes.

    Not billable: no operator pays for its calls, though they count against the users'
    allowances like any other.
    """

    name = NAME
    billable = False

    def __init__(
        self,
        *,
        landmarks: int = 68,
        workers: int = 1,
        queue_limit: int = 32,
        detector: str = "hog",
    ) -> None:
        if landmarks not in (5, 68):
            raise ValueError("landmarks must be 5 or 68")
        if detector not in ("hog", "cnn"):
            raise ValueError("detector must be hog or cnn")
        self.config = EngineConfig(landmarks=landmarks, detector=detector)  # type: ignore[arg-type]
        self.limits: ImageLimits = LOCAL_LIMITS
        self.thresholds: CompareThresholds = LOCAL_THRESHOLDS
        self.unavailable_reason: str | None = None
        try:
            model_files(self.config)
        except ModelsMissing as error:
            self.unavailable_reason = str(error)
            log.warning("local engine unavailable: %s", error)
        self._pool = EnginePool(
            landmarks=landmarks, detector=detector, workers=workers, queue_limit=queue_limit
        )

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> LocalProvider:
        return cls(
            landmarks=settings.local_landmarks,
            workers=settings.local_workers,
            queue_limit=settings.local_queue_limit,
            detector=settings.local_detector,
        )

    @property
    def available(self) -> bool:
        return self.unavailable_reason is None

    @property
    def not_checked(self) -> tuple[str, ...]:
        """The documented check fields these models cannot measure."""
        return measure.not_checked(self.config.landmarks)

    async def start(self) -> None:
        """Spawn the workers and load their models now, so the first user does not wait."""
        if self.available:
            await self._pool.start()

    # -- operations

    async def check(self, image: PreparedImage) -> CheckResult:
        output = await self._pool.run(measure.check_photo, self.config, image.data, image.original)
        return check_result(output, self.not_checked)

    async def compare(self, a: PreparedImage, b: PreparedImage) -> CompareResult:
        # Two photos, two workers: both halves run at once when the pool has the room.
        halves = await asyncio.gather(
            self._pool.run(measure.describe_photo, self.config, a.data),
            self._pool.run(measure.describe_photo, self.config, b.data),
            return_exceptions=True,
        )
        for half in halves:  # a refusal (busy, shut down) of either half ends the compare
            if isinstance(half, BaseException):
                raise half
        photo_a, photo_b = halves
        assert isinstance(photo_a, measure.PhotoFaces) and isinstance(photo_b, measure.PhotoFaces)
        _raise_for(photo_a.problem, N_("local.no_face_a"))
        _raise_for(photo_b.problem, N_("local.no_face_b"))
        distance = math.dist(photo_a.descriptors[0], photo_b.descriptors[0])
        return CompareResult(
            score=score_of(distance),
            faces_a=photo_a.faces,
            faces_b=photo_b.faces,
            provider=NAME,
            usage=_USAGE,
        )

    async def detect(
        self, image: PreparedImage, *, max_faces: int, attributes: bool
    ) -> FacesResult:
        photo = await self._pool.run(
            measure.read_faces, self.config, image.data, max_faces, attributes
        )
        _raise_for(photo.problem, N_("local.no_face"))
        return FacesResult(faces=photo.faces, provider=NAME, usage=_USAGE)

    async def analyze(self, image: PreparedImage, *, max_faces: int) -> FacesResult:
        photo = await self._pool.run(measure.read_faces, self.config, image.data, max_faces, True)
        _raise_for(photo.problem, N_("local.no_face"))
        return FacesResult(faces=photo.faces, provider=NAME, usage=_USAGE, demographics=False)

    async def close(self) -> None:
        await self._pool.close()


def check_result(output: measure.CheckOutput, not_checked: tuple[str, ...]) -> CheckResult:
    """The check's answer: a reason for every rule the measured values break.

    Each reason carries the rule's own provider text and message id, exactly as a
    cloud check's reason would after ``classify_reason``, so the same catalogue renders
    both. More than one face is a reason of its own; the largest face is measured.
    """
    _raise_for(output.problem, N_("local.no_face"))
    measurements = output.measurements
    if measurements is None:
        raise ProviderInputError(NAME, code="no_measurements", message_id=N_("local.no_face"))
    reasons: list[Reason] = []
    if output.face_num > 1:
        reasons.append(
            Reason(
                text=SEVERAL_FACES_TEXT,
                message_id=N_("local.several_faces"),
                rule_field="face_num",
            )
        )
    outcomes = evaluate(measurements)
    for outcome in outcomes.values():
        if outcome.broken is None:
            continue
        rule = outcome.rule
        text = rule.low_reason if outcome.broken is Side.LOW else rule.high_reason
        reasons.append(
            Reason(text=text or "", message_id=outcome.message_id, rule_field=rule.field)
        )
    # Fields measured only against a plain background, or when the head leaves room for
    # one: on this photo they could not be, and the reply says so.
    missing = tuple(
        name
        for name in measure.BACKGROUND_FIELDS
        if measurements.value(name) is None and name not in not_checked
    )
    return CheckResult(
        passed=not reasons,
        reasons=tuple(reasons),
        measurements=measurements,
        outcomes=outcomes,
        provider=NAME,
        usage=_USAGE,
        not_checked=not_checked + missing,
    )


def score_of(distance: float) -> float:
    """The compare score of a descriptor distance: ``1 - distance``, within 0..1."""
    return min(1.0, max(0.0, 1.0 - distance))


def _raise_for(problem: str | None, no_face: str | None) -> None:
    """Turn a worker's problem code into the error the user is told about."""
    if problem is None:
        return
    if problem.startswith("image:"):
        raise ImageError(ImageProblem(problem.removeprefix("image:")), "decoded by local engine")
    if problem == "no_face" and no_face is not None:
        raise ProviderInputError(NAME, code="no_face", message_id=no_face)
    raise ProviderInputError(NAME, code=problem, message_id=N_("local.no_face"))
