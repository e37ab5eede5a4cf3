"""Typed results shared by every provider and by the bot's renderers.

Providers parse their JSON into these at the edge; nothing past a client sees a
provider's dict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from services.values import number


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
    extra: Mapping[str, Any] = field(default_factory=dict)

    def value(self, name: str) -> Any:
        return getattr(self, name, None)

    @classmethod
    def from_provider(cls, raw: Mapping[str, Any] | None) -> Measurements:
        """Parse a provider ``detect_result``; a malformed field becomes ``None``.

        One odd field must not cost the user the whole answer, so values are
        coerced one by one and unknown fields are kept in ``extra``.
        """
        if not isinstance(raw, Mapping):
            return cls()
        kwargs: dict[str, Any] = {}
        for name, unit in DETECT_FIELD_UNITS.items():
            if name not in raw:
                continue
            kwargs[name] = _coerce(name, unit, raw[name])
        extra = {k: v for k, v in raw.items() if k not in DETECT_FIELD_UNITS}
        return cls(**kwargs, extra=extra)


def _pair(value: Any) -> tuple[float, float] | None:
    if isinstance(value, list | tuple) and len(value) == 2:
        a, b = number(value[0]), number(value[1])
        if a is not None and b is not None:
            return (a, b)
    return None


def _coerce(name: str, unit: Unit, value: Any) -> Any:
    if name == "head_pose":
        if not isinstance(value, Mapping):
            return None
        yaw = number(value.get("yaw_angle", value.get("yaw")))
        pitch = number(value.get("pitch_angle", value.get("pitch")))
        roll = number(value.get("roll_angle", value.get("roll")))
        if yaw is None or pitch is None or roll is None:
            return None
        return HeadPose(yaw=yaw, pitch=pitch, roll=roll)
    if unit is Unit.RGB:
        if isinstance(value, list | tuple) and len(value) == 3:
            parts = [number(v) for v in value]
            if all(p is not None for p in parts):
                return tuple(round(min(255.0, max(0.0, p))) for p in parts)  # type: ignore[arg-type]
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
    provider: str
    charged: bool
    task_no: str | None = None
    # Rules this provider cannot judge (the local engine): listed so that
    # "not checked" never reads as "passed".
    not_checked: tuple[str, ...] = ()
