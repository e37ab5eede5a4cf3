"""Typed results shared by every provider and by the bot's renderers: check, compare,
detect and analyze.

Providers parse their JSON into these at the edge; nothing past a client sees a
provider's dict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from services.i18n import N_
from services.values import number

if TYPE_CHECKING:
    from services.rules import RuleOutcome


class Operation(StrEnum):
    """One name per operation, in code, config, quotas and logs."""

    CHECK = "check"
    COMPARE = "compare"
    DETECT = "detect"
    ANALYZE = "analyze"


class Unit(StrEnum):
    RATIO = "ratio"  # 0..1 share of the image width or height
    SCORE = "score"  # 0..100, higher is better
    PIXELS = "px"
    BYTES = "bytes"
    MILLIMETRES = "mm"
    DPI = "dpi"
    DEGREES = "deg"
    RGB = "rgb"
    COUNT = "count"
    FLAG = "flag"
    TEXT = "text"


# Every documented ``detect_result`` field of the jumdata ID-photo check and its unit.
DETECT_FIELD_UNITS: dict[str, Unit] = {
    "color_channels": Unit.COUNT,
    "face_num": Unit.COUNT,
    "face_x_occupy": Unit.RATIO,
    "face_x_center": Unit.RATIO,
    "eyes_y_center": Unit.RATIO,
    "head_top": Unit.RATIO,
    "head_chin_y": Unit.RATIO,
    "head_left": Unit.RATIO,
    "head_right": Unit.RATIO,
    "nose_tip": Unit.RATIO,
    "eyes_spacing": Unit.RATIO,
    "size_pix": Unit.PIXELS,
    "size_mm": Unit.MILLIMETRES,
    "dpi": Unit.DPI,
    "file_size": Unit.BYTES,
    "photo_format": Unit.TEXT,
    "is_transparent_background": Unit.FLAG,
    "glasses": Unit.TEXT,
    "head_pose": Unit.DEGREES,
    "face_blur": Unit.SCORE,
    "face_unbalance": Unit.SCORE,
    "face_darkillum": Unit.SCORE,
    "face_occlusion": Unit.SCORE,
    "nose_occlusion": Unit.SCORE,
    "mouth_occlusion": Unit.SCORE,
    "eyes_occlusion": Unit.SCORE,
    "shoulder_equal": Unit.SCORE,
    "eyes_close": Unit.SCORE,
    "mouth_close": Unit.SCORE,
    "eyes_sight": Unit.SCORE,
    "has_hat": Unit.FLAG,
    "mouthmask": Unit.FLAG,
    "background_color": Unit.RGB,
    "background_clean": Unit.SCORE,
    "background_gradual": Unit.SCORE,
    "bf_similarity": Unit.SCORE,
}


@dataclass(frozen=True, slots=True)
class HeadPose:
    yaw: float
    pitch: float
    roll: float

    @classmethod
    def read(cls, raw: Any) -> HeadPose | None:
        """Angles in degrees from ``{"yaw": …, "pitch": …, "roll": …}`` (jumdata's check
        names them ``yaw_angle`` and so on); ``None`` unless all three are numbers."""
        if not isinstance(raw, Mapping):
            return None
        yaw, pitch, roll = (
            number(raw.get(f"{name}_angle", raw.get(name))) for name in ("yaw", "pitch", "roll")
        )
        if yaw is None or pitch is None or roll is None:
            return None
        return cls(yaw=yaw, pitch=pitch, roll=roll)


@dataclass(frozen=True, slots=True)
class Measurements:
    """The ``detect_result`` of an ID-photo check; ``None`` means not measured."""

    color_channels: int | None = None
    face_num: int | None = None
    face_x_occupy: float | None = None
    face_x_center: float | None = None
    eyes_y_center: float | None = None
    head_top: float | None = None
    head_chin_y: float | None = None
    head_left: float | None = None
    head_right: float | None = None
    nose_tip: tuple[float, float] | None = None
    eyes_spacing: float | None = None
    size_pix: tuple[int, int] | None = None
    size_mm: tuple[float, float] | None = None
    dpi: tuple[float, float] | None = None
    file_size: int | None = None
    photo_format: str | None = None
    is_transparent_background: bool | None = None
    glasses: str | None = None
    head_pose: HeadPose | None = None
    face_blur: float | None = None
    face_unbalance: float | None = None
    face_darkillum: float | None = None
    face_occlusion: float | None = None
    nose_occlusion: float | None = None
    mouth_occlusion: float | None = None
    eyes_occlusion: float | None = None
    shoulder_equal: float | None = None
    eyes_close: float | None = None
    mouth_close: float | None = None
    eyes_sight: float | None = None
    has_hat: bool | None = None
    mouthmask: bool | None = None
    background_color: tuple[int, int, int] | None = None
    background_clean: float | None = None
    background_gradual: float | None = None
    bf_similarity: float | None = None

    def value(self, name: str) -> Any:
        return getattr(self, name, None)

    @classmethod
    def from_provider(cls, raw: Mapping[str, Any] | None) -> Measurements:
        """Parse a provider ``detect_result``; a malformed field becomes ``None``.

        One odd field must not cost the user the whole answer, so values are
        coerced one by one; fields the check does not document are left out.
        """
        if not isinstance(raw, Mapping):
            return cls()
        kwargs: dict[str, Any] = {}
        for name, unit in DETECT_FIELD_UNITS.items():
            if name not in raw:
                continue
            kwargs[name] = _coerce(name, unit, raw[name])
        return cls(**kwargs)


def _pair(value: Any) -> tuple[float, float] | None:
    if isinstance(value, list | tuple) and len(value) == 2:
        a, b = number(value[0]), number(value[1])
        if a is not None and b is not None:
            return (a, b)
    return None


def _coerce(name: str, unit: Unit, value: Any) -> Any:
    if name == "head_pose":
        return HeadPose.read(value)
    if unit is Unit.RGB:
        if isinstance(value, list | tuple) and len(value) == 3:
            parts = [number(v) for v in value]
            channels = [p for p in parts if p is not None]
            if len(channels) == 3:
                return tuple(round(min(255.0, max(0.0, p))) for p in channels)
        return None
    if unit in (Unit.PIXELS,):
        pair = _pair(value)
        return (int(pair[0]), int(pair[1])) if pair else None
    if unit in (Unit.MILLIMETRES, Unit.DPI) or name == "nose_tip":
        return _pair(value)
    if unit is Unit.TEXT:
        return str(value) if isinstance(value, str | int | float) else None
    if unit is Unit.FLAG:
        if isinstance(value, bool):
            return value
        amount = number(value)
        if amount is not None:
            return amount != 0
        if isinstance(value, str) and value.lower() in {"true", "false"}:
            return value.lower() == "true"
        return None
    amount = number(value)
    if amount is None:
        return None
    if unit in (Unit.COUNT, Unit.BYTES):
        return int(amount)
    return amount


@dataclass(frozen=True, slots=True)
class Reason:
    """One failed rule. ``message_id`` is ``None`` when the catalogue does not know the text."""

    text: str
    message_id: str | None
    rule_field: str | None = None


@dataclass(frozen=True, slots=True)
class CheckResult:
    passed: bool
    reasons: tuple[Reason, ...]
    measurements: Measurements
    # Every rule applied to the measured values, by field; computed once, where the
    # result is made, and read by the picture and the reply.
    outcomes: Mapping[str, RuleOutcome]
    provider: str
    usage: Usage
    # Rules this provider cannot judge (the local engine): listed so that
    # "not checked" never reads as "passed".
    not_checked: tuple[str, ...] = ()
    # Fields measured by a method not proven enough to fail a photo on (the local
    # engine's glasses): what they find is a warning, and the reply says "estimate".
    estimated: tuple[str, ...] = ()


# --- faces: compare, detect, analyze ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Box:
    left: float
    top: float
    width: float
    height: float

    @property
    def right(self) -> float:
        return self.left + self.width

    @property
    def bottom(self) -> float:
        return self.top + self.height

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    @classmethod
    def read(cls, raw: Any) -> Box:
        """A face box from ``{"left", "top", "width", "height"}``; ``ValueError`` when any
        of them is missing or not a number, since a face without a box cannot be shown."""
        if not isinstance(raw, Mapping):
            raise ValueError("face without a box")
        left, top, width, height = (
            number(raw.get(name)) for name in ("left", "top", "width", "height")
        )
        if left is None or top is None or width is None or height is None:
            raise ValueError(f"box not numeric: {raw!r}")
        return cls(left=left, top=top, width=width, height=height)


@dataclass(frozen=True, slots=True)
class Point:
    x: float
    y: float


class Gender(StrEnum):
    MALE = "male"
    FEMALE = "female"


class Glasses(StrEnum):
    NONE = "none"
    COMMON = "common"
    SUN = "sun"


class Expression(StrEnum):
    NONE = "none"
    SMILE = "smile"
    LAUGH = "laugh"


class Emotion(StrEnum):
    """The union of JD's five emotions and jumdata's emotion field."""

    ANGRY = "angry"
    DISGUST = "disgust"
    FEAR = "fear"
    HAPPY = "happy"
    SAD = "sad"
    SURPRISE = "surprise"
    NEUTRAL = "neutral"
    POUTY = "pouty"
    GRIMACE = "grimace"


class Race(StrEnum):
    """Only shown when the operator opts in: a photo cannot tell it fairly."""

    WHITE = "white"
    BLACK = "black"
    ASIAN = "asian"
    ARABS = "arabs"
    INDIAN = "indian"


# jumdata's quality guidance (the Baidu face API it resells): above these a part counts
# as covered, and a blur above 0.7 or light under 40 makes a face unusable for matching.
OCCLUSION_LIMIT = 0.6
BLUR_LIMIT = 0.7
DARK_LIMIT = 40
# A check's eyes_sight under this: the eyes look away from the lens. No provider rule
# judges it (the jumdata check reports it with no bound), so it is a note, not a reason.
GAZE_LIMIT = 50


@dataclass(frozen=True, slots=True)
class FaceQuality:
    blur: float | None = None  # 0 sharp .. 1 blurred
    illumination: float | None = None  # 0..255, higher is better lit
    completeness: bool | None = None  # False when the face runs off the image
    occlusion: Mapping[str, float] = field(default_factory=dict)  # part -> 0..1 covered

    @property
    def blurry(self) -> bool | None:
        return None if self.blur is None else self.blur > BLUR_LIMIT

    @property
    def dark(self) -> bool | None:
        return None if self.illumination is None else self.illumination < DARK_LIMIT

    @property
    def covered(self) -> tuple[str, ...]:
        """The parts covered beyond the guidance, in the provider's order."""
        return tuple(part for part, share in self.occlusion.items() if share > OCCLUSION_LIMIT)


@dataclass(frozen=True, slots=True)
class Face:
    box: Box
    probability: float | None = None
    pose: HeadPose | None = None
    valid_pose: bool | None = None
    landmarks: tuple[Point, ...] = ()
    quality: FaceQuality | None = None
    sharpness: float | None = None  # JD blurScore: higher is sharper
    age: float | None = None
    gender: Gender | None = None
    emotion: Emotion | None = None
    expression: Expression | None = None
    smile: float | None = None  # 0..100
    glasses: Glasses | None = None
    mask: bool | None = None
    beard: bool | None = None
    race: Race | None = None
    beauty: float | None = None  # 0..100


@dataclass(frozen=True, slots=True)
class Usage:
    """What the provider said about billing and its own remaining budget.

    ``charged``: the provider said it charged. ``unknown``: the request was sent and no
    answer we can read came back (a read timeout, a dropped connection, an answer over the
    size cap, a body that is not the vendor's JSON at 200 or at a 5xx other than 502/503),
    so the provider may have charged without saying so.
    """

    charged: bool
    remain: int | None = None  # JD: calls left today
    remain_times: int | None = None
    remain_seconds: int | None = None
    task_no: str | None = None
    unknown: bool = False


# ``CompareResult.index_a``/``index_b`` left unset: the provider compares one face per
# photo without saying which, and that is taken to be the largest (JD's faceCompareV1).
LARGEST_FACE = -1


@dataclass(frozen=True, slots=True)
class CompareResult:
    """A compare's answer: the similarity of the compared pair and every face of both photos.

    ``index_a`` and ``index_b`` are the positions in ``faces_a`` and ``faces_b`` of the
    two faces compared. ``candidates`` is how many faces of photo 2 face ``index_a`` was
    compared with (one source face against many, as AWS CompareFaces does): ``index_b``
    is the best match among them and ``score`` its similarity; a verdict must allow for
    the chance of a false match growing with it (``CompareThresholds.verdict``).
    A 1:1 cloud API compares one face per photo and does not say which: its indices left
    at ``LARGEST_FACE`` become those of the largest faces, the face those APIs take.
    ``one_photo``: the two faces are both of one photo (``faces_a`` is ``faces_b``), as in
    a selfie with an ID card held next to the face.
    """

    score: float  # 0..1 similarity
    faces_a: tuple[Face, ...]
    faces_b: tuple[Face, ...]
    provider: str
    usage: Usage
    index_a: int = LARGEST_FACE
    index_b: int = LARGEST_FACE
    candidates: int = 1
    one_photo: bool = False

    def __post_init__(self) -> None:
        for name, faces in (("index_a", self.faces_a), ("index_b", self.faces_b)):
            index = getattr(self, name)
            if index == LARGEST_FACE:
                object.__setattr__(self, name, largest_index(faces))
            elif not 0 <= index < max(1, len(faces)):
                raise ValueError(f"{name}={index} is not one of {len(faces)} faces")
        if self.candidates < 1:
            raise ValueError("candidates must be at least 1")

    def face_a(self) -> Face | None:
        """The face of photo 1 that was compared."""
        return self.faces_a[self.index_a] if self.index_a < len(self.faces_a) else None

    def face_b(self) -> Face | None:
        """The face of photo 2 that was compared: the best match of the candidates."""
        return self.faces_b[self.index_b] if self.index_b < len(self.faces_b) else None


@dataclass(frozen=True, slots=True)
class FacesResult:
    """The faces of one photo: what detect and analyze both answer."""

    faces: tuple[Face, ...]
    provider: str
    usage: Usage
    # False when age, gender and emotion are not estimated at all (the local engine), so
    # that a reply can say so instead of leaving them out silently.
    demographics: bool = True


def largest(faces: tuple[Face, ...]) -> Face | None:
    return max(faces, key=lambda face: face.box.area, default=None)


def largest_index(faces: tuple[Face, ...]) -> int:
    """The position of the largest face (the first of equals); 0 when there is none."""
    return max(range(len(faces)), key=lambda i: faces[i].box.area, default=0)


class Verdict(StrEnum):
    SAME_VERY_HIGH = "same_very_high"
    SAME_HIGH = "same_high"
    PROBABLY_SAME = "probably_same"
    DIFFERENT = "different"


VERDICT_MESSAGES = {
    Verdict.SAME_VERY_HIGH: N_("compare.verdict.same_very_high"),
    Verdict.SAME_HIGH: N_("compare.verdict.same_high"),
    Verdict.PROBABLY_SAME: N_("compare.verdict.probably_same"),
    Verdict.DIFFERENT: N_("compare.verdict.different"),
}


@dataclass(frozen=True, slots=True)
class CompareThresholds:
    """Score bounds of the verdicts, and the message that explains them to users.

    JD documents its bounds by false-accept rate; the local engine has its own.

    A bound holds for one comparison. When one face was compared with ``n`` faces and
    the best match is judged, a stranger among them matches by chance up to ``n`` times
    as often; to keep each verdict's false-match rate, each comparison's must be ``n``
    times smaller (Bonferroni). Near the bounds the false-match rate falls by a roughly
    constant factor per step of score, so that is a fixed rise of every bound per
    doubling of ``n``: ``per_doubling * log2(n)``. JD's bounds are a tenfold rate apart
    per 0.04-0.05 (1e-4 at 0.49, 1e-5 at 0.54, 1e-6 at 0.58): halving the rate takes
    0.05 * log10(2) = 0.015, the default. The local engine has its own step.
    """

    probably_same: float = 0.49  # FAR 1e-4
    same_high: float = 0.54  # FAR 1e-5
    same_very_high: float = 0.58  # FAR 1e-6
    explain_id: str = N_("compare.explain")
    per_doubling: float = 0.015  # bound rise per doubling of the faces compared

    def correction(self, candidates: int = 1) -> float:
        """How much every bound rises when the best of ``candidates`` comparisons is judged."""
        if candidates <= 1:
            return 0.0
        return self.per_doubling * math.log2(candidates)

    def bounds(self, candidates: int = 1) -> tuple[float, float, float]:
        """The probably-same, high and very-high bounds for the best of ``candidates``."""
        rise = self.correction(candidates)
        return (
            self.probably_same + rise,
            self.same_high + rise,
            self.same_very_high + rise,
        )

    def verdict(self, score: float, candidates: int = 1) -> Verdict:
        """The verdict on ``score``, the best of ``candidates`` comparisons (1: a 1:1 compare)."""
        probably, high, very_high = self.bounds(candidates)
        if score >= very_high:
            return Verdict.SAME_VERY_HIGH
        if score >= high:
            return Verdict.SAME_HIGH
        if score >= probably:
            return Verdict.PROBABLY_SAME
        return Verdict.DIFFERENT


JDCLOUD_THRESHOLDS = CompareThresholds()
