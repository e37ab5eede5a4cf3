"""Turning results and failures into the user's language (HTML parse mode).

Every sentence is a message id looked up in the current locale; values are
formatted here and HTML-escaped. The provider's own text is never the message.
"""

from __future__ import annotations

import colorsys
import html
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import partial

from aiogram.utils.i18n import gettext as _

from services.budget import BudgetStatus, ProviderSpent
from services.errors import ImageError, ProviderError, ServiceError
from services.facecheck import AnalyzeOutcome, CompareOutcome, DetectOutcome, Services
from services.faces import VERDICT_MESSAGES, Emotion, Expression, Face, Gender, Glasses, Race
from services.i18n import N_
from services.images import Change, PreparedImage
from services.models import CheckResult, Measurements, Operation
from services.quota import QuotaStatus, Stats
from services.rules import RuleOutcome, Side, evaluate

# Telegram's HTML mode needs only <, > and & escaped; quotes stay readable in the raw text.
escape = partial(html.escape, quote=False)

CAPTION_LIMIT = 1024
TEXT_LIMIT = 4096

OPERATION_NAMES = {
    "check": lambda: _("operation.check"),
    "compare": lambda: _("operation.compare"),
    "detect": lambda: _("operation.detect"),
    "analyze": lambda: _("operation.analyze"),
}

# Measured fields as the user reads them (rules, and what an engine did not check).
FIELD_NAMES = {
    "face_unbalance": lambda: _("field.face_unbalance"),
    "face_x_occupy": lambda: _("field.face_x_occupy"),
    "face_occlusion": lambda: _("field.face_occlusion"),
    "shoulder_equal": lambda: _("field.shoulder_equal"),
    "eyes_close": lambda: _("field.eyes_close"),
    "eyes_y_center": lambda: _("field.eyes_y_center"),
    "mouth_close": lambda: _("field.mouth_close"),
    "face_x_center": lambda: _("field.face_x_center"),
    "background_clean": lambda: _("field.background_clean"),
    "face_darkillum": lambda: _("field.face_darkillum"),
    "glasses": lambda: _("field.glasses"),
    "has_hat": lambda: _("field.has_hat"),
    "mouthmask": lambda: _("field.mouthmask"),
    "eyes_sight": lambda: _("field.eyes_sight"),
    "head_pose": lambda: _("field.head_pose"),
    "head_chin_y": lambda: _("field.head_chin_y"),
    "head_top": lambda: _("field.head_top"),
    "nose_occlusion": lambda: _("field.nose_occlusion"),
    "mouth_occlusion": lambda: _("field.mouth_occlusion"),
    "eyes_occlusion": lambda: _("field.eyes_occlusion"),
    "background_color": lambda: _("field.background_color"),
    "background_gradual": lambda: _("field.background_gradual"),
    "bf_similarity": lambda: _("field.bf_similarity"),
    "face_blur": lambda: _("field.face_blur"),
    "head_left": lambda: _("field.head_left"),
    "head_right": lambda: _("field.head_right"),
    "nose_tip": lambda: _("field.nose_tip"),
    "eyes_spacing": lambda: _("field.eyes_spacing"),
}


def fmt(value: float | int | None) -> str:
    """Compact numbers: ratios with 3 decimals, scores and angles with at most 1."""
    if value is None:
        return "—"
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    if abs(value) < 1:
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return f"{value:.1f}"


def fmt_angle(value: float) -> str:
    return f"{value:.1f}"


def _labelled(label: str, values: str) -> str:
    return _("values.labelled").format(label=label, values=values)


def _mark(outcome: RuleOutcome | None) -> str:
    if outcome is None:
        return ""
    return " ✓" if outcome.ok else " ✗"


def _rule_text(outcome: RuleOutcome) -> str:
    """ "face width 0.48, needs at least 0.51": which value broke which bound."""
    name = FIELD_NAMES[outcome.rule.field]()
    if outcome.broken is Side.LOW:
        return _("check.rule.below").format(
            name=name, value=fmt(outcome.value), bound=fmt(outcome.rule.low)
        )
    return _("check.rule.above").format(
        name=name, value=fmt(outcome.value), bound=fmt(outcome.rule.high)
    )


def reason_lines(result: CheckResult) -> list[str]:
    outcomes = evaluate(result.measurements)
    lines: list[str] = []
    for reason in result.reasons:
        if reason.message_id is None:
            lines.append("• " + _("check.reason.unknown").format(text=escape(reason.text)))
            continue
        line = "• " + escape(_(reason.message_id))
        outcome = outcomes.get(reason.rule_field or "")
        if outcome is not None and not outcome.ok:
            line += " — " + escape(_rule_text(outcome))
        lines.append(line)
    if not result.passed and not result.reasons:
        lines.append("• " + escape(_("check.reason.none_given")))
    return lines


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


def _join(parts: Iterable[str]) -> str:
    return " · ".join(p for p in parts if p)


def _value(
    label: str, value: float | None, outcome: RuleOutcome | None = None, unit: str = ""
) -> str:
    if value is None:
        return ""
    return f"{label} {fmt(value)}{unit}{_mark(outcome)}"


def measurement_lines(m: Measurements) -> list[str]:
    o = evaluate(m)
    lines: list[str] = []
    face = _join(
        [
            _value(_("values.face_x_center"), m.face_x_center, o.get("face_x_center")),
            _value(_("values.face_width"), m.face_x_occupy, o.get("face_x_occupy")),
            _value(_("values.eyes_y"), m.eyes_y_center, o.get("eyes_y_center")),
            _value(_("values.head_top"), m.head_top),
            _value(_("values.chin"), m.head_chin_y),
        ]
    )
    if face:
        lines.append(_labelled(_("values.face"), face))
    if m.head_pose is not None:
        pose = m.head_pose
        lines.append(
            _("values.head_pose").format(
                yaw=fmt_angle(pose.yaw), pitch=fmt_angle(pose.pitch), roll=fmt_angle(pose.roll)
            )
        )
    features = _join(
        [
            _value(_("values.eyes_open"), m.eyes_close, o.get("eyes_close")),
            _value(_("values.mouth_closed"), m.mouth_close, o.get("mouth_close")),
            _value(_("values.shoulders"), m.shoulder_equal, o.get("shoulder_equal")),
            _value(_("values.uncovered"), m.face_occlusion, o.get("face_occlusion")),
        ]
    )
    if features:
        lines.append(features)
    if m.glasses:
        glasses = {
            "no_glasses": _("values.glasses.none"),
            "normal_glasses": _("values.glasses.normal"),
            "dark_glasses": _("values.glasses.dark"),
        }.get(m.glasses, escape(m.glasses))
        lines.append(_labelled(_("values.glasses"), glasses))
    light = _join(
        [
            _value(_("values.sharpness"), m.face_blur),
            _value(_("values.brightness"), m.face_darkillum, o.get("face_darkillum")),
            _value(_("values.evenness"), m.face_unbalance, o.get("face_unbalance")),
        ]
    )
    if light:
        lines.append(light)
    background: list[str] = []
    if m.background_color is not None:
        r, g, b = m.background_color
        background.append(f"{_color_name(m.background_color)} #{r:02X}{g:02X}{b:02X}")
    background.append(_value(_("values.clean"), m.background_clean, o.get("background_clean")))
    background.append(_value(_("values.gradient"), m.background_gradual))
    background.append(_value(_("values.clothes_contrast"), m.bf_similarity))
    if any(background):
        lines.append(_labelled(_("values.background"), _join(background)))
    photo: list[str] = []
    if m.size_pix:
        photo.append(_("values.pixels").format(w=m.size_pix[0], h=m.size_pix[1]))
    if m.dpi:
        dpi = fmt(m.dpi[0]) if m.dpi[0] == m.dpi[1] else f"{fmt(m.dpi[0])}×{fmt(m.dpi[1])}"
        photo.append(_("values.dpi").format(dpi=dpi))
    if m.size_mm:
        photo.append(_("values.mm").format(w=fmt(m.size_mm[0]), h=fmt(m.size_mm[1])))
    if m.file_size is not None:
        photo.append(_("values.kb").format(kb=fmt(round(m.file_size / 1024))))
    if m.photo_format:
        photo.append(escape(m.photo_format.upper()))
    if photo:
        lines.append(_labelled(_("values.photo"), _join(photo)))
    return lines


def change_notes(image: PreparedImage) -> list[str]:
    notes: list[str] = []
    if Change.REDUCED in image.changes:
        notes.append(
            _("image.note.reduced").format(
                ow=image.original.width, oh=image.original.height, w=image.width, h=image.height
            )
        )
    if Change.CONVERTED in image.changes:
        notes.append(
            _("image.note.converted").format(
                source=escape(image.original.format), target=escape(image.format)
            )
        )
    if Change.ROTATED in image.changes:
        notes.append(_("image.note.rotated"))
    return notes


def check_report(
    result: CheckResult,
    image: PreparedImage,
    *,
    compressed: bool,
    fell_back_from: str | None = None,
) -> list[str]:
    """Sections of the reply: verdict with reasons, measured values, notes."""
    verdict = _("check.verdict.pass") if result.passed else _("check.verdict.fail")
    head = [f"<b>{escape(verdict)}</b>"]
    reasons = reason_lines(result)
    if reasons:
        head.append(escape(_("check.reasons.title")))
        head.extend(reasons)
    sections = ["\n".join(head)]
    values = measurement_lines(result.measurements)
    if values:
        title = escape(_("values.title"))
        sections.append(f"<b>{title}</b>\n" + "\n".join(values))
    if result.not_checked:
        names = ", ".join(field_label(name) for name in result.not_checked)
        sections.append(escape(_("check.not_checked").format(fields=names)))
    notes = change_notes(image)
    if compressed:
        notes.append(_("check.tip.send_as_file"))
    notes.extend(provider_notes(result.provider, fell_back_from))
    sections.append("<i>" + "\n".join(notes) + "</i>")
    return sections


def provider_notes(provider: str, fell_back_from: str | None) -> list[str]:
    """Which engine answered, and why it was not the configured one."""
    notes = []
    if fell_back_from:
        notes.append(_("fallback.used").format(provider=escape(fell_back_from)))
    notes.append(_("check.provider").format(provider=escape(provider)))
    return notes


def field_label(name: str) -> str:
    label = FIELD_NAMES.get(name)
    return label() if label else name


def when(moment: datetime | None) -> str:
    """A reset time as users read it: the time in UTC, with the date unless it is today."""
    if moment is None:
        return "—"
    moment = moment.astimezone(UTC)
    now = datetime.now(UTC)
    if moment.date() == now.date():
        return moment.strftime("%H:%M UTC")
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def error_text(error: ServiceError) -> str:
    message_id = error.message_id
    if isinstance(error, ProviderSpent) and error.resets_at is None:
        message_id = N_("budget.spent_until_cleared")
    text = _(message_id).format_map(_safe_values(error))
    photo = error.values.get("photo")
    if isinstance(photo, int):
        text = _("error.photo_n").format(n=photo) + " " + text
    if isinstance(error, ProviderError) and error.code is not None:
        text += (
            "\n<i>"
            + _("error.code").format(provider=escape(error.provider), code=escape(str(error.code)))
            + "</i>"
        )
    return text


def _safe_values(error: ServiceError) -> _Defaults:
    values = {
        key: when(value) if isinstance(value, datetime) else escape(str(value))
        for key, value in error.values.items()
    }
    operation = error.values.get("operation")
    if operation is not None:
        name = OPERATION_NAMES.get(str(operation))
        values["operation"] = escape(name() if name else str(operation))
    if isinstance(error, ImageError):
        size = error.values.get("size")
        if isinstance(size, int):
            values["size_mb"] = f"{size / 1024 / 1024:.1f}"
    return _Defaults(values)


class _Defaults(dict[str, str]):
    """``str.format`` with a dash for any value a translation asks for but the error lacks."""

    def __missing__(self, key: str) -> str:
        return "—"


def split_for_caption(sections: list[str]) -> tuple[str, list[str]]:
    """The leading sections that fit a photo caption; the rest go in text messages.

    When even the first section is too long, the caption is its first line (the
    verdict or the count, a whole HTML element) and the full text follows.
    """
    caption = ""
    for index, section in enumerate(sections):
        candidate = f"{caption}\n\n{section}" if caption else section
        if len(candidate) > CAPTION_LIMIT:
            if not caption:
                return section.split("\n", 1)[0], _pack(sections)
            return caption, _pack(sections[index:])
        caption = candidate
    return caption, []


def _pack(sections: list[str]) -> list[str]:
    """Text messages of at most ``TEXT_LIMIT`` characters, split between lines."""
    messages: list[str] = []
    for section in sections:
        separator = "\n\n"
        for line in section.split("\n"):
            line = line[:TEXT_LIMIT]
            if messages and len(messages[-1]) + len(separator) + len(line) <= TEXT_LIMIT:
                messages[-1] += separator + line
            else:
                messages.append(line)
            separator = "\n"
    return messages


# --- compare, detect, analyze ------------------------------------------------------------------

MAX_FACE_LINES = 20

_GENDER = {Gender.MALE: lambda: _("attr.male"), Gender.FEMALE: lambda: _("attr.female")}
_EMOTION = {
    Emotion.ANGRY: lambda: _("emotion.angry"),
    Emotion.DISGUST: lambda: _("emotion.disgust"),
    Emotion.FEAR: lambda: _("emotion.fear"),
    Emotion.HAPPY: lambda: _("emotion.happy"),
    Emotion.SAD: lambda: _("emotion.sad"),
    Emotion.SURPRISE: lambda: _("emotion.surprise"),
    Emotion.NEUTRAL: lambda: _("emotion.neutral"),
    Emotion.POUTY: lambda: _("emotion.pouty"),
    Emotion.GRIMACE: lambda: _("emotion.grimace"),
}
_EXPRESSION = {
    Expression.NONE: lambda: _("expression.none"),
    Expression.SMILE: lambda: _("expression.smile"),
    Expression.LAUGH: lambda: _("expression.laugh"),
}
_GLASSES = {
    Glasses.NONE: lambda: _("attr.no_glasses"),
    Glasses.COMMON: lambda: _("attr.glasses"),
    Glasses.SUN: lambda: _("attr.sunglasses"),
}
_RACE = {
    Race.WHITE: lambda: _("race.white"),
    Race.BLACK: lambda: _("race.black"),
    Race.ASIAN: lambda: _("race.asian"),
    Race.ARABS: lambda: _("race.arabs"),
    Race.INDIAN: lambda: _("race.indian"),
}
_PARTS = {
    "left_eye": lambda: _("part.left_eye"),
    "right_eye": lambda: _("part.right_eye"),
    "nose": lambda: _("part.nose"),
    "mouth": lambda: _("part.mouth"),
    "left_cheek": lambda: _("part.left_cheek"),
    "right_cheek": lambda: _("part.right_cheek"),
    "chin_contour": lambda: _("part.chin"),
}
# jumdata's quality guidance (the Baidu face API it resells): above these a part counts
# as covered, and a blur above 0.7 or light under 40 makes a face unusable for matching.
OCCLUSION_LIMIT = 0.6
BLUR_LIMIT = 0.7
DARK_LIMIT = 40


def _pose_text(face: Face) -> str:
    if face.pose is None:
        return ""
    return _("face.pose").format(
        yaw=fmt_angle(face.pose.yaw),
        pitch=fmt_angle(face.pose.pitch),
        roll=fmt_angle(face.pose.roll),
    )


def _quality_parts(face: Face) -> list[str]:
    quality = face.quality
    if quality is None:
        return []
    parts: list[str] = []
    if quality.blur is not None:
        parts.append(
            _("face.blurry").format(value=fmt(quality.blur))
            if quality.blur > BLUR_LIMIT
            else _("face.sharp")
        )
    if quality.illumination is not None:
        light = _("face.dark") if quality.illumination < DARK_LIMIT else _("face.light")
        parts.append(light.format(value=fmt(round(quality.illumination))))
    if quality.completeness is False:
        parts.append(_("face.cut_off"))
    covered = [
        _PARTS[p]() for p, v in quality.occlusion.items() if p in _PARTS and v > OCCLUSION_LIMIT
    ]
    if covered:
        parts.append(_("face.covered").format(parts=", ".join(covered)))
    return parts


def _attribute_parts(face: Face, *, sensitive: bool) -> list[str]:
    parts: list[str] = []
    if face.age is not None:
        parts.append(_("attr.age").format(age=round(face.age)))
    if face.gender is not None:
        parts.append(_GENDER[face.gender]())
    if face.emotion is not None:
        parts.append(_EMOTION[face.emotion]())
    if face.expression is not None:
        parts.append(_EXPRESSION[face.expression]())
    if face.smile is not None:
        parts.append(_("attr.smile").format(value=fmt(round(face.smile))))
    if face.glasses is not None:
        parts.append(_GLASSES[face.glasses]())
    if face.mask is not None:
        parts.append(_("attr.mask") if face.mask else _("attr.no_mask"))
    if face.beard is not None:
        parts.append(_("attr.beard") if face.beard else _("attr.no_beard"))
    if sensitive:
        if face.race is not None:
            parts.append(_RACE[face.race]())
        if face.beauty is not None:
            parts.append(_("attr.beauty").format(value=fmt(round(face.beauty))))
    return parts


def _face_lines(faces: tuple[Face, ...], details: list[list[str]]) -> list[str]:
    lines = [
        _("face.line").format(n=n, details=escape(_join(parts) or _("face.no_details")))
        for n, parts in enumerate(details[:MAX_FACE_LINES], start=1)
    ]
    if len(faces) > MAX_FACE_LINES:
        lines.append(_("face.more").format(count=len(faces) - MAX_FACE_LINES))
    return lines


def detect_report(outcome: DetectOutcome, *, attributes: bool) -> list[str]:
    faces = outcome.faces
    head = "<b>" + escape(_("faces.count").format(count=len(faces))) + "</b>"
    details = [
        [
            *_quality_parts(face),
            _pose_text(face),
            *(_attribute_parts(face, sensitive=False) if attributes else []),
        ]
        for face in faces
    ]
    sections = [head + "\n" + "\n".join(_face_lines(faces, details))]
    notes = change_notes(outcome.image)
    if not attributes:
        notes.append(_("faces.tip_all"))
    notes.extend(provider_notes(outcome.result.provider, outcome.fell_back_from))
    sections.append("<i>" + "\n".join(notes) + "</i>")
    return sections


def analyze_report(outcome: AnalyzeOutcome, *, sensitive: bool) -> list[str]:
    faces = outcome.faces
    head = "<b>" + escape(_("analyze.count").format(count=len(faces))) + "</b>"
    details = [[*_attribute_parts(face, sensitive=sensitive), _pose_text(face)] for face in faces]
    sections = [head + "\n" + "\n".join(_face_lines(faces, details))]
    notes = change_notes(outcome.image)
    if outcome.result.provider == "local":
        notes.append(_("analyze.local_note"))
    notes.extend(provider_notes(outcome.result.provider, outcome.fell_back_from))
    sections.append("<i>" + "\n".join(notes) + "</i>")
    return sections


def compare_report(outcome: CompareOutcome) -> list[str]:
    result, thresholds = outcome.result, outcome.thresholds
    verdict = escape(_(VERDICT_MESSAGES[outcome.verdict]))
    lines = [
        f"<b>{verdict}</b>",
        escape(_("compare.similarity").format(percent=round(result.score * 100))),
    ]
    for nth, faces in ((1, result.faces_a), (2, result.faces_b)):
        if len(faces) > 1:
            lines.append(escape(_("compare.several_faces").format(n=nth, count=len(faces))))
    explain = _(thresholds.explain_id).format(
        probably=fmt(thresholds.probably_same),
        high=fmt(thresholds.same_high),
        very_high=fmt(thresholds.same_very_high),
    )
    notes = [explain]
    for image in outcome.images:
        notes.extend(change_notes(image))
    notes.extend(provider_notes(result.provider, outcome.fell_back_from))
    return ["\n".join(lines), "<i>" + escape("\n".join(notes)) + "</i>"]


# --- quotas and budgets --------------------------------------------------------------------------


def quota_text(
    statuses: dict[Operation, QuotaStatus], budgets: list[BudgetStatus], services: Services
) -> str:
    lines = ["<b>" + escape(_("quota.title")) + "</b>"]
    for operation, status in statuses.items():
        name = OPERATION_NAMES[operation.value]()
        if status.limit is None:
            left = _("quota.unlimited")
        else:
            left = _("quota.left").format(remaining=status.remaining, limit=status.limit)
        lines.append(f"{escape(name)}: {escape(left)}")
    limited = [s for s in statuses.values() if s.limit is not None]
    if limited:
        lines.append(escape(_("quota.resets").format(when=when(limited[0].resets_at))))
    by_provider = {b.provider: b for b in budgets}
    for operation in statuses:
        budget = by_provider.get(services.provider_name(operation))
        if budget is not None and not budget.available:
            name = OPERATION_NAMES[operation.value]()
            until = budget.spent_until if budget.spent else budget.backoff_until
            template = _("quota.provider_paused") if until else _("quota.provider_spent")
            lines.append(escape(template.format(operation=name, when=when(until))))
    return "\n".join(lines)


def stats_texts(stats: Stats, budgets: list[BudgetStatus]) -> list[str]:
    lines = ["<b>" + escape(_("stats.title").format(day=stats.day.isoformat())) + "</b>"]
    total = stats.total
    lines.append(
        escape(_("stats.total").format(calls=total.calls, charged=total.charged, free=total.free))
    )
    for (operation, provider), count in sorted(stats.calls.items()):
        lines.append(
            escape(f"{operation.value} · {provider}: ")
            + escape(
                _("stats.calls").format(calls=count.calls, charged=count.charged, free=count.free)
            )
        )
    if stats.errors:
        lines.append("<b>" + escape(_("stats.errors")) + "</b>")
        for (provider, code), count in sorted(stats.errors.items(), key=lambda i: -i[1]):
            lines.append(escape(f"{provider} {code}: {count}"))
    if budgets:
        lines.append("<b>" + escape(_("stats.budgets")) + "</b>")
        for budget in budgets:
            state = _("stats.budget_ok") if budget.available else _("stats.budget_paused")
            remain = "—" if budget.remain is None else str(budget.remain)
            lines.append(
                escape(
                    _("stats.budget").format(
                        provider=budget.provider,
                        remain=remain,
                        state=state,
                        resets=when(budget.resets_at),
                    )
                )
            )
    if stats.busiest:
        lines.append("<b>" + escape(_("stats.busiest")) + "</b>")
        lines.extend(escape(f"{user}: {calls}") for user, calls in stats.busiest)
    return _pack(["\n".join(lines)])
