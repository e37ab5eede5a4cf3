"""A document spec that asks for nothing, for tests to set what they judge."""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Any

from services.specs import Confidence, Crown, GlassesRule, Medium, Spec

BLANK = Spec(
    id="test",
    aliases=(),
    country="",
    names={"en": "Test"},
    main=False,
    medium=Medium.DIGITAL,
    width_mm=None,
    height_mm=None,
    dpi=None,
    width_px=None,
    height_px=None,
    head_mm=None,
    head_share=None,
    crown=Crown.HAIR,
    eyes_mm=None,
    eyes_share=None,
    top_margin_mm=None,
    backgrounds=(),
    glasses=GlassesRule.ALLOWED,
    crop_allowed=True,
    formats=(),
    kb=None,
    office_reason=None,
    confidence=Confidence.HIGH,
    checked=date(2025, 1, 1),
    sources=(),
    notes=(),
)


def blank_spec(**changes: Any) -> Spec:
    """A spec that asks for nothing but what ``changes`` set."""
    return dataclasses.replace(BLANK, **changes)
