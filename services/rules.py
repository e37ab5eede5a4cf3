"""The ID-photo rules and the reason catalogue.

The jumdata check (and its Huawei marketplace resale) documents each rule as a
threshold comment on a ``detect_result`` field, e.g. ``"face_x_occupy": 0.637,
//>= 0.51 脸部太小 <= 0.64 脸部太大``: the value passes inside the bounds, the
first reason belongs to the lower bound, the second to the upper one. This
module is that table, the map from the provider's Chinese reason strings to
message ids, and the evaluation that says which value broke which rule.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from services.i18n import N_
from services.models import Measurements, Reason

log = logging.getLogger(__name__)


class Side(StrEnum):
    LOW = "low"
    HIGH = "high"


@dataclass(frozen=True, slots=True)
class Rule:
    field: str
    low: float | None
    high: float | None
    low_reason: str | None  # provider text when the value is below ``low``
    high_reason: str | None
    low_id: str | None
    high_id: str | None


RULES: tuple[Rule, ...] = (
    Rule("face_unbalance", 50, None, "光照不均匀", None, N_("reason.uneven_lighting"), None),
    Rule(
        "face_x_occupy",
        0.51,
        0.64,
        "脸部太小",
        "脸部太大",
        N_("reason.face_too_small"),
        N_("reason.face_too_large"),
    ),
    Rule("face_occlusion", 80, None, "脸部被遮挡", None, N_("reason.face_covered"), None),
    Rule(
        "shoulder_equal", 50, None, "两侧肩膀姿态不佳", None, N_("reason.shoulders_not_level"), None
    ),
    Rule("eyes_close", 80, None, "闭眼", None, N_("reason.eyes_closed"), None),
    Rule(
        "eyes_y_center",
        0.33,
        0.62,
        "脸部太靠上",
        "脸部太靠下",
        N_("reason.face_too_high"),
        N_("reason.face_too_low"),
    ),
    Rule("mouth_close", 60, None, "嘴巴张开过大", None, N_("reason.mouth_open"), None),
    Rule(
        "face_x_center",
        0.47,
        0.525,
        "脸部太靠左",
        "脸部太靠右",
        N_("reason.face_too_far_left"),
        N_("reason.face_too_far_right"),
    ),
    Rule("background_clean", 60, None, "背景杂乱", None, N_("reason.background_cluttered"), None),
    Rule("face_darkillum", 60, None, "照片过暗", None, N_("reason.too_dark"), None),
)

RULES_BY_FIELD: dict[str, Rule] = {rule.field: rule for rule in RULES}

# Provider reason text -> (message id, the field whose rule it reports).
_REASON_CATALOGUE: dict[str, tuple[str, str]] = {}
for _rule in RULES:
    if _rule.low_reason and _rule.low_id:
        _REASON_CATALOGUE[_rule.low_reason] = (_rule.low_id, _rule.field)
    if _rule.high_reason and _rule.high_id:
        _REASON_CATALOGUE[_rule.high_reason] = (_rule.high_id, _rule.field)


def _normalise(text: str) -> str:
    return "".join(text.split()).rstrip("。.!！")


def classify_reason(text: str) -> Reason:
    """Map a provider reason to its message id; unknown texts are kept and logged."""
    known = _REASON_CATALOGUE.get(_normalise(text))
    if known is None:
        log.warning("unknown check reason from provider: %r", text)
        return Reason(text=text, message_id=None, rule_field=None)
    message_id, field = known
    return Reason(text=text, message_id=message_id, rule_field=field)


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    """A rule applied to a measured value; ``broken`` is the side it falls out on."""

    rule: Rule
    value: float
    broken: Side | None

    @property
    def ok(self) -> bool:
        return self.broken is None

    @property
    def message_id(self) -> str | None:
        if self.broken is Side.LOW:
            return self.rule.low_id
        if self.broken is Side.HIGH:
            return self.rule.high_id
        return None


def evaluate(measurements: Measurements) -> dict[str, RuleOutcome]:
    """Apply every documented rule to the values that were measured."""
    outcomes: dict[str, RuleOutcome] = {}
    for rule in RULES:
        value = measurements.value(rule.field)
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue
        broken: Side | None = None
        if rule.low is not None and value < rule.low:
            broken = Side.LOW
        elif rule.high is not None and value > rule.high:
            broken = Side.HIGH
        outcomes[rule.field] = RuleOutcome(rule=rule, value=float(value), broken=broken)
    return outcomes
