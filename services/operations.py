"""The four operations as a plain-Python API: bytes in, typed outcome out.

This is what the bot calls and what a script can call: each operation prepares the
photos for its provider off the event loop, calls the provider through the metering
(quotas, budgets, the local fallback), and draws the picture that goes with the reply.
It knows nothing of Telegram.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar

from PIL import Image

from services import workers
from services.errors import ImageError, OperationUnavailable
from services.images import ImageInfo, PreparedImage, prepare_image_async, prepare_with_canvas
from services.local.measure import file_fields
from services.metering import Answered, Caller, Metering, Result, Then, run_unmetered
from services.models import (
    CheckResult,
    CompareResult,
    CompareThresholds,
    Face,
    FacesResult,
    Measurements,
    Operation,
    Reason,
    Verdict,
)
from services.pictures.boxes import FACES_SIDE, annotate_faces_async
from services.pictures.check import open_canvas, paint_check
from services.pictures.compare import (
    Shown,
    compare_one_photo_async,
    compare_side_by_side_async,
)
from services.providers.base import (
    Analyzer,
    Checker,
    Comparer,
    Detector,
    NotAPair,
    PairComparer,
    Provider,
)
from services.specs import Medium, Spec
from services.specs.judge import Judgement, SpecNotCheckable, judge

log = logging.getLogger(__name__)

P = TypeVar("P", bound=Provider)
X = TypeVar("X")
R = TypeVar("R", bound=Result)

DETECT_MAX_FACES = 120
ANALYZE_MAX_FACES = 10


class OperationService(Generic[P]):
    """What the four operations share: the provider, the fallback, the metering."""

    operation: ClassVar[Operation]

    def __init__(
        self, provider: P, *, fallback: P | None = None, metering: Metering | None = None
    ) -> None:
        self.provider = provider
        self.fallback = fallback if fallback is not provider else None
        self.metering = metering

    @property
    def available(self) -> bool:
        return self.provider.available or (self.fallback is not None and self.fallback.available)

    @property
    def providers(self) -> tuple[P, ...]:
        """The configured provider and the fallback, if any: what start and close reach."""
        return (self.provider,) if self.fallback is None else (self.provider, self.fallback)

    async def _run(
        self,
        caller: Caller | None,
        prepare: Callable[[P], Awaitable[X]],
        call: Callable[[P, X], Awaitable[R]],
        then: Then[P, X, R] | None = None,
    ) -> Answered[P, X, R]:
        """``then`` (drawing the picture) works on the answer while the call is recorded."""
        providers = [p for p in self.providers if p.available]
        if not providers:
            raise OperationUnavailable(self.operation.value, self.provider.name)
        started = time.perf_counter()
        if self.metering is None or caller is None:
            answered = await run_unmetered(providers, prepare, call, then)
        else:
            metering = self.metering
            answered = await metering.run(self.operation, caller, providers, prepare, call, then)
        usage = answered.result.usage
        log.info(
            "%s via %s%s: charged=%s remain=%s task=%s in %.0f ms",
            self.operation.value,
            answered.provider.name,
            f" (instead of {answered.fell_back_from})" if answered.fell_back_from else "",
            usage.charged,
            usage.remain,
            usage.task_no,
            (time.perf_counter() - started) * 1000,
        )
        return answered

    async def _run_one(
        self,
        data: bytes,
        caller: Caller | None,
        call: Callable[[P, PreparedImage], Awaitable[R]],
        then: Then[P, PreparedImage, R] | None = None,
    ) -> Answered[P, PreparedImage, R]:
        """One photo, prepared with the limits its provider gives for a photo of its size."""
        return await self._run(
            caller, lambda provider: prepare_image_async(data, provider.limits_for), call, then
        )


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    result: CheckResult
    image: PreparedImage  # what the provider saw
    picture: bytes  # JPEG of that image with the rules drawn on it
    fell_back_from: str | None = None
    judgement: Judgement | None = None  # the measurements against the chosen spec, if any

    @property
    def spec(self) -> Spec | None:
        return None if self.judgement is None else self.judgement.spec

    @property
    def passed(self) -> bool:
        """The verdict: the provider's, or under a spec the spec's with the quality rules.

        Under a spec the generic rules the spec judges in its own way (``Judgement.
        replaces``: the face's size and the eye line) give way to the spec's; any other
        reason, a reason the catalogue does not know included, still fails, and so does
        a failure the provider gave no reason for.
        """
        if self.judgement is None:
            return self.result.passed
        return (
            not self.other_reasons
            and self.judgement.passed
            and (self.result.passed or bool(self.result.reasons))
        )

    @property
    def other_reasons(self) -> tuple[Reason, ...]:
        """The provider's reasons that hold under the spec: all of them without one."""
        if self.judgement is None:
            return self.result.reasons
        replaced = self.judgement.replaces
        return tuple(r for r in self.result.reasons if r.rule_field not in replaced)


def as_sent(m: Measurements, original: ImageInfo) -> Measurements:
    """``m`` with the file's own fields as the user sent it (size, bytes, format, dpi): a
    provider saw a copy fitted to its limits, but a document's rules are about the file."""
    sent = file_fields(original)
    return dataclasses.replace(
        m,
        size_pix=(original.width, original.height),
        file_size=original.file_size,
        photo_format=str(sent["photo_format"]),
        dpi=original.dpi,
        size_mm=None,
    )


class CheckService(OperationService[Checker]):
    operation = Operation.CHECK

    async def check(
        self, data: bytes, caller: Caller | None = None, *, spec: Spec | None = None
    ) -> CheckOutcome:
        """Check a photo; with ``spec``, judge it against that document too.

        An office spec (``Medium.OFFICE``) raises ``SpecNotCheckable`` before any photo
        work, provider call or quota.
        """
        if spec is not None and spec.medium is Medium.OFFICE:
            raise SpecNotCheckable(spec)
        drawing = _CheckPicture(spec)

        async def prepare(provider: Checker) -> PreparedImage:
            image = await prepare_image_async(data, provider.limits_for)
            drawing.start(image)
            return image

        try:
            answered = await self._run(caller, prepare, lambda p, image: p.check(image), drawing)
        finally:
            await drawing.close()
        result, image, judgement = answered.result, answered.prepared, drawing.judgement
        log.info(
            "check: pass=%s reasons=%d spec=%s spec_pass=%s",
            result.passed,
            len(result.reasons),
            None if spec is None else spec.id,
            None if judgement is None else judgement.passed,
        )
        return CheckOutcome(result, image, drawing.picture, answered.fell_back_from, judgement)


def _seen(task: asyncio.Task[Image.Image]) -> None:
    if not task.cancelled():
        task.exception()


class _CheckPicture:
    """A check's answer judged against ``spec`` and drawn: ``Metering``'s ``then``.

    ``start`` decodes the photo to draw on while the provider works, so only the drawing
    waits for the answer; ``close`` drops a canvas no answer came for.
    """

    def __init__(self, spec: Spec | None) -> None:
        self.spec = spec
        self.judgement: Judgement | None = None
        self.picture = b""
        self._canvas: tuple[PreparedImage, asyncio.Task[Image.Image]] | None = None

    def start(self, image: PreparedImage) -> None:
        self._drop()
        task = asyncio.create_task(workers.run(open_canvas, image))
        task.add_done_callback(_seen)  # a canvas no answer came for may fail unheard
        self._canvas = (image, task)

    async def __call__(self, _provider: Checker, image: PreparedImage, result: CheckResult) -> None:
        if self.spec is not None:
            measured = as_sent(result.measurements, image.original)
            self.judgement = judge(self.spec, measured, estimated=result.estimated)
        started, self._canvas = self._canvas, None
        if started is not None and started[0] is image:
            canvas = await started[1]
        else:
            canvas = await workers.run(open_canvas, image)
        self.picture = await workers.run(paint_check, canvas, result, self.judgement)

    def _drop(self) -> None:
        if self._canvas is not None:
            self._canvas[1].cancel()
            self._canvas = None

    async def close(self) -> None:
        if self._canvas is not None:
            task = self._canvas[1]
            self._drop()
            await asyncio.gather(task, return_exceptions=True)


@dataclass(frozen=True, slots=True)
class CompareOutcome:
    """A compare's answer. ``verdict`` judges the best match allowing for how many faces
    were compared (``result.candidates``); ``images`` are the two photos, or the one photo
    whose two faces were compared (``result.one_photo``)."""

    result: CompareResult
    verdict: Verdict
    thresholds: CompareThresholds
    images: tuple[PreparedImage, ...]
    faces: tuple[Face | None, Face | None]  # the two faces compared
    picture: bytes  # the two faces side by side with the score
    fell_back_from: str | None = None


class CompareService(OperationService[Comparer]):
    operation = Operation.COMPARE

    @property
    def compares_within(self) -> bool:
        """Whether the configured provider can compare the two faces of one photo
        (``compare_within``); a fallback is for a provider that cannot answer, not for
        what it cannot do, so it does not count."""
        return isinstance(self.provider, PairComparer) and self.provider.available

    async def compare(
        self, first: bytes, second: bytes, caller: Caller | None = None
    ) -> CompareOutcome:
        async def prepare(provider: Comparer) -> tuple[PreparedImage, PreparedImage]:
            a, b = await asyncio.gather(
                _prepare_nth(first, provider, 1), _prepare_nth(second, provider, 2)
            )
            return a, b

        async def call(
            provider: Comparer, images: tuple[PreparedImage, PreparedImage]
        ) -> CompareResult:
            return await provider.compare(*images)

        drawn: list[bytes] = []

        async def draw(
            provider: Comparer, images: tuple[PreparedImage, PreparedImage], result: CompareResult
        ) -> None:
            a, b = images
            drawn.append(
                await compare_side_by_side_async(
                    Shown(a, result.faces_a, result.index_a),
                    Shown(b, result.faces_b, result.index_b),
                    result.score,
                    same=self._judged(result, provider.thresholds) is not Verdict.DIFFERENT,
                )
            )

        answered = await self._run(caller, prepare, call, draw)
        return self._outcome(answered, answered.prepared, drawn)

    async def compare_within(self, data: bytes, caller: Caller | None = None) -> CompareOutcome:
        """The two faces of one photo compared with each other (a selfie holding an ID card),
        metered and charged exactly as one compare of two photos.

        Raises ``NotAPair`` when the photo does not hold exactly two faces, or the provider
        cannot compare within one photo (``compares_within``): then nothing is charged and
        the photo is only the first of two.
        """
        if not self.compares_within:
            raise NotAPair(None)

        async def call(provider: Comparer, image: PreparedImage) -> CompareResult:
            if not isinstance(provider, PairComparer):
                raise NotAPair(None)
            return await provider.compare_within(image)

        drawn: list[bytes] = []

        async def draw(provider: Comparer, image: PreparedImage, result: CompareResult) -> None:
            drawn.append(
                await compare_one_photo_async(
                    image,
                    result.faces_a,
                    (result.index_a, result.index_b),
                    result.score,
                    same=self._judged(result, provider.thresholds) is not Verdict.DIFFERENT,
                )
            )

        answered = await self._run_one(data, caller, call, draw)
        return self._outcome(answered, (answered.prepared,), drawn)

    def _outcome(
        self,
        answered: Answered[Comparer, X, CompareResult],
        images: tuple[PreparedImage, ...],
        drawn: list[bytes],
    ) -> CompareOutcome:
        result, thresholds = answered.result, answered.provider.thresholds
        verdict = self._judged(result, thresholds)
        log.info(
            "compare: score=%.3f verdict=%s faces=%d/%d compared=%d/%d of %d%s",
            result.score,
            verdict.value,
            len(result.faces_a),
            len(result.faces_b),
            result.index_a + 1,
            result.index_b + 1,
            result.candidates,
            " (one photo)" if result.one_photo else "",
        )
        [picture] = drawn
        return CompareOutcome(
            result,
            verdict,
            thresholds,
            images,
            (result.face_a(), result.face_b()),
            picture,
            answered.fell_back_from,
        )

    @staticmethod
    def _judged(result: CompareResult, thresholds: CompareThresholds) -> Verdict:
        return thresholds.verdict(result.score, result.candidates)


async def _prepare_nth(data: bytes, provider: Provider, nth: int) -> PreparedImage:
    """Prepare one of several photos; a refusal says which photo it was."""
    try:
        return await prepare_image_async(data, provider.limits_for)
    except ImageError as error:
        error.values["photo"] = nth
        raise


@dataclass(frozen=True, slots=True)
class FacesOutcome:
    """What detect and analyze answer: the faces, numbered as on the picture."""

    result: FacesResult
    faces: tuple[Face, ...]  # largest first: the numbers on the picture
    image: PreparedImage
    picture: bytes
    fell_back_from: str | None = None


class _FacesPicture:
    """Detect's or analyze's faces, largest first, drawn: ``Metering``'s ``then``.

    ``prepare`` keeps the copy to draw on from the decode that prepared the photo, so
    the picture after the answer decodes nothing.
    """

    def __init__(self, data: bytes, *, draw_landmarks: bool) -> None:
        self.data = data
        self.draw_landmarks = draw_landmarks
        self.faces: tuple[Face, ...] = ()
        self.picture = b""
        self._canvas: tuple[PreparedImage, Image.Image] | None = None

    async def prepare(self, provider: Provider) -> PreparedImage:
        self._canvas = None
        image, canvas = await workers.run(
            prepare_with_canvas, self.data, provider.limits_for, FACES_SIDE
        )
        self._canvas = (image, canvas)
        return image

    async def __call__(
        self, _provider: Provider, image: PreparedImage, result: FacesResult
    ) -> None:
        self.faces = tuple(sorted(result.faces, key=lambda face: face.box.area, reverse=True))
        kept, self._canvas = self._canvas, None
        canvas = kept[1] if kept is not None and kept[0] is image else None
        self.picture = await annotate_faces_async(
            image, self.faces, draw_landmarks=self.draw_landmarks, canvas=canvas
        )

    def outcome(self, answered: Answered[P, PreparedImage, FacesResult]) -> FacesOutcome:
        return FacesOutcome(
            answered.result, self.faces, answered.prepared, self.picture, answered.fell_back_from
        )


class DetectService(OperationService[Detector]):
    operation = Operation.DETECT

    async def detect(
        self, data: bytes, *, attributes: bool = False, caller: Caller | None = None
    ) -> FacesOutcome:
        drawing = _FacesPicture(data, draw_landmarks=True)
        answered = await self._run(
            caller,
            drawing.prepare,
            lambda p, image: p.detect(image, max_faces=DETECT_MAX_FACES, attributes=attributes),
            drawing,
        )
        return drawing.outcome(answered)


class AnalyzeService(OperationService[Analyzer]):
    operation = Operation.ANALYZE

    async def analyze(self, data: bytes, caller: Caller | None = None) -> FacesOutcome:
        drawing = _FacesPicture(data, draw_landmarks=False)
        answered = await self._run(
            caller,
            drawing.prepare,
            lambda p, image: p.analyze(image, max_faces=ANALYZE_MAX_FACES),
            drawing,
        )
        return drawing.outcome(answered)


AnyService = CheckService | CompareService | DetectService | AnalyzeService
