"""jumdata (聚美智数) face detection, ``POST {JUMDATA_URL}/face/detect`` (seed 003).

Same vendor, credentials and signature as the ID-photo check
(``services.providers.jumdata``), so its code table and ``error_for_code`` are reused:
detect documents 200, 201, 400, 404, 500, 601-610 and 999 with the check's meanings,
except 201 (图片中没有人脸, ``jumdata.detect_no_face``) and the photo-related 400,
whose limits differ from the check's (``jumdata.detect_bad_request``).

Image limits (seed 003): PNG/JPG/BMP, at most 8 MB, "分辨率应小于1920*1080". The
resolution rule bounds the long side by 1920 *and* the short side by 1080, in either
orientation. ``ImageLimits`` has one ``max_side``, so ``detect_limits_for(width,
height)`` picks the ``max_side`` that makes ``prepare_image``'s proportional fit also
bring the short side to 1080: inspect the photo, then prepare it with
``detect_limits_for(info.width, info.height)``. ``DETECT_LIMITS_JUMDATA`` alone is
right only for photos whose short side is at most 1080 (``fit_detect_box``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from typing import Any, Final

import aiohttp

from services.errors import ProviderError, ProviderInputError, ProviderUnavailableError
from services.faces import (
    Box,
    DetectResult,
    Emotion,
    Expression,
    Face,
    FaceQuality,
    Gender,
    Glasses,
    Point,
    Usage,
)
from services.i18n import N_
from services.images import ImageLimits, PreparedImage
from services.models import HeadPose
from services.providers.base import HttpReply, with_retries
from services.providers.jumdata import CODES, JumdataClient, error_for_code
from services.signing import jumdata_sign
from services.values import integer, number

__all__ = [
    "ATTRIBUTE_FIELDS",
    "BASE_FIELDS",
    "DETECT_LIMITS_JUMDATA",
    "DETECT_MAX_LONG_SIDE",
    "DETECT_MAX_SHORT_SIDE",
    "DETECT_PATH",
    "MAX_FACE_NUM",
    "JumdataDetector",
    "build_detect_form",
    "detect_error_for_code",
    "detect_limits_for",
    "face_fields",
    "fit_detect_box",
    "parse_detect",
    "parse_detect_face",
]

log = logging.getLogger(__name__)

PROVIDER: Final = "jumdata"
DETECT_PATH: Final = "/face/detect"
DETECT_MAX_LONG_SIDE: Final = 1920
DETECT_MAX_SHORT_SIDE: Final = 1080
MAX_FACE_NUM: Final = 120

DETECT_LIMITS_JUMDATA = ImageLimits(
    max_bytes=8 * 1024 * 1024 - 1,
    max_side=DETECT_MAX_LONG_SIDE,
    min_side=48,
    formats=frozenset({"JPEG", "PNG", "BMP"}),
)
"""Seed 003 for photos whose short side is at most 1080; see ``detect_limits_for``."""

BASE_FIELDS: Final = ("landmark", "quality")
"""Always asked for: landmarks and quality belong to a detection."""
ATTRIBUTE_FIELDS: Final = ("age", "gender", "expression", "glasses", "mask", "emotion")
"""Asked for only with ``attributes=True``."""

_NO_FACE_CODE: Final = 201
_BAD_REQUEST_CODE: Final = 400
_DETECT_NO_FACE = N_("jumdata.detect_no_face")
_DETECT_BAD_REQUEST = N_("jumdata.detect_bad_request")
_MALFORMED = N_("provider.malformed")

"""Detect's own message ids with their English sentences; shared codes use the check's."""


# ----------------------------------------------------------------------- limits


def fit_detect_box(width: int, height: int) -> bool:
    """True when a ``width`` x ``height`` photo fits 1920x1080 in either orientation."""
    long_side, short_side = max(width, height), min(width, height)
    return long_side <= DETECT_MAX_LONG_SIDE and short_side <= DETECT_MAX_SHORT_SIDE


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


def build_detect_form(
    image: PreparedImage,
    app_id: str,
    app_secret: str,
    timestamp_ms: int,
    *,
    max_faces: int = MAX_FACE_NUM,
    attributes: bool = False,
) -> aiohttp.FormData:
    """Multipart form: signed credentials, ``file``, ``faceField`` and ``maxFaceNum``."""
    form = aiohttp.FormData()
    form.add_field("appId", app_id)
    form.add_field("timestamp", str(timestamp_ms))
    form.add_field("sign", jumdata_sign(app_id, app_secret, timestamp_ms))
    form.add_field("file", image.data, filename=image.file_name, content_type=image.mime_type)
    form.add_field("faceField", face_fields(attributes))
    form.add_field("maxFaceNum", str(min(max(1, int(max_faces)), MAX_FACE_NUM)))
    return form


# ----------------------------------------------------------------------- answers


def _type_of(value: Any) -> str | None:
    """The ``type`` of a ``{"type": …, "probability": …}`` attribute, lower-cased."""
    if isinstance(value, Mapping):
        kind = value.get("type")
        if isinstance(kind, str | int) and not isinstance(kind, bool):
            return str(kind).strip().lower()
    return None


def _enum(enum: type, value: Any, field: str) -> Any:
    kind = _type_of(value)
    if kind is None:
        return None
    try:
        return enum(kind)
    except ValueError:
        log.info("%s: unknown %s %r", PROVIDER, field, kind)
        return None


def _mask(value: Any) -> bool | None:
    kind = _type_of(value)
    if kind in {"1", "true", "mask"}:
        return True
    if kind in {"0", "false", "none"}:
        return False
    return None


def _points(raw: Any) -> tuple[Point, ...]:
    if not isinstance(raw, list):
        return ()
    points = []
    for entry in raw:
        if isinstance(entry, Mapping):
            x, y = number(entry.get("x")), number(entry.get("y"))
            if x is not None and y is not None:
                points.append(Point(x, y))
    return tuple(points)


def _quality(raw: Any) -> FaceQuality | None:
    if not isinstance(raw, Mapping):
        return None
    occlusion_raw = raw.get("occlusion")
    occlusion: dict[str, float] = {}
    if isinstance(occlusion_raw, Mapping):
        for part, value in occlusion_raw.items():
            covered = number(value)
            if covered is not None:
                occlusion[str(part)] = covered
    completeness = number(raw.get("completeness"))
    return FaceQuality(
        blur=number(raw.get("blur")),
        illumination=number(raw.get("illumination")),
        completeness=None if completeness is None else completeness >= 1,
        occlusion=occlusion,
    )


def parse_detect_face(raw: Mapping[str, Any]) -> Face:
    """One ``faceList`` entry; ``landmark72`` is preferred over the 4-point ``landmark``.

    Raises ``ValueError`` when ``location`` is missing or not numeric.
    """
    location = raw.get("location")
    if not isinstance(location, Mapping):
        raise ValueError("face without location")
    sides = [number(location.get(name)) for name in ("left", "top", "width", "height")]
    if any(value is None for value in sides):
        raise ValueError(f"location not numeric: {location!r}")
    left, top, width, height = (float(value) for value in sides)  # type: ignore[arg-type]

    pose = None
    angle = raw.get("angle")
    if isinstance(angle, Mapping):
        angles = [number(angle.get(name)) for name in ("yaw", "pitch", "roll")]
        if all(value is not None for value in angles):
            yaw, pitch, roll = (float(value) for value in angles)  # type: ignore[arg-type]
            pose = HeadPose(yaw=yaw, pitch=pitch, roll=roll)

    landmarks = _points(raw.get("landmark72")) or _points(raw.get("landmark"))
    return Face(
        box=Box(left=left, top=top, width=width, height=height),
        probability=number(raw.get("face_probability")),
        pose=pose,
        landmarks=landmarks,
        quality=_quality(raw.get("quality")),
        age=number(raw.get("age")),
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
    if code == _NO_FACE_CODE:
        return ProviderInputError(
            provider,
            code=code,
            provider_msg=msg,
            message_id=_DETECT_NO_FACE,
            charged=charged,
            task_no=task_no,
        )
    error = error_for_code(provider, code, msg, charged=charged, task_no=task_no)
    if code == _BAD_REQUEST_CODE and error.message_id == CODES[_BAD_REQUEST_CODE].message_id:
        error.message_id = _DETECT_BAD_REQUEST  # not a credential problem: the photo's limits
    return error


def parse_detect(reply: HttpReply, *, provider: str = PROVIDER) -> DetectResult:
    """A ``/face/detect`` answer as a ``DetectResult``, or the matching ``ProviderError``."""
    body = reply.json()
    if not isinstance(body, Mapping):
        raise ProviderUnavailableError(
            provider,
            code=f"http_{reply.status}" if reply.status != 200 else "malformed",
            message_id=_MALFORMED if reply.status == 200 else None,
            retry_safe=reply.status in (502, 503, 504),
        )
    code = integer(body.get("code"))
    msg = body.get("msg") if isinstance(body.get("msg"), str) else None
    task_no = str(body["taskNo"]) if body.get("taskNo") is not None else None
    usage = Usage(charged=body.get("charge") is True, task_no=task_no)

    def malformed() -> ProviderUnavailableError:
        return ProviderUnavailableError(
            provider,
            code="malformed",
            provider_msg=msg,
            message_id=_MALFORMED,
            charged=usage.charged,
            task_no=task_no,
        )

    if code is None:
        raise malformed()
    if code != 200:
        log.info("%s detect answered code %s: %s (task %s)", provider, code, msg, task_no)
        raise detect_error_for_code(provider, code, msg, charged=usage.charged, task_no=task_no)
    data = body.get("data")
    if not isinstance(data, Mapping):
        raise malformed()
    face_list = data.get("faceList")
    if face_list is None:
        face_list = []
    if not isinstance(face_list, list):
        raise malformed()
    faces = []
    for index, raw in enumerate(face_list):
        try:
            if not isinstance(raw, Mapping):
                raise ValueError("not an object")
            faces.append(parse_detect_face(raw))
        except ValueError as error:
            log.warning("%s: unreadable faceList[%d]: %s", provider, index, error)
            raise malformed() from None
    return DetectResult(faces=tuple(faces), provider=provider, usage=usage)


# ----------------------------------------------------------------------- client


class JumdataDetector(JumdataClient):
    """jumdata face detection with the check's retry policy (a fresh signature per attempt)."""

    path = DETECT_PATH
    limits: ImageLimits = DETECT_LIMITS_JUMDATA

    def limits_for(self, width: int, height: int) -> ImageLimits:
        """``detect_limits_for``: the limits for a photo of this size."""
        return detect_limits_for(width, height)

    async def detect(
        self, image: PreparedImage, *, max_faces: int = MAX_FACE_NUM, attributes: bool = False
    ) -> DetectResult:
        """``max_faces`` is clamped to [1, 120]; ``attributes`` adds age, gender,
        expression, glasses, mask and emotion to the landmarks and quality."""

        async def attempt() -> DetectResult:
            form = build_detect_form(
                image,
                self._app_id,
                self._app_secret,
                self._timestamp_ms(),
                max_faces=max_faces,
                attributes=attributes,
            )
            reply = await self._http.post(self._url, data=form)
            return parse_detect(reply, provider=self.name)

        return await with_retries(self.name, "detect", attempt)
