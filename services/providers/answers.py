"""Reading an untrusted provider answer: the decoding and the typed field readers every
vendor module shares.

``read_object`` decodes a body so that nothing in it can raise later: a number no float
holds (NaN, Infinity, 1e400, a 400-digit integer) becomes NaN, which no reader takes; -0
becomes 0; a key given twice keeps every value in a ``Conflict``; a body nested past the
interpreter's depth, or not UTF-8, is not JSON. The readers then take a field only with
its documented type and range and raise ``Unreadable`` for anything else, which the
vendor's parser turns into its MALFORMED error with the usage the envelope declared.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from services.models import Box, HeadPose, Point
from services.providers.http import HttpFaults, HttpReply, status_error
from services.values import flag, number

# A longer integer is beyond float range: ``float(int)`` would overflow.
MAX_INT_DIGITS: Final = 300
# Provider text kept for logs and errors: a message, a task number, an enum label.
MAX_TEXT: Final = 200
# ``usage.remain`` and the like end up in an INTEGER column: a count past it is not believed.
MAX_COUNT: Final = 2**31 - 1


class Unreadable(ValueError):
    """A field of the wrong type or outside its documented range. The message names the
    field and the type found, never the value."""


@dataclass(frozen=True, slots=True)
class Conflict:
    """The values of a key an object gives more than once: no reader takes it as a value."""

    values: tuple[Any, ...]


def _number(text: str) -> float:
    value = float(text)
    return value + 0.0 if math.isfinite(value) else math.nan


def _integer(text: str) -> int | float:
    return int(text) if len(text.lstrip("-")) <= MAX_INT_DIGITS else math.nan


def _constant(_: str) -> float:
    return math.nan


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key not in result:
            result[key] = value
        else:
            earlier = result[key]
            before = earlier.values if isinstance(earlier, Conflict) else (earlier,)
            result[key] = Conflict((*before, value))
    return result


def decode(body: bytes) -> Any:
    """The JSON value of a UTF-8 body (a BOM allowed), or ``None`` when it is not JSON."""
    try:
        return json.loads(
            body.decode("utf-8-sig"),
            parse_float=_number,
            parse_int=_integer,
            parse_constant=_constant,
            object_pairs_hook=_object,
        )
    except (ValueError, RecursionError):
        return None


def read_object(provider: str, reply: HttpReply, faults: HttpFaults) -> Mapping[str, Any]:
    """The answer's JSON object; for anything else the error its HTTP status calls for
    (``status_error``: at 200 malformed, of unknown outcome)."""
    body = decode(reply.body)
    if isinstance(body, Mapping):
        return body
    raise status_error(provider, reply.status, faults)


def said_charged(value: Any) -> bool:
    """``charge`` is true, or one of the values of a ``charge`` given twice is: the
    provider may have billed, so the charge is kept."""
    if isinstance(value, Conflict):
        return any(part is True for part in value.values)
    return value is True


def short_text(value: Any) -> str | None:
    """A provider's string for logs and errors, cut to ``MAX_TEXT``; anything else is None."""
    return value[:MAX_TEXT] if isinstance(value, str) else None


def count(value: Any) -> int | None:
    """A provider's remaining-calls count; one that is not a whole number a budget can
    hold is unknown (None), not an error: it is about the account, not this answer."""
    read = number(value)
    if read is None or not read.is_integer() or not -MAX_COUNT <= read <= MAX_COUNT:
        return None
    return int(read)


# ----------------------------------------------------------------------- fields


def mapping(value: Any, field: str) -> Mapping[str, Any] | None:
    """An object, or None when absent."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise Unreadable(f"{field}: {type(value).__name__}, not an object")
    return value


def entry(value: Any, field: str) -> Mapping[str, Any]:
    """An object that must be there: a face, its box."""
    raw = mapping(value, field)
    if raw is None:
        raise Unreadable(f"{field}: missing")
    return raw


def items(value: Any, field: str, most: int | None = None) -> list[Any]:
    """A list of at most ``most`` entries; absent is empty."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise Unreadable(f"{field}: {type(value).__name__}, not a list")
    if most is not None and len(value) > most:
        raise Unreadable(f"{field}: {len(value)} entries, more than {most}")
    return value


def bounded(value: Any, field: str, low: float, high: float) -> float | None:
    """A number (or numeric string) in [low, high], or None when absent."""
    if value is None:
        return None
    read = number(value)
    if read is None:
        raise Unreadable(f"{field}: {type(value).__name__}, not a number")
    if not low <= read <= high:
        raise Unreadable(f"{field}: outside [{low}, {high}]")
    return read


def switch(value: Any, field: str) -> bool | None:
    """A flag (``true``/``"true"``), or None when absent."""
    if value is None:
        return None
    read = flag(value)
    if read is None:
        raise Unreadable(f"{field}: {type(value).__name__}, not a flag")
    return read


def label(value: Any, field: str) -> str | None:
    """A string (or a number standing for one, as jumdata's mask ``type`` 0/1), or None."""
    if value is None:
        return None
    if isinstance(value, str):
        return value[:MAX_TEXT]
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise Unreadable(f"{field}: {type(value).__name__}, not a label")


def box(value: Any, field: str, side: int) -> Box:
    """A face box within [-side, 2·side] on both axes, width and height not negative.

    ``side`` is the longest side of the photos the vendor takes: a box far outside any of
    them (1e300) is nonsense, and must not reach the drawing of the picture.
    """
    raw = entry(value, field)
    left, top = (bounded(raw.get(k), f"{field}.{k}", -side, 2 * side) for k in ("left", "top"))
    width, height = (bounded(raw.get(k), f"{field}.{k}", 0, 3 * side) for k in ("width", "height"))
    if left is None or top is None or width is None or height is None:
        raise Unreadable(f"{field}: a coordinate is missing")
    if left + width > 2 * side or top + height > 2 * side:
        raise Unreadable(f"{field}: ends outside [-{side}, {2 * side}]")
    return Box(left=left, top=top, width=width, height=height)


def point(value: Any, field: str, side: int) -> Point:
    raw = mapping(value, field)
    x, y = (None, None) if raw is None else (raw.get("x"), raw.get("y"))
    x_read = bounded(x, f"{field}.x", -side, 2 * side)
    y_read = bounded(y, f"{field}.y", -side, 2 * side)
    if x_read is None or y_read is None:
        raise Unreadable(f"{field}: not a point")
    return Point(x_read, y_read)


def points(value: Any, field: str, side: int) -> tuple[Point, ...]:
    return tuple(point(entry, f"{field}[{i}]", side) for i, entry in enumerate(items(value, field)))


def pose(value: Any, field: str) -> HeadPose | None:
    """Yaw, pitch and roll in degrees, each in [-180, 180]; None unless all three are given."""
    raw = mapping(value, field)
    if raw is None:
        return None
    yaw, pitch, roll = (
        bounded(raw.get(name), f"{field}.{name}", -180, 180) for name in ("yaw", "pitch", "roll")
    )
    if yaw is None or pitch is None or roll is None:
        return None
    return HeadPose(yaw=yaw, pitch=pitch, roll=roll)


def numbers(value: Any) -> Iterable[float]:
    """Every readable number in a value, or in a list or object of them (a measurement's
    parts: ``size_pix``, ``head_pose``)."""
    parts = value.values() if isinstance(value, Mapping) else value
    for part in parts if isinstance(parts, Iterable) and not isinstance(parts, str) else [value]:
        read = number(part)
        if read is not None:
            yield read
