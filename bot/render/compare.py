"""/compare: the verdict and score, faces beyond the one compared, what the score means."""

from __future__ import annotations

from aiogram.utils.i18n import gettext as _

from bot.render.text import change_notes, fill, fmt, notes_section, provider_notes
from services.models import VERDICT_MESSAGES
from services.operations import CompareOutcome


def compare_report(outcome: CompareOutcome) -> list[str]:
    result, thresholds = outcome.result, outcome.thresholds
    lines = [
        "<b>" + _(VERDICT_MESSAGES[outcome.verdict]) + "</b>",
        fill(_("compare.similarity"), percent=round(result.score * 100)),
    ]
    for nth, faces in ((1, result.faces_a), (2, result.faces_b)):
        if len(faces) > 1:
            lines.append(fill(_("compare.several_faces"), n=nth, count=len(faces)))
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
