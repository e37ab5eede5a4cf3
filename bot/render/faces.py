"""/faces (detect) and /analyze: one line per face, numbered as on the picture."""

from __future__ import annotations

from aiogram.utils.i18n import gettext as _

from bot.render.text import (
    Html,
    change_notes,
    fill,
    fmt,
    fmt_angle,
    joined,
    notes_section,
    provider_notes,
)
from services.i18n import N_
from services.models import Emotion, Expression, Face, FaceQuality, Gender, Glasses, Race
from services.operations import FacesOutcome

# More lines would bury the reply; the picture numbers every face.
MAX_FACE_LINES = 20

GENDER = {Gender.MALE: N_("attr.male"), Gender.FEMALE: N_("attr.female")}
EMOTION = {
    Emotion.ANGRY: N_("emotion.angry"),
    Emotion.DISGUST: N_("emotion.disgust"),
    Emotion.FEAR: N_("emotion.fear"),
    Emotion.HAPPY: N_("emotion.happy"),
    Emotion.SAD: N_("emotion.sad"),
    Emotion.SURPRISE: N_("emotion.surprise"),
    Emotion.NEUTRAL: N_("emotion.neutral"),
    Emotion.POUTY: N_("emotion.pouty"),
    Emotion.GRIMACE: N_("emotion.grimace"),
}
EXPRESSION = {
    Expression.NONE: N_("expression.none"),
    Expression.SMILE: N_("expression.smile"),
    Expression.LAUGH: N_("expression.laugh"),
}
GLASSES = {
    Glasses.NONE: N_("attr.no_glasses"),
    Glasses.COMMON: N_("attr.glasses"),
    Glasses.SUN: N_("attr.sunglasses"),
}
RACE = {
    Race.WHITE: N_("race.white"),
    Race.BLACK: N_("race.black"),
    Race.ASIAN: N_("race.asian"),
    Race.ARABS: N_("race.arabs"),
    Race.INDIAN: N_("race.indian"),
}
# Face parts the provider reports as covered; one the catalogue lacks is left out.
PARTS = {
    "left_eye": N_("part.left_eye"),
    "right_eye": N_("part.right_eye"),
    "nose": N_("part.nose"),
    "mouth": N_("part.mouth"),
    "left_cheek": N_("part.left_cheek"),
    "right_cheek": N_("part.right_cheek"),
    "chin_contour": N_("part.chin"),
}


def detect_report(outcome: FacesOutcome, *, attributes: bool) -> list[str]:
    """Each face's quality and pose; its attributes only when the user asked for them."""
    details = [
        [
            *_quality_parts(face.quality),
            _pose_text(face),
            *(_attribute_parts(face, sensitive=False) if attributes else []),
        ]
        for face in outcome.faces
    ]
    tips = [] if attributes else [_("faces.tip_all")]
    return _report(outcome, fill(_("faces.count"), count=len(outcome.faces)), details, tips)


def analyze_report(outcome: FacesOutcome, *, sensitive: bool) -> list[str]:
    """Each face's attributes and pose; race and beauty only when the operator opts in."""
    details = [
        [*_attribute_parts(face, sensitive=sensitive), _pose_text(face)] for face in outcome.faces
    ]
    # Without this an engine that cannot estimate age or gender would seem to have found none.
    tips = [] if outcome.result.demographics else [_("analyze.local_note")]
    return _report(outcome, fill(_("analyze.count"), count=len(outcome.faces)), details, tips)


def _report(
    outcome: FacesOutcome, title: str, details: list[list[str]], tips: list[str]
) -> list[str]:
    head = "<b>" + title + "</b>\n" + "\n".join(_face_lines(details))
    notes = [
        *change_notes(outcome.image),
        *tips,
        *provider_notes(outcome.result.provider, outcome.fell_back_from),
    ]
    return [head, notes_section(notes)]


def _face_lines(details: list[list[str]]) -> list[str]:
    lines = [
        fill(_("face.line"), n=n, details=Html(joined(parts) or _("face.no_details")))
        for n, parts in enumerate(details[:MAX_FACE_LINES], start=1)
    ]
    if len(details) > MAX_FACE_LINES:
        lines.append(fill(_("face.more"), count=len(details) - MAX_FACE_LINES))
    return lines


def _pose_text(face: Face) -> str:
    if face.pose is None:
        return ""
    return fill(
        _("face.pose"),
        yaw=fmt_angle(face.pose.yaw),
        pitch=fmt_angle(face.pose.pitch),
        roll=fmt_angle(face.pose.roll),
    )


def _quality_parts(quality: FaceQuality | None) -> list[str]:
    """Whether the face is usable for matching, by the provider's own guidance."""
    if quality is None:
        return []
    parts: list[str] = []
    if quality.blur is not None:
        parts.append(
            fill(_("face.blurry"), value=fmt(quality.blur)) if quality.blurry else _("face.sharp")
        )
    if quality.illumination is not None:
        light = _("face.dark") if quality.dark else _("face.light")
        parts.append(fill(light, value=fmt(round(quality.illumination))))
    if quality.completeness is False:
        parts.append(_("face.cut_off"))
    covered = [_(PARTS[part]) for part in quality.covered if part in PARTS]
    if covered:
        parts.append(fill(_("face.covered"), parts=Html(", ".join(covered))))
    return parts


def _attribute_parts(face: Face, *, sensitive: bool) -> list[str]:
    parts: list[str] = []
    if face.age is not None:
        parts.append(fill(_("attr.age"), age=round(face.age)))
    if face.gender is not None:
        parts.append(_(GENDER[face.gender]))
    if face.emotion is not None:
        parts.append(_(EMOTION[face.emotion]))
    if face.expression is not None:
        parts.append(_(EXPRESSION[face.expression]))
    if face.smile is not None:
        parts.append(fill(_("attr.smile"), value=fmt(round(face.smile))))
    if face.glasses is not None:
        parts.append(_(GLASSES[face.glasses]))
    if face.mask is not None:
        parts.append(_("attr.mask") if face.mask else _("attr.no_mask"))
    if face.beard is not None:
        parts.append(_("attr.beard") if face.beard else _("attr.no_beard"))
    if sensitive:
        parts.extend(_sensitive_parts(face))
    return parts


def _sensitive_parts(face: Face) -> list[str]:
    """Race and beauty: what a photo cannot tell fairly, shown only on the operator's say."""
    parts: list[str] = []
    if face.race is not None:
        parts.append(_(RACE[face.race]))
    if face.beauty is not None:
        parts.append(fill(_("attr.beauty"), value=fmt(round(face.beauty))))
    return parts
