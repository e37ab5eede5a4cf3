"""jumdata (聚美智数) face detection, ``POST {JUMDATA_URL}/face/detect`` (人脸检测).

Same vendor, credentials and signature as the ID-photo check
(``services.providers.jumdata``), so its code table and ``error_for_code`` are reused:
detect documents 200, 201, 400, 404, 500, 601-610 and 999 with the check's meanings,
except 201 (图片中没有人脸, ``jumdata.detect_no_face``) and the photo-related 400,
whose limits differ from the check's (``jumdata.detect_bad_request``).

Image limits: PNG/JPG/BMP, at most 8 MB, "分辨率应小于1920*1080". The
resolution rule bounds the long side by 1920 *and* the short side by 1080, in either
orientation. ``ImageLimits`` has one ``max_side``, so ``detect_limits_for(width,
height)`` picks the ``max_side`` that makes ``prepare_image``'s proportional fit also
bring the short side to 1080; ``JumdataDetector.limits_for`` hands it to
``prepare_image``. ``DETECT_LIMITS_JUMDATA`` alone is right only for photos whose short
side is at most 1080.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from typing import Any, Final

from services.errors import CodeInfo, ProviderError, ProviderInputError
from services.i18n import N_
from services.images import ImageInfo, ImageLimits, PreparedImage
from services.models import (
    Emotion,
    Expression,
    Face,
    FaceQuality,
    FacesResult,
    Gender,
    Glasses,
)
from services.providers import answers
from services.providers.base import Detector
from services.providers.http import HttpReply
from services.providers.jumdata import CODES, JumdataClient, error_for_code, read_answer

__all__ = [
    "ATTRIBUTE_FIELDS",
    "BASE_FIELDS",
    "DETECT_LIMITS_JUMDATA",
    "DETECT_MAX_LONG_SIDE",
    "DETECT_MAX_SHORT_SIDE",
    "DETECT_PATH",
    "MAX_FACE_NUM",
    "JumdataDetector",
    "detect_error_for_code",
    "detect_limits_for",
    "face_fields",
    "parse_detect",
    "parse_detect_face",
]

log = logging.getLogger(__name__)

PROVIDER: Final = "jumdata"
DETECT_PATH: Final = "/face/detect"
DETECT_MAX_LONG_SIDE: Final = 1920
DETECT_MAX_SHORT_SIDE: Final = 1080
MAX_FACE_NUM: Final = 120
# The oldest age a face can be given; past it the answer is malformed.
MAX_AGE: Final = 150

DETECT_LIMITS_JUMDATA = ImageLimits(
    max_bytes=8 * 1024 * 1024,  # "不超过8MB": at most 8 MB
    max_side=DETECT_MAX_LONG_SIDE,
    min_side=48,
    formats=frozenset({"JPEG", "PNG", "BMP"}),
)
"""The documented limits for photos whose short side is at most 1080; see ``detect_limits_for``."""

BASE_FIELDS: Final = ("landmark", "quality")
"""Always asked for: landmarks and quality belong to a detection."""
ATTRIBUTE_FIELDS: Final = ("age", "gender", "expression", "glasses", "mask", "emotion")
"""Asked for only with ``attributes=True``."""

# The check's codes, with detect's own meanings of two of them.
DETECT_CODES: dict[int, CodeInfo] = {
    **CODES,
    201: CodeInfo(ProviderInputError, N_("jumdata.detect_no_face")),
    # Not a credential problem: the photo is outside detect's limits.
    400: CodeInfo(ProviderInputError, N_("jumdata.detect_bad_request")),
}


# ----------------------------------------------------------------------- limits


def detect_limits_for(width: int, height: int) -> ImageLimits:
    """The limits to prepare a ``width`` x ``height`` photo (as displayed) with.

    ``max_side`` = min(1920, floor(1080 * long / short)): scaling the long side to it
    brings the short side to at most 1080, and a photo that already fits is untouched.
    """
    if width <= 0 or height <= 0:
        raise ValueError("width and height must be positive")
    long_side, short_side = max(width, height), min(width, height)
    max_side = min(DETECT_MAX_LONG_SIDE, math.floor(DETECT_MAX_SHORT_SIDE * long_side / short_side))
    return dataclasses.replace(DETECT_LIMITS_JUMDATA, max_side=max_side)


# ----------------------------------------------------------------------- request


def face_fields(attributes: bool) -> str:
    """The ``faceField`` value: landmarks and quality, plus the attributes when asked."""
    return ",".join(BASE_FIELDS + (ATTRIBUTE_FIELDS if attributes else ()))


# ----------------------------------------------------------------------- answers


def _type_of(value: Any, field: str) -> str | None:
    """The ``type`` of a ``{"type": …, "probability": …}`` attribute, lower-cased."""
    raw = answers.mapping(value, field)
    kind = None if raw is None else answers.label(raw.get("type"), f"{field}.type")
    return None if kind is None else kind.strip().lower()


def _enum(enum: type, value: Any, field: str) -> Any:
    kind = _type_of(value, field)
    if kind is None:
        return None
    try:
        return enum(kind)
    except ValueError:
        log.info("%s: unknown %s %r", PROVIDER, field, kind)
        return None


def _mask(value: Any) -> bool | None:
    kind = _type_of(value, "mask")
    if kind in {"1", "true", "mask"}:
        return True
    if kind in {"0", "false", "none"}:
        return False
    return None


def _quality(value: Any) -> FaceQuality | None:
    """Blur, occlusion and completeness in [0, 1], illumination in [0, 255]."""
    raw = answers.mapping(value, "quality")
    if raw is None:
        return None
    occlusion_raw = answers.mapping(raw.get("occlusion"), "quality.occlusion") or {}
    occlusion: dict[str, float] = {}
    for part, share in occlusion_raw.items():
        covered = answers.bounded(share, f"quality.occlusion.{part}", 0, 1)
        if covered is not None:
            occlusion[part] = covered
    completeness = answers.bounded(raw.get("completeness"), "quality.completeness", 0, 1)
    return FaceQuality(
        blur=answers.bounded(raw.get("blur"), "quality.blur", 0, 1),
        illumination=answers.bounded(raw.get("illumination"), "quality.illumination", 0, 255),
        completeness=None if completeness is None else completeness >= 1,
        occlusion=occlusion,
    )


def parse_detect_face(raw: Mapping[str, Any]) -> Face:
    """One ``faceList`` entry; ``landmark72`` is preferred over the 4-point ``landmark``.

    Every field read has its documented type and range (seed 003), or this raises
    ``Unreadable`` (a ``ValueError``): ``location`` missing, a number of the wrong type, an
    angle past [-180, 180], a probability past [0, 1], a box or point far off the photo.
    """
    side = DETECT_MAX_LONG_SIDE
    landmarks = answers.points(raw.get("landmark72"), "landmark72", side) or answers.points(
        raw.get("landmark"), "landmark", side
    )
    return Face(
        box=answers.box(raw.get("location"), "location", side),
        probability=answers.bounded(raw.get("face_probability"), "face_probability", 0, 1),
        pose=answers.pose(raw.get("angle"), "angle"),
        landmarks=landmarks,
        quality=_quality(raw.get("quality")),
        age=answers.bounded(raw.get("age"), "age", 0, MAX_AGE),
        gender=_enum(Gender, raw.get("gender"), "gender"),
        emotion=_enum(Emotion, raw.get("emotion"), "emotion"),
        expression=_enum(Expression, raw.get("expression"), "expression"),
        glasses=_enum(Glasses, raw.get("glasses"), "glasses"),
        mask=_mask(raw.get("mask")),
    )


def detect_error_for_code(
    provider: str, code: int, msg: str | None, *, charged: bool, task_no: str | None
) -> ProviderError:
    """The check's ``error_for_code`` with detect's own 201 and photo-related 400."""
    return error_for_code(provider, code, msg, charged=charged, task_no=task_no, codes=DETECT_CODES)


def parse_detect(reply: HttpReply, *, provider: str = PROVIDER) -> FacesResult:
    """A ``/face/detect`` answer as a ``FacesResult``, or the matching ``ProviderError``."""
    answer = read_answer(provider, reply, codes=DETECT_CODES)
    data = answer.data
    if not isinstance(data, Mapping):
        raise answer.malformed()
    faces = []
    try:
        for index, raw in enumerate(answers.items(data.get("faceList"), "faceList", MAX_FACE_NUM)):
            faces.append(parse_detect_face(answers.entry(raw, f"faceList[{index}]")))
    except answers.Unreadable as error:
        log.warning("%s: unreadable answer: %s", provider, error)
        raise answer.malformed() from None
    return FacesResult(faces=tuple(faces), provider=provider, usage=answer.usage)


# ----------------------------------------------------------------------- client


class JumdataDetector(JumdataClient, Detector):
    """jumdata face detection, signed like the check."""

    path = DETECT_PATH
    limits: ImageLimits = DETECT_LIMITS_JUMDATA

    def limits_for(self, info: ImageInfo) -> ImageLimits:
        return detect_limits_for(info.width, info.height)

    async def detect(
        self, image: PreparedImage, *, max_faces: int = MAX_FACE_NUM, attributes: bool = False
    ) -> FacesResult:
        """``max_faces`` is clamped to [1, 120]; ``attributes`` adds age, gender,
        expression, glasses, mask and emotion to the landmarks and quality."""
        fields = {
            "faceField": face_fields(attributes),
            "maxFaceNum": str(min(max(1, int(max_faces)), MAX_FACE_NUM)),
        }
        return await self.call(
            "detect",
            lambda: self._request(image, **fields),
            lambda reply: parse_detect(reply, provider=self.name),
        )
