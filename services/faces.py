"""Typed results of the face operations: compare, detect and analyze.

Every provider (JD Cloud, jumdata, the local engine) parses its answer into these
at the edge. Coordinates are pixels of the image the provider was sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from services.i18n import N_
from services.models import HeadPose


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


@dataclass(frozen=True, slots=True)
class FaceQuality:
    blur: float | None = None  # 0 sharp .. 1 blurred
    illumination: float | None = None  # 0..255, higher is better lit
    completeness: bool | None = None  # False when the face runs off the image
    occlusion: Mapping[str, float] = field(default_factory=dict)  # part -> 0..1 covered


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
    """What the provider said about billing and its own remaining budget."""

    charged: bool
    remain: int | None = None  # JD: calls left today
    remain_times: int | None = None
    remain_seconds: int | None = None
    task_no: str | None = None


@dataclass(frozen=True, slots=True)
class CompareResult:
    score: float  # 0..1 similarity
    faces_a: tuple[Face, ...]
    faces_b: tuple[Face, ...]
    provider: str
    usage: Usage

    def face_a(self) -> Face | None:
        return largest(self.faces_a)

    def face_b(self) -> Face | None:
        return largest(self.faces_b)


@dataclass(frozen=True, slots=True)
class DetectResult:
    faces: tuple[Face, ...]
    provider: str
    usage: Usage


@dataclass(frozen=True, slots=True)
class AnalyzeResult:
    faces: tuple[Face, ...]
    provider: str
    usage: Usage


def largest(faces: tuple[Face, ...]) -> Face | None:
    return max(faces, key=lambda face: face.box.area, default=None)


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
    """

    probably_same: float = 0.49  # FAR 1e-4
    same_high: float = 0.54  # FAR 1e-5
    same_very_high: float = 0.58  # FAR 1e-6
    explain_id: str = N_("compare.explain")

    def verdict(self, score: float) -> Verdict:
        if score >= self.same_very_high:
            return Verdict.SAME_VERY_HIGH
        if score >= self.same_high:
            return Verdict.SAME_HIGH
        if score >= self.probably_same:
            return Verdict.PROBABLY_SAME
        return Verdict.DIFFERENT


JDCLOUD_THRESHOLDS = CompareThresholds()
