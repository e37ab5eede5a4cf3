"""Reading provider JSON values: numbers that may arrive as strings, flags, codes.

JD sends ``"133.65"`` where it means 133.65; jumdata sends codes as numbers or strings.
Every parser in ``services/providers`` reads values through these, so a malformed
value becomes ``None`` in one way everywhere.
"""

from __future__ import annotations

import math
from typing import Any


def number(value: Any) -> float | None:
    """A JSON number or a numeric string as a finite float; booleans are not numbers."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return result if math.isfinite(result) else None


def integer(value: Any) -> int | None:
    """A whole number (``3``, ``"3"``, ``3.0``); anything else is ``None``."""
    result = number(value)
    if result is None or not result.is_integer():
        return None
    return int(result)


def flag(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"
    return None


def text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
