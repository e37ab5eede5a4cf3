"""The offline engine: check, compare, detect and analyze on this machine, no photo leaves it.

dlib's HOG detector, 5-point landmarks and ResNet face descriptor (the files of the
``face-recognition-models`` package), MediaPipe's face mesh, iris, pose and person
segmentation, and dlib-models' age and gender networks (``services.local.modelfiles``)
do the work in a pool of worker processes (``services.local``). The results are the
same typed results as the cloud providers', so the bot renders them the same way;
what these models cannot judge is listed in ``CheckResult.not_checked``, and what
they only estimate in ``CheckResult.estimated``.

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

Which faces are compared. ``measure.describe_photo`` gives a photo's real faces, the
main one first, with a descriptor for the first ``measure.COMPARE_MAX_FACES`` (10).
The main face of photo 1 is compared with every face of photo 2 that has a descriptor,
one source face against many as AWS CompareFaces does, and the closest is the answer
(``best_match``); ``CompareResult.index_b`` says which it is, ``candidates`` how many
were compared.

The best of several is judged more strictly. With ``n`` faces compared, a stranger
among them matches by chance up to ``n`` times as often as in one comparison; to keep
a verdict's false-match rate, each comparison's must be ``n`` times smaller
(Bonferroni). How that rate falls with the distance was measured on LFW with the same
model (J. Grimes, "Face recognition distances investigation",
jackgrimes.net/projects/face_recognition: all 81,875,206 pairs of 12,797 LFW images):
from the published precision and recall, with about 240,000 same-person pairs, the
false-match rate at distance 0.60 / 0.55 / 0.50 / 0.45 is
about 5.7e-3 / 1.2e-3 / 2.4e-4 / 3.5e-5, some fivefold per 0.05; a log-linear fit
gives 14.6 decades per unit of distance, so halving the rate takes
log10(2) / 14.6 = 0.021 of distance. Every bound therefore rises by
``LOCAL_PER_DOUBLING`` = 0.02 of score per doubling of ``n``, 0.02 * log2(n): by 0.02
for 2 faces, 0.032 for 3, 0.04 for 4 and 0.066 for 10, where "probably the same"
needs 0.466 instead of 0.40 (distance 0.534). A 1:1 compare (``n`` = 1) is unchanged,
and so is the compare of the two faces of one photo (``compare_within``): one pair.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
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
from services.providers.base import Analyzer, Checker, Detector, NotAPair, PairComparer
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

# Every bound's rise per doubling of the faces of photo 2 compared: the false-match
# rate halves per 0.021 of distance (see the module docstring).
LOCAL_PER_DOUBLING: Final = 0.02
# score = 1 - descriptor distance; see the module docstring for where each comes from.
LOCAL_THRESHOLDS: Final = CompareThresholds(
    probably_same=0.40,  # distance 0.60, dlib's own threshold
    same_high=0.50,  # distance 0.50, face_recognition users' strict setting
    same_very_high=0.55,  # distance 0.45
    explain_id=N_("compare.explain_local"),
    per_doubling=LOCAL_PER_DOUBLING,
)

SEVERAL_FACES_TEXT: Final = "照片中有多张人脸"
_USAGE: Final = Usage(charged=False)


class LocalProvider(Checker, PairComparer, Detector, Analyzer):
    """Check, compare, detect and analyze with the offline models in local worker processes.

    Not billable: no operator pays for its calls, though they count against the users'
    allowances like any other.
    """

    name = NAME
    billable = False

    def __init__(
        self,
        *,
        landmarks: str = "mesh",
        workers: int = 1,
        queue_limit: int = 32,
        detector: str = "hog",
        models_dir: str = "",
        timeout: float = 60.0,
    ) -> None:
        if landmarks not in ("mesh", "68", "5"):
            raise ValueError("landmarks must be mesh, 68 or 5")
        if detector not in ("hog", "cnn"):
            raise ValueError("detector must be hog or cnn")
        self.config = EngineConfig(
            landmarks=landmarks,  # type: ignore[arg-type]
            detector=detector,  # type: ignore[arg-type]
            models_dir=models_dir,
        )
        self.limits: ImageLimits = LOCAL_LIMITS
        self.thresholds: CompareThresholds = LOCAL_THRESHOLDS
        self.unavailable_reason: str | None = None
        try:
            model_files(self.config)
        except ModelsMissing as error:
            self.unavailable_reason = str(error)
            log.warning("local engine unavailable: %s", error)
        self._pool = EnginePool(
            landmarks=landmarks,
            detector=detector,
            models_dir=models_dir,
            workers=workers,
            queue_limit=queue_limit,
            timeout=timeout,
        )

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> LocalProvider:
        return cls(
            landmarks=settings.local_landmarks,
            workers=settings.local_workers,
            queue_limit=settings.local_queue_limit,
            detector=settings.local_detector,
            models_dir=settings.local_models_dir,
            timeout=settings.local_timeout,
        )

    @property
    def pool(self) -> EnginePool:
        """The worker processes, for monitoring (their queue, whether they are up)."""
        return self._pool

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
        main = _descriptors(photo_a, N_("local.no_face_a"))[0]
        candidates = _descriptors(photo_b, N_("local.no_face_b"))[: measure.COMPARE_MAX_FACES]
        index_b, distance = best_match(main, candidates)
        return CompareResult(
            score=score_of(distance),
            faces_a=photo_a.faces,
            faces_b=photo_b.faces,
            provider=NAME,
            usage=_USAGE,
            index_a=0,
            index_b=index_b,
            candidates=len(candidates),
        )

    async def compare_within(self, image: PreparedImage) -> CompareResult:
        """The two faces of one photo, face 1 (the main one) against face 2; ``NotAPair``
        when the photo holds no face, one, or three and more."""
        photo = await self._pool.run(measure.describe_photo, self.config, image.data)
        if photo.problem == "no_face":
            raise NotAPair(0)
        _raise_for(photo.problem, N_("local.no_face"))
        if len(photo.faces) != 2 or len(photo.descriptors) != 2:
            raise NotAPair(len(photo.faces))
        first, second = photo.descriptors
        return CompareResult(
            score=score_of(math.dist(first, second)),
            faces_a=photo.faces,
            faces_b=photo.faces,
            provider=NAME,
            usage=_USAGE,
            index_a=0,
            index_b=1,
            candidates=1,
            one_photo=True,
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
        for name in measure.PER_PHOTO_FIELDS
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
        estimated=tuple(f for f in measure.ESTIMATED if measurements.value(f) is not None),
    )


def best_match(main: Sequence[float], candidates: Sequence[Sequence[float]]) -> tuple[int, float]:
    """The candidate descriptor closest to ``main``: its index and its distance (the first
    of equally close ones)."""
    if not candidates:
        raise ValueError("no candidate to compare with")
    distances = [math.dist(main, candidate) for candidate in candidates]
    index = min(range(len(distances)), key=distances.__getitem__)
    return index, distances[index]


def _descriptors(photo: measure.PhotoFaces, no_face: str) -> tuple[tuple[float, ...], ...]:
    """The photo's descriptors (``descriptors[i]`` is ``faces[i]``'s), or the error of a
    photo without a face to compare."""
    _raise_for(photo.problem, no_face)
    if not photo.descriptors:
        raise ProviderInputError(NAME, code="no_face", message_id=no_face)
    return photo.descriptors


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
