"""The specs catalogue as a Markdown table, for the README.

``markdown_table`` renders one row per spec, in the catalogue's order, from the figures
alone: nothing here reads files or judges photos. ``python -m services.specs.table``
prints the table of ``specs.toml``; paste it between the README's ``specs:begin`` and
``specs:end`` markers after editing the data file (a unit test compares the two).

Cells: numbers without a trailing ``.0``, ranges with an en dash, ``≤ x`` for a
``[0, x]`` range (the authority gives no minimum), shares of the height in percent, and
``—`` wherever the authority leaves a figure open. An office spec has nothing to check,
so only its id, name, size cell (``taken at the office``) and confidence are filled.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from services.specs import Crown, GlassesRule, Medium, Range, Spec, catalogue

OPEN = "—"  # what the authority leaves open

HEADER = (
    "id",
    "document",
    "size",
    "head",
    "eye line",
    "background",
    "glasses",
    "file",
    "confidence",
)

GLASSES: dict[GlassesRule, str] = {
    GlassesRule.BANNED: "banned",
    GlassesRule.UNREMOVABLE_ONLY: "only if they cannot be removed",
    GlassesRule.ALLOWED: "allowed",
}


def _number(value: float) -> str:
    """``35`` for 35.0, ``0.5`` for 0.50; two decimals at most."""
    rounded = round(value, 2)
    if rounded == int(rounded):
        return str(int(rounded))
    return f"{rounded:.2f}".rstrip("0")


def _span(bounds: Range, scale: float = 1.0) -> str:
    """``35`` for an exact figure, ``32–36`` for a range, ``≤ 240`` for ``[0, 240]``."""
    low, high = bounds.low * scale, bounds.high * scale
    if low == high:
        return _number(low)
    if math.isinf(high):
        return f"≥ {_number(low)}"
    if low == 0:
        return f"≤ {_number(high)}"
    return f"{_number(low)}–{_number(high)}"


def _measure(mm: Range | None, share: Range | None) -> list[str]:
    """A length given in mm and/or as a share of the photo's height."""
    parts = []
    if mm is not None:
        parts.append(f"{_span(mm)} mm")
    if share is not None:
        parts.append(f"{_span(share, 100)} %")
    return parts


def _size(spec: Spec) -> str:
    if spec.medium is Medium.OFFICE:
        return "taken at the office"
    if spec.medium is Medium.PRINT:
        width, height, unit = spec.width_mm, spec.height_mm, "mm"
    else:
        width, height, unit = spec.width_px, spec.height_px, "px"
    if width is None and height is None:
        size = OPEN
    else:
        size = "×".join(OPEN if side is None else _span(side) for side in (width, height))
        size = f"{size} {unit}"
    return size if spec.dpi is None else f"{size}, {spec.dpi} dpi"


def _head(spec: Spec) -> str:
    parts = _measure(spec.head_mm, spec.head_share)
    if not parts:
        return OPEN
    head = " / ".join(parts)
    return f"{head} (skull)" if spec.crown is Crown.SKULL else head


def _eyes(spec: Spec) -> str:
    return " / ".join(_measure(spec.eyes_mm, spec.eyes_share)) or OPEN


def _file(spec: Spec) -> str:
    parts = []
    if spec.formats:
        parts.append(", ".join(spec.formats))
    if spec.kb is not None:
        parts.append(f"{_span(spec.kb)} KB")
    return " ".join(parts) or OPEN


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def spec_row(spec: Spec) -> tuple[str, ...]:
    """The cells of one spec's row, in ``HEADER``'s order."""
    if spec.medium is Medium.OFFICE:
        checked: tuple[str, ...] = (OPEN,) * 5
    else:
        checked = (
            _head(spec),
            _eyes(spec),
            ", ".join(spec.backgrounds) or OPEN,
            GLASSES[spec.glasses],
            _file(spec),
        )
    return (spec.id, spec.name("en"), _size(spec), *checked, spec.confidence.value)


def markdown_table(specs: Iterable[Spec]) -> str:
    """Every spec as a row of a Markdown table, without a trailing newline."""
    lines = [_row(HEADER), _row("---" for _ in HEADER)]
    lines.extend(_row(spec_row(spec)) for spec in specs)
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table(catalogue().specs))
