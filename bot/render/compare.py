"""/compare: the verdict and score, which faces were compared, what the score means.

Faces are numbered as on the picture: face ``i + 1`` is ``faces[i]``. When one face was
compared with several faces of photo 2, the reply says with how many and which matched
best, and that the verdict's bounds were raised for it (``CompareThresholds.bounds``).
"""

from __future__ import annotations

from aiogram.utils.i18n import gettext as _

from bot.render.text import change_notes, fill, fmt, notes_section, provider_notes
from services.models import VERDICT_MESSAGES, CompareResult, CompareThresholds
from services.operations import CompareOutcome


def compare_report(outcome: CompareOutcome) -> list[str]:
    result, thresholds = outcome.result, outcome.thresholds
    lines = []
    if result.one_photo:
        lines.append(_("compare.within"))
    lines += [
        "<b>" + _(VERDICT_MESSAGES[outcome.verdict]) + "</b>",
        fill(_("compare.similarity"), percent=round(result.score * 100)),
    ]
    if not result.one_photo:
        lines.extend(compared_faces(result, thresholds))
    notes = [
        fill(
            _(thresholds.explain_id),
            probably=fmt(thresholds.probably_same),
            high=fmt(thresholds.same_high),
            very_high=fmt(thresholds.same_very_high),
        )
    ]
    for image in outcome.images:
        notes.extend(change_notes(image))
    notes.extend(provider_notes(result.provider, outcome.fell_back_from))
    return ["\n".join(lines), notes_section(notes)]


def compared_faces(result: CompareResult, thresholds: CompareThresholds) -> list[str]:
    """Which face of each photo was compared, when a photo shows more than one; with
    several candidates, how many and the raised bounds."""
    lines = []
    if len(result.faces_a) > 1:
        lines.append(
            fill(
                _("compare.face_of_photo"),
                n=1,
                count=len(result.faces_a),
                face=result.index_a + 1,
            )
        )
    count, total = result.candidates, len(result.faces_b)
    if count > 1:
        values = {"face_a": result.index_a + 1, "count": count, "face": result.index_b + 1}
        if count < total:
            lines.append(fill(_("compare.best_of_first"), total=total, **values))
        else:
            lines.append(fill(_("compare.best_of"), **values))
        probably, high, very_high = thresholds.bounds(count)
        lines.append(
            fill(
                _("compare.false_match"),
                count=count,
                step=fmt(round(thresholds.correction(count), 3)),
                probably=fmt(round(probably, 3)),
                high=fmt(round(high, 3)),
                very_high=fmt(round(very_high, 3)),
            )
        )
    elif total > 1:
        lines.append(fill(_("compare.face_of_photo"), n=2, count=total, face=result.index_b + 1))
    return lines
