"""The Markdown table of document specs (``services.specs.table``) and its README copy.

The README's table between the ``specs:begin`` / ``specs:end`` markers must be exactly what
``markdown_table`` renders from ``specs.toml``, so the data file and the documentation
cannot drift apart. The other tests pin the cell formatting on hand-built specs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from pathlib import Path

import pytest

from services.specs import (
    Confidence,
    Crown,
    GlassesRule,
    Medium,
    Range,
    Spec,
    catalogue,
)
from services.specs.table import markdown_table
from tests.specs import blank_spec

README = Path(__file__).resolve().parents[2] / "README.md"
MARKED = re.compile(r"<!-- specs:begin -->\n\n(.*?)\n\n<!-- specs:end -->", re.DOTALL)
HEADER = "| id | document | size | head | eye line | background | glasses | file | confidence |"
COLUMNS = ("id", "document", "size", "head", "eye line", "background", "glasses", "file")

# A spec where the authority says nothing beyond what each test sets.
BLANK = blank_spec(
    id="xx-test",
    country="xx",
    names={"en": "Test passport", "ru": "Тестовый паспорт"},
    main=True,
    medium=Medium.PRINT,
    confidence=Confidence.MEDIUM,
    checked=dt.date(2026, 11, 29),
)


def spec(**fields: object) -> Spec:
    return dataclasses.replace(BLANK, **fields)  # type: ignore[arg-type]


def cells(one: Spec) -> dict[str, str]:
    """The row ``markdown_table`` renders for one spec, by column name."""
    lines = markdown_table([one]).split("\n")
    assert len(lines) == 3
    row = lines[2]
    assert row.startswith("| ") and row.endswith(" |")
    values = row[2:-2].split(" | ")
    assert len(values) == len(COLUMNS) + 1
    return dict(zip((*COLUMNS, "confidence"), values, strict=True))


def test_readme_table_is_generated_from_the_data_file() -> None:
    found = MARKED.search(README.read_text("utf-8"))
    assert found is not None, (
        "README.md lacks the specs table between <!-- specs:begin --> and <!-- specs:end -->"
    )
    assert found.group(1) == markdown_table(catalogue().specs), (
        "README.md's specs table is stale: run `python -m services.specs.table` and paste its "
        "output between <!-- specs:begin --> and <!-- specs:end -->"
    )


def test_table_has_a_header_and_one_row_per_spec_in_order() -> None:
    specs = catalogue().specs
    lines = markdown_table(specs).split("\n")
    assert lines[0] == HEADER
    assert lines[1] == "| " + " | ".join(["---"] * 9) + " |"
    assert [line.split(" | ")[0].removeprefix("| ") for line in lines[2:]] == [s.id for s in specs]


def test_print_size_with_a_width_range_and_dpi() -> None:
    row = cells(spec(width_mm=Range(35, 40), height_mm=Range(45, 45), dpi=300))
    assert row["size"] == "35–40×45 mm, 300 dpi"
    assert row["file"] == "—"


def test_exact_print_size_has_no_trailing_zero() -> None:
    row = cells(spec(width_mm=Range(35.0, 35.0), height_mm=Range(45.5, 45.5), dpi=600))
    assert row["size"] == "35×45.5 mm, 600 dpi"


def test_digital_spec_with_pixel_and_kb_bounds() -> None:
    row = cells(
        spec(
            medium=Medium.DIGITAL,
            width_px=Range(600, 1200),
            height_px=Range(600, 1200),
            formats=("JPEG",),
            kb=Range(10, 300),
        )
    )
    assert row["size"] == "600–1200×600–1200 px"
    assert row["file"] == "JPEG 10–300 KB"


def test_upload_limit_without_a_minimum_reads_at_most() -> None:
    row = cells(spec(medium=Medium.DIGITAL, formats=("JPEG", "PNG"), kb=Range(0, 240)))
    assert row["file"] == "JPEG, PNG ≤ 240 KB"
    assert row["size"] == "—"


def test_head_in_mm_measured_to_the_skull() -> None:
    assert cells(spec(head_mm=Range(32, 36), crown=Crown.SKULL))["head"] == "32–36 mm (skull)"
    assert cells(spec(head_mm=Range(32, 36), crown=Crown.HAIR))["head"] == "32–36 mm"


def test_shares_of_the_height_in_percent() -> None:
    # 0.69 * 100 is 68.99999999999999 in floating point: the cell must still read 69.
    row = cells(spec(head_share=Range(0.50, 0.69), eyes_share=Range(0.56, 0.69)))
    assert row["head"] == "50–69 %"
    assert row["eye line"] == "56–69 %"
    assert cells(spec(head_share=Range(0.705, 0.8)))["head"] == "70.5–80 %"


def test_eye_line_in_mm() -> None:
    assert cells(spec(eyes_mm=Range(28, 35)))["eye line"] == "28–35 mm"


def test_office_spec_is_taken_at_the_office_and_nothing_else() -> None:
    row = cells(
        spec(
            medium=Medium.OFFICE,
            office_reason="Photographed at the office.",
            crown=Crown.SKULL,
            glasses=GlassesRule.BANNED,
            backgrounds=("white",),
            dpi=300,
            confidence=Confidence.HIGH,
        )
    )
    assert row == {
        "id": "xx-test",
        "document": "Test passport",
        "size": "taken at the office",
        "head": "—",
        "eye line": "—",
        "background": "—",
        "glasses": "—",
        "file": "—",
        "confidence": "high",
    }


def test_what_the_authority_leaves_open_is_a_dash() -> None:
    row = cells(spec(dpi=300))
    assert row["size"] == "—, 300 dpi"
    for column in ("head", "eye line", "background", "file"):
        assert row[column] == "—", column


@pytest.mark.parametrize(
    ("rule", "text"),
    [
        (GlassesRule.BANNED, "banned"),
        (GlassesRule.UNREMOVABLE_ONLY, "only if they cannot be removed"),
        (GlassesRule.ALLOWED, "allowed"),
    ],
)
def test_glasses_rules(rule: GlassesRule, text: str) -> None:
    assert cells(spec(glasses=rule))["glasses"] == text


def test_backgrounds_joined_and_english_name_used() -> None:
    row = cells(spec(backgrounds=("white", "light-grey"), confidence=Confidence.LOW))
    assert row["background"] == "white, light-grey"
    assert row["document"] == "Test passport"
    assert row["confidence"] == "low"


def test_a_pipe_in_a_name_does_not_break_the_row() -> None:
    lines = markdown_table([spec(names={"en": "A | B"})]).split("\n")
    assert "| A \\| B |" in lines[2]
