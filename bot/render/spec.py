"""Document specs in replies: what /spec shows, and a check judged against a spec.

A spec's name comes from the data file (``services/specs/specs.toml``), not from the
catalogue, so it is escaped like any other value; the sentences around it are
catalogue ids. Numbers are in the document's own units: millimetres for a print,
pixels and kilobytes for an upload, a share of the height where the spec gives shares.
"""

from __future__ import annotations

import math
from fractions import Fraction

from aiogram.utils.i18n import get_i18n
from aiogram.utils.i18n import gettext as _

from bot.render.text import Html, escape, fill, fmt
from services.i18n import N_
from services.specs import Confidence, GlassesRule, Medium, Range, Spec, UnknownSpec
from services.specs.crop import Edge
from services.specs.judge import (
    OTHER_COLOUR,
    CropPlan,
    CropReason,
    Judgement,
    RuleKind,
    RuleState,
    RuleUnit,
    SpecRule,
)
from services.specs.make import SHEET_DPI, CannotMake, MadePhoto, Reason

# The spec's ``names`` keys by catalogue locale.
_NAME_LOCALES = {"en": "en", "ru": "ru", "zh_Hans": "zh"}

_BACKGROUNDS = {
    "white": N_("spec.color.white"),
    "off-white": N_("spec.color.off_white"),
    "light-grey": N_("spec.color.light_grey"),
    "light-blue": N_("spec.color.light_blue"),
    "blue": N_("spec.color.blue"),
    "red": N_("spec.color.red"),
    OTHER_COLOUR: N_("spec.color.other"),  # no named colour is near the measured one
}

# What each rule checks, as the "not checked" list names it.
_KINDS = {
    RuleKind.HEAD: N_("spec.kind.head"),
    RuleKind.EYES: N_("spec.kind.eyes"),
    RuleKind.TOP_MARGIN: N_("spec.kind.top_margin"),
    RuleKind.ASPECT: N_("spec.kind.aspect"),
    RuleKind.PIXELS: N_("spec.kind.pixels"),
    RuleKind.KB: N_("spec.kind.kb"),
    RuleKind.FORMAT: N_("spec.kind.format"),
    RuleKind.BACKGROUND: N_("spec.kind.background"),
    RuleKind.GLASSES: N_("spec.kind.glasses"),
    RuleKind.HAT: N_("spec.kind.hat"),
}

# A failed ranged rule as "<name> <value>, needs <bound>"; per axis where it has one.
_RANGED_NAMES = {
    (RuleKind.HEAD, None): N_("spec.rule.head"),
    (RuleKind.EYES, None): N_("spec.rule.eyes"),
    (RuleKind.TOP_MARGIN, None): N_("spec.rule.top_margin"),
    (RuleKind.PIXELS, "width"): N_("spec.rule.pixel_width"),
    (RuleKind.PIXELS, "height"): N_("spec.rule.pixel_height"),
    (RuleKind.KB, None): N_("spec.rule.kb"),
}

_CROP = {
    CropReason.OK: N_("spec.crop.ok"),
    CropReason.HEAD_NEAR_EDGE: N_("spec.crop.near_edge"),
    CropReason.HEAD_PROPORTIONS: N_("spec.crop.proportions"),
    CropReason.TOO_FEW_PIXELS: N_("spec.crop.too_few_pixels"),
}


def flag(alpha2: str) -> str:
    """The flag emoji of a two-letter code (``eu`` has one too)."""
    if len(alpha2) != 2 or not alpha2.isalpha():
        return ""
    return "".join(chr(0x1F1E6 + ord(c) - ord("a")) for c in alpha2.lower())


def spec_name(spec: Spec) -> str:
    """The document's name in the user's language, as plain text (escape it in HTML)."""
    return spec.name(_NAME_LOCALES.get(get_i18n().current_locale, "en"))


def _bold_name(spec: Spec) -> Html:
    return Html("<b>" + escape(spec_name(spec)) + "</b>")


def _number(value: float) -> str:
    """One decimal, none when it is whole: "22.1", "240", "240.4"."""
    if math.isinf(value):
        return "∞"
    value = round(float(value), 1)
    if value.is_integer():
        return str(int(value))
    return f"{value:.1f}"


# The smallest step each unit is shown in (a share is shown as a percentage with a decimal).
_STEPS = {RuleUnit.MM: 0.1, RuleUnit.KB: 0.1, RuleUnit.PX: 1.0, RuleUnit.SHARE: 0.001}


def away_from(value: float, bound: Range, step: float) -> float:
    """``value`` rounded to ``step``; a value outside ``bound`` that would round onto (or
    into) it goes a step further out, so that it never reads as passing: 240.4 KB over a
    240 KB limit shows as 240.4, 240.02 KB as 240.1, not 240."""
    shown = round(value / step) * step
    if value > bound.high and shown <= bound.high:  # the first step past the bound
        return (math.floor(round(bound.high / step, 6)) + 1) * step
    if value < bound.low and shown >= bound.low:
        return (math.ceil(round(bound.low / step, 6)) - 1) * step
    return shown


def _with_unit(value: float, unit: RuleUnit) -> str:
    """A value in the rule's unit: "22.1 mm", "240.4 KB", "68%"."""
    if unit is RuleUnit.MM:
        return fill(_("spec.unit.mm"), n=_number(value))
    if unit is RuleUnit.PX:
        return fill(_("spec.unit.px"), n=_number(round(value)))
    if unit is RuleUnit.KB:
        return fill(_("spec.unit.kb"), n=_number(value))
    if unit is RuleUnit.SHARE:
        return fill(_("spec.unit.share"), n=_number(round(value * 100, 1)))
    return escape(fmt(value))


def _bound(bound: Range, unit: RuleUnit) -> str:
    """ "25–35 mm", "at least 600 px", "at most 240 KB"."""
    if math.isinf(bound.high):
        return fill(_("spec.bound.at_least"), low=Html(_with_unit(bound.low, unit)))
    if bound.low <= 0:
        return fill(_("spec.bound.at_most"), high=Html(_with_unit(bound.high, unit)))
    if bound.low == bound.high:
        return _with_unit(bound.low, unit)
    low = _number(round(bound.low * 100, 1) if unit is RuleUnit.SHARE else bound.low)
    return fill(_("spec.bound.between"), low=low, high=Html(_with_unit(bound.high, unit)))


def _either(items: list[str]) -> str:
    """ "white or off-white": the items (already HTML) joined as alternatives."""
    if len(items) <= 1:
        return "".join(items)
    return fill(_("spec.list.or"), items=Html(", ".join(items[:-1])), last=Html(items[-1]))


def _color(name: str) -> str:
    return _(_BACKGROUNDS[name]) if name in _BACKGROUNDS else escape(name)


def size_text(spec: Spec) -> str:
    """The photo's size: "51×51 mm", "600×600 px", or "" when the spec gives none."""
    if spec.width_mm is not None and spec.height_mm is not None:
        return fill(_("values.mm"), w=_span(spec.width_mm), h=_span(spec.height_mm))
    if spec.width_px is not None and spec.height_px is not None:
        return fill(_("values.pixels"), w=_span(spec.width_px), h=_span(spec.height_px))
    return ""


def _span(bound: Range) -> str:
    if bound.low == bound.high:
        return _number(bound.low)
    if math.isinf(bound.high):
        return _number(bound.low) + "+"
    return f"{_number(bound.low)}–{_number(bound.high)}"


def caveat_text(spec: Spec) -> str:
    return _("spec.caveat") if spec.confidence is Confidence.LOW else ""


def summary_lines(spec: Spec) -> list[str]:
    """What /spec says of the chosen spec: name, size, the confidence caveat."""
    lines = [fill(_("spec.current"), name=_bold_name(spec))]
    size = size_text(spec)
    if size:
        lines.append(fill(_("spec.size"), size=Html(size)))
    caveat = caveat_text(spec)
    if caveat:
        lines.append(caveat)
    return lines


def spec_text(spec: Spec | None) -> str:
    """The /spec answer: the current choice and how to change it."""
    lines = summary_lines(spec) if spec is not None else [_("spec.none")]
    lines.append("")
    lines.append(_("spec.choose"))
    return "\n".join(lines)


def set_text(spec: Spec | None) -> str:
    if spec is None:
        return _("spec.set.generic")
    lines = [fill(_("spec.set"), name=_bold_name(spec))]
    size = size_text(spec)
    if size:
        lines.append(fill(_("spec.size"), size=Html(size)))
    caveat = caveat_text(spec)
    if caveat:
        lines.append(caveat)
    return "\n".join(lines)


def unknown_text(error: UnknownSpec) -> str:
    text = fill(_("spec.unknown"), code=error.code.strip()[:64])
    if error.suggestions:
        commands = ", ".join("/spec " + escape(code) for code in error.suggestions[:3])
        text += "\n" + fill(_("spec.unknown.suggest"), suggestions=Html(commands))
    return text


def office_text(spec: Spec) -> str:
    """An office spec: why there is nothing to check, and that the country has others."""
    lines = [fill(_("spec.office.named"), name=_bold_name(spec))]
    if spec.office_reason:
        lines.append("<i>" + escape(spec.office_reason) + "</i>")
    lines.append(_("spec.office.others"))
    return "\n".join(lines)


def country_text(alpha2: str) -> str:
    return fill(_("spec.country"), country=(flag(alpha2) + " " + alpha2.upper()).strip())


def offer_text() -> str:
    return _("spec.offer")


# --- a check judged against a spec ----------------------------------------------------------


def judgement_lines(judgement: Judgement) -> list[str]:
    """The failed and doubtful spec rules, one line each, then notes and what was not checked."""
    spec = judgement.spec
    lines: list[str] = []
    for rule in judgement.rules:
        if rule.state is RuleState.FAILED:
            lines.append("• " + _failed(rule, judgement))
        elif rule.state is RuleState.WARNING:
            lines.append("• " + _warning(rule, spec))
    if judgement.aspect_matches is False and judgement.crop is not None:
        lines.append(_crop_text(judgement.crop))
    if any(rule.allows_hair and rule.value is not None for rule in judgement.rules):
        lines.append(_("spec.hair_allowance"))
    unchecked = list(
        dict.fromkeys(
            _(_KINDS[rule.kind]) for rule in judgement.rules if rule.state is RuleState.NOT_CHECKED
        )
    )
    if unchecked:
        lines.append(fill(_("spec.not_checked"), rules=Html(", ".join(unchecked))))
    caveat = caveat_text(spec)
    if caveat:
        lines.append(caveat)
    return lines


def _warning(rule: SpecRule, spec: Spec) -> str:
    """A doubtful rule: glasses the offline engine only estimated (``rule.estimated``), or
    glasses the document allows only when they cannot be removed."""
    if rule.estimated:
        if spec.glasses is GlassesRule.BANNED:
            return _("spec.rule.glasses_estimated")
        return _("spec.rule.glasses_estimated_unremovable")
    return _("spec.rule.glasses_warning")


def title_text(judgement: Judgement) -> str:
    spec = judgement.spec
    title = fill(_("check.spec.title"), name=_bold_name(spec))
    size = size_text(spec)
    return title + (" · " + size if size else "")


def _failed(rule: SpecRule, judgement: Judgement) -> str:
    if rule.kind is RuleKind.ASPECT:
        return _aspect_text(rule, judgement.spec)
    if rule.kind is RuleKind.BACKGROUND:
        return fill(
            _("spec.rule.background"),
            seen=Html(_color(rule.seen) if rule.seen else "—"),
            allowed=Html(_either([_color(name) for name in rule.allowed])),
        )
    if rule.kind is RuleKind.FORMAT:
        return fill(
            _("spec.rule.format"),
            seen=rule.seen or "—",
            allowed=Html(_either([escape(f) for f in rule.allowed])),
        )
    if rule.kind is RuleKind.GLASSES:
        if rule.seen == "dark_glasses":
            return _("spec.rule.dark_glasses")
        return _("spec.rule.glasses")
    if rule.kind is RuleKind.HAT:
        return _("spec.rule.hat")
    name = _RANGED_NAMES.get((rule.kind, rule.axis.value if rule.axis else None))
    if name is None or rule.value is None or rule.bound is None:
        return escape(rule.kind.value)
    step = _STEPS.get(rule.unit)
    value = rule.value if step is None else away_from(rule.value, rule.bound, step)
    return fill(
        _(name),
        value=Html(_with_unit(value, rule.unit)),
        bound=Html(_bound(authority_bound(rule, judgement.spec), rule.unit)),
    )


def authority_bound(rule: SpecRule, spec: Spec) -> Range:
    """The bound as the authority writes it: for a spec measured to the skull the judge
    widened the head's and the top margin's bound by a hair allowance (``allows_hair``),
    which the reply says in words (``spec.hair_allowance``) rather than in the numbers."""
    bound = rule.bound
    assert bound is not None
    if not rule.allows_hair:
        return bound
    if rule.kind is RuleKind.HEAD:
        given = spec.head_mm if rule.unit is RuleUnit.MM else spec.head_share
    elif rule.kind is RuleKind.TOP_MARGIN and rule.unit is RuleUnit.MM:
        given = spec.top_margin_mm
    else:
        given = None
    return bound if given is None else given


def ratio_text(aspect: float) -> str:
    """A width/height ratio as people name it: "3:4", "1:1", "7:9"."""
    best = Fraction(aspect).limit_denominator(10)
    if abs(float(best) - aspect) / aspect > 0.01:
        return fmt(aspect)
    return f"{best.numerator}:{best.denominator}"


def _aspect_text(rule: SpecRule, spec: Spec) -> str:
    aspect = spec.aspect or 1.0
    if abs(aspect - 1) < 0.01:
        shape = _("spec.shape.square")
    elif spec.medium is Medium.PRINT and size_text(spec):
        shape = size_text(spec)
    else:
        shape = escape(ratio_text(aspect))
    photo = escape(ratio_text(rule.value)) if rule.value else "—"
    return fill(_("spec.rule.aspect"), photo=photo, name=_bold_name(spec), shape=Html(shape))


def _crop_text(crop: CropPlan) -> str:
    if crop.reason is CropReason.TOO_FEW_PIXELS and crop.needed_px is not None:
        w, h = crop.needed_px
        return fill(_(_CROP[crop.reason]), w=w, h=h)
    return _(_CROP[crop.reason])


# --- "Make the file": the made file's caption, and why it could not be made ------------------

_CANNOT_MAKE = {
    Reason.OFFICE: N_("make.cannot.office"),
    Reason.NOT_PRINTABLE: N_("make.cannot.not_printable"),
    Reason.NOT_MEASURED: N_("make.cannot.not_measured"),
    Reason.HEAD_PROPORTIONS: N_("make.cannot.head_proportions"),
    Reason.HEAD_NEAR_EDGE: N_("make.cannot.head_near_edge"),
    Reason.TOO_FEW_PIXELS: N_("make.cannot.too_few_pixels"),
    Reason.FILE_TOO_SMALL: N_("make.cannot.file_too_small"),
    Reason.FILE_TOO_LARGE: N_("make.cannot.file_too_large"),
}

# Each edge as "the top edge (13 px missing)", in the case the sentence around it needs.
_EDGES = {
    Edge.LEFT: N_("make.edge.left"),
    Edge.TOP: N_("make.edge.top"),
    Edge.RIGHT: N_("make.edge.right"),
    Edge.BOTTOM: N_("make.edge.bottom"),
}


def made_file_name(spec: Spec, made: MadePhoto) -> str:
    """ "us-passport.jpg", "us-visa.png"."""
    return f"{spec.id}.{'png' if made.format == 'PNG' else 'jpg'}"


def sheet_file_name(spec: Spec) -> str:
    return f"{spec.id}-sheet.jpg"


def made_caption(made: MadePhoto, spec: Spec) -> str:
    """The made file's size (mm at dpi for a print, px and KB for an upload), and that
    ICAO's proportions sized the head when the document gives no head size."""
    kb = _number(made.kb)
    if spec.width_mm is not None and spec.height_mm is not None and made.dpi is not None:
        text = fill(
            _("make.caption.print"),
            name=_bold_name(spec),
            w=_number(spec.width_mm.middle),
            h=_number(spec.height_mm.middle),
            dpi=made.dpi,
            pw=made.width,
            ph=made.height,
            kb=kb,
        )
    else:
        text = fill(
            _("make.caption.digital"), name=_bold_name(spec), w=made.width, h=made.height, kb=kb
        )
    if made.icao_proportions:
        text += "\n" + _("make.icao")
    return text


def sheet_caption(spec: Spec, copies: int) -> str:
    return fill(_("make.sheet.caption"), name=_bold_name(spec), copies=copies, dpi=SHEET_DPI)


def cannot_make_text(error: CannotMake) -> str:
    """Why the file could not be made, with the numbers, and what to send instead."""
    sentence = _(_CANNOT_MAKE[error.reason])
    if error.reason is Reason.NOT_MEASURED:
        from bot.render.check import FIELD_NAMES  # check imports this module

        names = [_(FIELD_NAMES[n]) if n in FIELD_NAMES else escape(n) for n in error.missing]
        return fill(sentence, fields=Html(", ".join(names) or "—"))
    if error.reason is Reason.HEAD_NEAR_EDGE:
        edges = [
            fill(_(_EDGES[edge]), px=px) for edge, px in error.outside.items() if edge in _EDGES
        ]
        return fill(sentence, edges=Html(", ".join(edges) or "—"))
    if error.reason is Reason.TOO_FEW_PIXELS:
        need_w, need_h = error.needed_px or (0, 0)
        have_w, have_h = error.have_px or (0, 0)
        return fill(sentence, have_w=have_w, have_h=have_h, w=need_w, h=need_h)
    if error.reason in (Reason.FILE_TOO_SMALL, Reason.FILE_TOO_LARGE):
        bound = error.kb_range
        kb = error.kb or 0.0
        return fill(
            sentence,
            kb=_number(kb if bound is None else away_from(kb, bound, _STEPS[RuleUnit.KB])),
            low=_number(bound.low) if bound is not None else "—",
            high=_number(bound.high) if bound is not None else "—",
        )
    return sentence
