"""Document photo specs: what a passport, visa or ID photo must be, document by document.

The figures live in one data file, ``specs.toml`` beside this module, each spec with
its sources, the date they were checked and a confidence; this module reads it into
frozen dataclasses once and finds a spec by id, alias or country. Nothing here judges a
photo (``services.specs.judge`` does): a spec is what the authority says, in its units.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Any


class Medium(StrEnum):
    PRINT = "print"  # a paper photo of a given size in mm
    DIGITAL = "digital"  # an uploaded file: pixel and byte limits
    OFFICE = "office"  # taken at the office or by a registered photographer: nothing to check


class Crown(StrEnum):
    """Where the head's top is measured for its height."""

    HAIR = "hair"  # the top of the hair
    SKULL = "skull"  # the top of the skull, hair disregarded


class GlassesRule(StrEnum):
    BANNED = "banned"
    UNREMOVABLE_ONLY = "unremovable_only"  # allowed only when they cannot be removed
    ALLOWED = "allowed"


class Confidence(StrEnum):
    HIGH = "high"  # official sources that agree
    MEDIUM = "medium"  # official but old or partial, or consistent secondary sources
    LOW = "low"  # secondary sources only, or sources that disagree


class Tier(StrEnum):
    OFFICIAL = "official"
    OFFICIAL_COPY = "official_copy"
    SECONDARY = "secondary"


@dataclass(frozen=True, slots=True)
class Range:
    """Inclusive bounds; ``low == high`` for an exact figure, ``high`` infinite (``inf`` in
    the data file) for a bare minimum such as "at least 600 px"."""

    low: float
    high: float

    @property
    def bounded(self) -> bool:
        return math.isfinite(self.high)

    @property
    def middle(self) -> float:
        """The aim within the bounds; a bare minimum's is the minimum itself."""
        return (self.low + self.high) / 2 if self.bounded else self.low

    def holds(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True, slots=True)
class Source:
    url: str
    tier: Tier
    supports: str


@dataclass(frozen=True, slots=True)
class Spec:
    """One document's photo rules. ``None`` means the authority does not say."""

    id: str
    aliases: tuple[str, ...]
    country: str  # ISO 3166-1 alpha-2 in lower case; "" for ICAO
    names: Mapping[str, str]  # locale -> the document's name ("en", "ru", "zh")
    main: bool  # the country's main passport spec, what a bare country code means
    medium: Medium
    width_mm: Range | None
    height_mm: Range | None
    dpi: int | None  # the resolution a print is made at (and a scan must reach)
    width_px: Range | None
    height_px: Range | None
    head_mm: Range | None  # chin to crown
    head_share: Range | None  # chin to crown, as a share of the photo's height
    crown: Crown
    eyes_mm: Range | None  # eye line above the bottom edge
    eyes_share: Range | None  # eye line above the bottom edge, share of the height
    top_margin_mm: Range | None  # crown to the top edge
    backgrounds: tuple[str, ...]  # colour names of ``BACKGROUNDS``
    glasses: GlassesRule
    crop_allowed: bool
    formats: tuple[str, ...]  # Pillow format names for uploads: "JPEG", "PNG"
    kb: Range | None  # file size in KB (1024 bytes) for uploads
    office_reason: str | None  # why a photo cannot be checked here (``Medium.OFFICE``)
    confidence: Confidence
    checked: date
    sources: tuple[Source, ...]
    notes: tuple[str, ...]  # what the authority adds that is not measured (English)
    shape: float | None = None  # width over height where the authority states it outright

    @property
    def aspect(self) -> float | None:
        """Width over height: as stated, of the print, or of the pixel bounds' middle."""
        if self.shape is not None:
            return self.shape
        if self.width_mm is not None and self.height_mm is not None:
            return self.width_mm.middle / self.height_mm.middle
        if (
            self.width_px is not None
            and self.height_px is not None
            and self.width_px.bounded
            and self.height_px.bounded
        ):  # bare minima ("at least 600 x 750 px") ask for no shape
            return self.width_px.middle / self.height_px.middle
        return None

    def name(self, locale: str) -> str:
        return self.names.get(locale) or self.names["en"]


# Reference colours of the background names a spec may allow (sRGB).
BACKGROUNDS: Mapping[str, tuple[int, int, int]] = {
    "white": (255, 255, 255),
    "off-white": (245, 245, 240),
    "light-grey": (220, 220, 220),
    "light-blue": (200, 225, 245),
    "blue": (67, 142, 219),
    "red": (220, 30, 40),
}


class UnknownSpec(LookupError):
    """No spec has that id, alias or country; ``suggestions`` are the closest ids."""

    def __init__(self, code: str, suggestions: tuple[str, ...]) -> None:
        super().__init__(code)
        self.code = code
        self.suggestions = suggestions


def _range(raw: Any) -> Range | None:
    if raw is None:
        return None
    if isinstance(raw, int | float):
        return Range(float(raw), float(raw))
    low, high = raw
    return Range(float(low), float(high))


def _spec(raw: Mapping[str, Any]) -> Spec:
    return Spec(
        id=raw["id"],
        aliases=tuple(raw.get("aliases", ())),
        country=raw.get("country", ""),
        names=dict(raw["names"]),
        main=bool(raw.get("main", False)),
        medium=Medium(raw["medium"]),
        width_mm=_range(raw.get("width_mm")),
        height_mm=_range(raw.get("height_mm")),
        dpi=raw.get("dpi"),
        width_px=_range(raw.get("width_px")),
        height_px=_range(raw.get("height_px")),
        head_mm=_range(raw.get("head_mm")),
        head_share=_range(raw.get("head_share")),
        crown=Crown(raw.get("crown", Crown.HAIR)),
        eyes_mm=_range(raw.get("eyes_mm")),
        eyes_share=_range(raw.get("eyes_share")),
        top_margin_mm=_range(raw.get("top_margin_mm")),
        backgrounds=tuple(raw.get("backgrounds", ())),
        glasses=GlassesRule(raw.get("glasses", GlassesRule.ALLOWED)),
        crop_allowed=bool(raw.get("crop_allowed", True)),
        formats=tuple(raw.get("formats", ())),
        kb=_range(raw.get("kb")),
        office_reason=raw.get("office_reason"),
        confidence=Confidence(raw["confidence"]),
        checked=raw["checked"],
        sources=tuple(
            Source(s["url"], Tier(s["tier"]), s["supports"]) for s in raw.get("sources", ())
        ),
        notes=tuple(raw.get("notes", ())),
        shape=raw.get("aspect"),
    )


@dataclass(frozen=True, slots=True)
class Catalogue:
    specs: tuple[Spec, ...]
    countries: Mapping[str, tuple[str, ...]]  # alpha-2 -> its names, any language, lower case

    def get(self, code: str) -> Spec:
        """A spec by id, alias, country code or country name, in any case."""
        key = " ".join(code.strip().lower().replace("_", "-").split())
        for spec in self.specs:
            if key == spec.id or key in spec.aliases:
                return spec
        country = self.country(key)
        if country is not None:
            for spec in self.specs:
                if spec.country == country and spec.main:
                    return spec
        raise UnknownSpec(code, self.closest(key))

    def country(self, key: str) -> str | None:
        """The alpha-2 code a country code or name stands for (``uk`` is ``gb``)."""
        for alpha2, names in self.countries.items():
            if key == alpha2 or key in names:
                return alpha2
        return None

    def of_country(self, alpha2: str) -> tuple[Spec, ...]:
        return tuple(spec for spec in self.specs if spec.country == alpha2)

    def closest(self, key: str, count: int = 3) -> tuple[str, ...]:
        return tuple(difflib.get_close_matches(key, [s.id for s in self.specs], n=count))


@cache
def catalogue() -> Catalogue:
    """The specs of ``specs.toml``, read once per process."""
    raw = tomllib.loads(resources.files(__package__).joinpath("specs.toml").read_text("utf-8"))
    countries = {
        alpha2: tuple(name.lower() for name in names)
        for alpha2, names in raw.get("countries", {}).items()
    }
    return Catalogue(tuple(_spec(s) for s in raw["spec"]), countries)
