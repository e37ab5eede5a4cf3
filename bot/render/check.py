"""The ID-photo check: verdict, the reasons with the values that broke them, what was measured."""

from __future__ import annotations

import colorsys
from collections.abc import Mapping

from aiogram.utils.i18n import gettext as _

from bot.render.spec import judgement_lines, offer_text, title_text
from bot.render.text import (
    Html,
    change_notes,
    escape,
    fill,
    fmt,
    fmt_angle,
    joined,
    notes_section,
    provider_notes,
)
from services.i18n import N_
from services.images import PreparedImage
from services.models import GAZE_LIMIT, CheckResult, Measurements, Reason
from services.rules import RuleOutcome, Side
from services.specs.judge import Judgement

# Measured fields as the user reads them (rules, and what an engine did not check).
FIELD_NAMES = {
    "face_unbalance": N_("field.face_unbalance"),
    "face_x_occupy": N_("field.face_x_occupy"),
    "face_occlusion": N_("field.face_occlusion"),
    "shoulder_equal": N_("field.shoulder_equal"),
    "eyes_close": N_("field.eyes_close"),
    "eyes_y_center": N_("field.eyes_y_center"),
    "mouth_close": N_("field.mouth_close"),
    "face_x_center": N_("field.face_x_center"),
    "background_clean": N_("field.background_clean"),
    "face_darkillum": N_("field.face_darkillum"),
    "glasses": N_("field.glasses"),
    "has_hat": N_("field.has_hat"),
    "mouthmask": N_("field.mouthmask"),
    "eyes_sight": N_("field.eyes_sight"),
    "head_pose": N_("field.head_pose"),
    "head_chin_y": N_("field.head_chin_y"),
    "head_top": N_("field.head_top"),
    "nose_occlusion": N_("field.nose_occlusion"),
    "mouth_occlusion": N_("field.mouth_occlusion"),
    "eyes_occlusion": N_("field.eyes_occlusion"),
    "background_color": N_("field.background_color"),
    "background_gradual": N_("field.background_gradual"),
    "bf_similarity": N_("field.bf_similarity"),
    "face_blur": N_("field.face_blur"),
    "head_left": N_("field.head_left"),
    "head_right": N_("field.head_right"),
    "nose_tip": N_("field.nose_tip"),
    "eyes_spacing": N_("field.eyes_spacing"),
}

# The provider's ``glasses`` values; another value is shown as it came.
GLASSES_VALUES = {
    "no_glasses": N_("values.glasses.none"),
    "normal_glasses": N_("values.glasses.normal"),
    "dark_glasses": N_("values.glasses.dark"),
}

Outcomes = Mapping[str, RuleOutcome]


def check_report(
    result: CheckResult,
    image: PreparedImage,
    *,
    compressed: bool,
    fell_back_from: str | None = None,
    judgement: Judgement | None = None,
    passed: bool | None = None,
    offer_spec: bool = False,
) -> list[str]:
    """Sections of the reply: verdict with reasons, measured values, notes.

    With a ``judgement`` (a check against a document spec) ``passed`` is the verdict
    (``CheckOutcome.passed``), the spec's failed rules come first in the document's units
    and the generic reasons the spec judges in its own way (``Judgement.replaces``: the
    face's size by the head height, the eye line by the document's) are left out.
    ``offer_spec``: nothing was chosen, so the reply offers /spec.
    """
    if judgement is None:
        sections = [_verdict_section(result, result.passed if passed is None else passed)]
        if offer_spec:  # one line, under the verdict; the /spec buttons go under the reply
            sections[0] += "\n" + offer_text()
    else:
        sections = [_spec_verdict_section(result, judgement, bool(passed))]
    values = measurement_lines(result)
    if values:
        sections.append("<b>" + _("values.title") + "</b>\n" + "\n".join(values))
    if result.not_checked:
        names = ", ".join(field_label(name) for name in result.not_checked)
        sections.append(fill(_("check.not_checked"), fields=Html(names)))
    notes = change_notes(image)
    if judgement is None and _estimated_glasses(result):
        # A spec judges glasses by its own rule (``judgement_lines``); the generic rules do not.
        notes.insert(0, _("check.note.glasses_estimated"))
    gaze = result.measurements.eyes_sight
    if gaze is not None and gaze < GAZE_LIMIT:
        notes.insert(0, _("check.note.gaze_away"))
    if compressed:
        notes.append(_("check.tip.send_as_file"))
    notes.extend(provider_notes(result.provider, fell_back_from))
    sections.append(notes_section(notes))
    return sections


def _verdict_section(result: CheckResult, passed: bool) -> str:
    verdict = _("check.verdict.pass") if passed else _("check.verdict.fail")
    head = ["<b>" + verdict + "</b>"]
    reasons = reason_lines(result)
    if reasons:
        head.append(_("check.reasons.title"))
        head.extend(reasons)
    return "\n".join(head)


def _spec_verdict_section(result: CheckResult, judgement: Judgement, passed: bool) -> str:
    verdict = _("check.verdict.pass") if passed else _("check.verdict.fail")
    head = ["<b>" + verdict + "</b>", title_text(judgement)]
    reasons = reason_lines(result, skip=judgement.replaces)
    spec_lines = judgement_lines(judgement)
    if reasons or any(line.startswith("• ") for line in spec_lines):
        head.append(_("check.reasons.title"))
    head.extend(line for line in spec_lines if line.startswith("• "))
    head.extend(reasons)
    head.extend(line for line in spec_lines if not line.startswith("• "))
    return "\n".join(head)


def field_label(name: str) -> str:
    """A measured field as users read it; a field the catalogue lacks by its code name."""
    if name in FIELD_NAMES:
        return _(FIELD_NAMES[name])
    return escape(name)


def reason_lines(result: CheckResult, *, skip: frozenset[str] = frozenset()) -> list[str]:
    """The provider's reasons, but those of the rules in ``skip`` (a spec replaced them)."""
    lines = [
        "• " + _reason_text(reason, result.outcomes)
        for reason in result.reasons
        if reason.rule_field is None or reason.rule_field not in skip
    ]
    if not result.passed and not result.reasons:
        lines.append("• " + _("check.reason.none_given"))
    return lines


def _reason_text(reason: Reason, outcomes: Outcomes) -> str:
    """The reason in the user's language, and the value that broke its rule when measured."""
    if reason.message_id is None:
        return fill(_("check.reason.unknown"), text=reason.text)
    text = _(reason.message_id)
    outcome = outcomes.get(reason.rule_field) if reason.rule_field else None
    if outcome is not None and not outcome.ok:
        text += " — " + _rule_text(outcome)
    return text


def _rule_text(outcome: RuleOutcome) -> str:
    """ "face width 0.48, needs at least 0.51": which value broke which bound."""
    rule = outcome.rule
    below = outcome.broken is Side.LOW
    return fill(
        _("check.rule.below") if below else _("check.rule.above"),
        name=Html(_(FIELD_NAMES[rule.field])),
        value=fmt(outcome.value),
        bound=fmt(rule.low if below else rule.high),
    )


def measurement_lines(result: CheckResult) -> list[str]:
    """Every measured value, grouped as users look at a photo; ✓/✗ where a rule applies."""
    m, o = result.measurements, result.outcomes
    lines = [
        _face_line(m, o),
        _pose_line(m),
        _features_line(m, o),
        _glasses_line(m, estimated="glasses" in result.estimated),
        _light_line(m, o),
        _background_line(m, o),
        _photo_line(m),
    ]
    return [line for line in lines if line]


def _value(label: str, value: float | None, outcome: RuleOutcome | None = None) -> str:
    if value is None:
        return ""
    return f"{label} {escape(fmt(value))}{_mark(outcome)}"


def _mark(outcome: RuleOutcome | None) -> str:
    if outcome is None:
        return ""
    return " ✓" if outcome.ok else " ✗"


def _labelled(label: str, values: str) -> str:
    """``label: values``, or nothing when there are no values."""
    if not values:
        return ""
    return fill(_("values.labelled"), label=Html(label), values=Html(values))


def _face_line(m: Measurements, o: Outcomes) -> str:
    face = joined(
        [
            _value(_("values.face_x_center"), m.face_x_center, o.get("face_x_center")),
            _value(_("values.face_width"), m.face_x_occupy, o.get("face_x_occupy")),
            _value(_("values.eyes_y"), m.eyes_y_center, o.get("eyes_y_center")),
            _value(_("values.head_top"), m.head_top),
            _value(_("values.chin"), m.head_chin_y),
        ]
    )
    return _labelled(_("values.face"), face)


def _pose_line(m: Measurements) -> str:
    pose = m.head_pose
    if pose is None:
        return ""
    return fill(
        _("values.head_pose"),
        yaw=fmt_angle(pose.yaw),
        pitch=fmt_angle(pose.pitch),
        roll=fmt_angle(pose.roll),
    )


def _features_line(m: Measurements, o: Outcomes) -> str:
    return joined(
        [
            _value(_("values.eyes_open"), m.eyes_close, o.get("eyes_close")),
            _value(_("values.mouth_closed"), m.mouth_close, o.get("mouth_close")),
            _value(_("values.gaze"), m.eyes_sight),
            _value(_("values.shoulders"), m.shoulder_equal, o.get("shoulder_equal")),
            _value(_("values.uncovered"), m.face_occlusion, o.get("face_occlusion")),
        ]
    )


def _glasses_line(m: Measurements, *, estimated: bool = False) -> str:
    """ "Glasses: none", or "Glasses: none (estimate)" when the engine only estimated them."""
    if not m.glasses:
        return ""
    if m.glasses in GLASSES_VALUES:
        glasses = _(GLASSES_VALUES[m.glasses])
    else:
        glasses = escape(m.glasses)
    if estimated:
        glasses = fill(_("values.estimated"), value=Html(glasses))
    return _labelled(_("values.glasses"), glasses)


def _estimated_glasses(result: CheckResult) -> bool:
    """The engine estimated glasses on the face (not proven enough to fail the photo)."""
    seen = result.measurements.glasses
    return "glasses" in result.estimated and seen in ("normal_glasses", "dark_glasses")


def _light_line(m: Measurements, o: Outcomes) -> str:
    return joined(
        [
            _value(_("values.sharpness"), m.face_blur),
            _value(_("values.brightness"), m.face_darkillum, o.get("face_darkillum")),
            _value(_("values.evenness"), m.face_unbalance, o.get("face_unbalance")),
        ]
    )


def _background_line(m: Measurements, o: Outcomes) -> str:
    color = ""
    if m.background_color is not None:
        r, g, b = m.background_color
        color = _color_name(m.background_color) + " " + escape(f"#{r:02X}{g:02X}{b:02X}")
    background = joined(
        [
            color,
            _value(_("values.clean"), m.background_clean, o.get("background_clean")),
            _value(_("values.gradient"), m.background_gradual),
            _value(_("values.clothes_contrast"), m.bf_similarity),
        ]
    )
    return _labelled(_("values.background"), background)


def _color_name(rgb: tuple[int, int, int]) -> str:
    r, g, b = (c / 255 for c in rgb)
    hue, lightness, saturation = colorsys.rgb_to_hls(r, g, b)
    if lightness > 0.9:
        return _("color.white")
    if saturation < 0.15:
        return _("color.grey") if lightness > 0.2 else _("color.black")
    degrees = hue * 360
    if degrees < 20 or degrees >= 330:
        return _("color.red")
    if 180 <= degrees < 260:
        return _("color.blue")
    return _("color.other")


def _photo_line(m: Measurements) -> str:
    photo: list[str] = []
    if m.size_pix:
        photo.append(fill(_("values.pixels"), w=m.size_pix[0], h=m.size_pix[1]))
    if m.dpi:
        x, y = m.dpi
        photo.append(fill(_("values.dpi"), dpi=fmt(x) if x == y else f"{fmt(x)}×{fmt(y)}"))
    if m.size_mm:
        photo.append(fill(_("values.mm"), w=fmt(m.size_mm[0]), h=fmt(m.size_mm[1])))
    if m.file_size is not None:
        photo.append(fill(_("values.kb"), kb=fmt(round(m.file_size / 1024, 1))))
    if m.photo_format:
        photo.append(escape(m.photo_format.upper()))
    return _labelled(_("values.photo"), joined(photo))
