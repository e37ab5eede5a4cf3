"""The project's table of document photo specs, ``services/specs/specs.toml``.

Two kinds of test. The first checks the table as a whole: it loads, ids and aliases are
unique, every spec carries its sources, a date and what its medium needs, every country
has exactly one main spec, and the codes the product promises resolve. The second pins
the key figures: every number below is a literal copied from the source named in the
comment above it, read back through the loaded ``Spec`` objects, so moving a figure in
the data file by one millimetre, pixel, kilobyte or hundredth turns a test red.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

import pytest
from PIL import Image

from services.specs import (
    BACKGROUNDS,
    Catalogue,
    Confidence,
    Crown,
    GlassesRule,
    Medium,
    Range,
    Spec,
    Tier,
    UnknownSpec,
    catalogue,
)

CHECKED = dt.date(2026, 11, 29)

# The codes the product promises to resolve to a spec of that very id.
PROMISED = [
    "icao",
    "us-passport",
    "us-visa",
    "us-dv",
    "uk-passport",
    "uk-passport-digital",
    "schengen",
    "de-passport",
    "cn-passport",
    "cn-visa",
    "cn-visa-online",
    "ru-passport",
    "ru-foreign-passport",
    "in-passport",
    "in-evisa",
    "jp-passport",
    "kr-passport",
    "ca-passport",
    "au-passport",
    "nz-passport",
]

# Specs whose id is not ``<country>-<document>``: the baseline and the Schengen area.
NOT_COUNTRY_SHAPED = {"icao", "schengen"}

# Where an id's prefix is not the alpha-2 code: the UK's documents are ``uk-...``.
ID_PREFIX = {"gb": "uk"}

# ICAO leaves the paper size to the issuing state: the baseline print carries no size.
PRINT_WITHOUT_SIZE = {"icao"}

# Pillow format names an upload may be checked against ("HEIF" comes from pillow-heif).
PILLOW_FORMATS = {"JPEG", "PNG", "HEIF", "JPEG2000"}


@pytest.fixture(scope="module")
def cat() -> Catalogue:
    return catalogue()


def spec(code: str) -> Spec:
    return catalogue().get(code)


# ------------------------------------------------------------------ the table as a whole


def test_the_file_loads_with_at_least_30_specs(cat: Catalogue) -> None:
    assert len(cat.specs) >= 30


def test_ids_are_unique_lower_case_and_shaped(cat: Catalogue) -> None:
    ids = [s.id for s in cat.specs]
    assert len(ids) == len(set(ids))
    for s in cat.specs:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", s.id), s.id
        if s.id not in NOT_COUNTRY_SHAPED:
            assert s.id.startswith(f"{ID_PREFIX.get(s.country, s.country)}-"), s.id


def test_aliases_are_unique_and_never_another_specs_id(cat: Catalogue) -> None:
    ids = {s.id for s in cat.specs}
    seen: dict[str, str] = {}
    for s in cat.specs:
        for alias in s.aliases:
            # ``Catalogue.get`` lower-cases the code, so an alias must already be lower case.
            assert alias == alias.lower().strip(), alias
            assert alias not in ids, f"{s.id}: alias {alias!r} is a spec id"
            assert alias not in seen, f"{alias!r} is an alias of {seen.get(alias)} and {s.id}"
            seen[alias] = s.id


def test_every_spec_has_names_in_three_languages(cat: Catalogue) -> None:
    for s in cat.specs:
        for locale in ("en", "ru", "zh"):
            assert s.names.get(locale, "").strip(), f"{s.id}: no {locale} name"


def test_every_spec_has_sources(cat: Catalogue) -> None:
    for s in cat.specs:
        assert s.sources, s.id
        for source in s.sources:
            assert source.url.startswith(("http://", "https://")), (s.id, source.url)
            assert isinstance(source.tier, Tier)
            assert source.supports.strip(), (s.id, source.url)


def test_high_confidence_rests_on_official_sources(cat: Catalogue) -> None:
    for s in cat.specs:
        if s.confidence is Confidence.HIGH:
            tiers = {source.tier for source in s.sources}
            assert tiers & {Tier.OFFICIAL, Tier.OFFICIAL_COPY}, s.id


def test_every_checked_is_a_date(cat: Catalogue) -> None:
    for s in cat.specs:
        # A TOML date, not a datetime (a datetime is also a date).
        assert type(s.checked) is dt.date, s.id
        assert s.checked == CHECKED, s.id


def test_every_print_spec_has_its_size_and_a_dpi(cat: Catalogue) -> None:
    for s in cat.specs:
        if s.medium is Medium.PRINT:
            assert s.dpi is not None and s.dpi >= 300, s.id
            if s.id not in PRINT_WITHOUT_SIZE:
                assert s.width_mm is not None and s.height_mm is not None, s.id


def test_every_digital_spec_has_pixel_bounds_or_a_kb_limit(cat: Catalogue) -> None:
    for s in cat.specs:
        if s.medium is Medium.DIGITAL:
            has_pixels = s.width_px is not None and s.height_px is not None
            assert has_pixels or s.kb is not None, s.id


def test_office_specs_and_only_they_have_a_reason(cat: Catalogue) -> None:
    for s in cat.specs:
        if s.medium is Medium.OFFICE:
            assert s.office_reason and s.office_reason.strip(), s.id
        else:
            assert s.office_reason is None, s.id


def test_backgrounds_are_known_colours(cat: Catalogue) -> None:
    for s in cat.specs:
        assert len(s.backgrounds) == len(set(s.backgrounds)), s.id
        for name in s.backgrounds:
            assert name in BACKGROUNDS, (s.id, name)


def test_formats_are_pillow_names(cat: Catalogue) -> None:
    Image.init()
    for s in cat.specs:
        for fmt in s.formats:
            assert fmt in PILLOW_FORMATS, (s.id, fmt)
            if fmt != "HEIF":  # registered by pillow-heif, not by Pillow itself
                assert fmt in Image.OPEN, (s.id, fmt)


def test_ranges_are_ordered_and_shares_are_fractions(cat: Catalogue) -> None:
    for s in cat.specs:
        ranges: dict[str, Range | None] = {
            "width_mm": s.width_mm,
            "height_mm": s.height_mm,
            "width_px": s.width_px,
            "height_px": s.height_px,
            "head_mm": s.head_mm,
            "head_share": s.head_share,
            "eyes_mm": s.eyes_mm,
            "eyes_share": s.eyes_share,
            "top_margin_mm": s.top_margin_mm,
            "kb": s.kb,
        }
        for field, value in ranges.items():
            if value is not None:
                assert 0 <= value.low <= value.high, (s.id, field)
        for share in (s.head_share, s.eyes_share):
            if share is not None:
                assert share.high <= 1, s.id  # a fraction, not percent
        if s.height_mm is not None:
            for part in (s.head_mm, s.eyes_mm, s.top_margin_mm):
                if part is not None:
                    assert part.high < s.height_mm.low, s.id


def test_enums_are_parsed(cat: Catalogue) -> None:
    for s in cat.specs:
        assert isinstance(s.medium, Medium)
        assert isinstance(s.crown, Crown)
        assert isinstance(s.glasses, GlassesRule)
        assert isinstance(s.confidence, Confidence)


def test_countries_table_covers_every_spec_country(cat: Catalogue) -> None:
    with_specs = {s.country for s in cat.specs if s.country}
    assert with_specs <= set(cat.countries), with_specs - set(cat.countries)
    assert set(cat.countries) <= with_specs, set(cat.countries) - with_specs
    for alpha2, names in cat.countries.items():
        assert re.fullmatch(r"[a-z]{2}", alpha2), alpha2
        assert names, alpha2


def test_country_names_are_unambiguous(cat: Catalogue) -> None:
    codes = {s.id for s in cat.specs} | {a for s in cat.specs for a in s.aliases}
    owner: dict[str, str] = {}
    for alpha2, names in cat.countries.items():
        for name in names:
            assert name not in cat.countries, f"{name!r} of {alpha2} is a country code"
            assert name not in codes, f"{name!r} of {alpha2} is a spec id or alias"
            assert name not in owner, f"{name!r} names both {owner.get(name)} and {alpha2}"
            owner[name] = alpha2


def test_exactly_one_main_spec_per_country(cat: Catalogue) -> None:
    for alpha2 in {s.country for s in cat.specs if s.country}:
        mains = [s.id for s in cat.of_country(alpha2) if s.main]
        assert len(mains) == 1, (alpha2, mains)
    assert not [s.id for s in cat.specs if not s.country and s.main]


def test_a_countrys_main_spec_is_its_passport_when_it_has_one(cat: Catalogue) -> None:
    for alpha2 in {s.country for s in cat.specs if s.country}:
        specs = cat.of_country(alpha2)
        (main,) = [s for s in specs if s.main]
        if any("passport" in s.id for s in specs):
            assert "passport" in main.id, (alpha2, main.id)


# ------------------------------------------------------------------ finding a spec


@pytest.mark.parametrize("code", PROMISED)
def test_the_promised_codes_resolve(code: str, cat: Catalogue) -> None:
    assert cat.get(code).id == code


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        # the research file's ids and the usual variants
        ("icao-9303", "icao"),
        ("us-visa-ds160", "us-visa"),
        ("ds160", "us-visa"),
        ("DS-160", "us-visa"),
        ("us-dv-lottery", "us-dv"),
        ("uk-passport-print", "uk-passport"),
        ("schengen-visa", "schengen"),
        ("de-passport-id", "de-passport"),
        ("ru-internal-passport", "ru-passport"),
        ("in-passport-abroad", "in-passport"),
        ("nz-passport-digital", "nz-passport"),
        ("ca-visa-ircc", "ca-visa"),
        ("  US_Visa  ", "us-visa"),
    ],
)
def test_aliases_resolve(code: str, expected: str, cat: Catalogue) -> None:
    assert cat.get(code).id == expected


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("us", "us-passport"),
        ("US", "us-passport"),
        ("usa", "us-passport"),
        ("United States", "us-passport"),
        ("сша", "us-passport"),
        ("США", "us-passport"),
        ("美国", "us-passport"),
        ("uk", "uk-passport"),
        ("gb", "uk-passport"),
        ("Great Britain", "uk-passport"),
        ("великобритания", "uk-passport"),
        ("英国", "uk-passport"),
        ("de", "de-passport"),
        ("германия", "de-passport"),
        ("Germany", "de-passport"),
        ("德国", "de-passport"),
        ("cn", "cn-passport"),
        ("Китай", "cn-passport"),
        ("中国", "cn-passport"),
        ("Россия", "ru-passport"),
        ("ru", "ru-passport"),
        ("india", "in-passport"),
        ("日本", "jp-passport"),
        ("eu", "schengen"),
        ("шенген", "schengen"),
        ("申根", "schengen"),
        ("mx", "mx-passport"),
    ],
)
def test_countries_resolve_by_code_and_name(code: str, expected: str, cat: Catalogue) -> None:
    assert cat.get(code).id == expected


def test_an_unknown_code_raises_with_close_suggestions(cat: Catalogue) -> None:
    with pytest.raises(UnknownSpec) as caught:
        cat.get("us-pasport")
    assert caught.value.code == "us-pasport"
    assert "us-passport" in caught.value.suggestions


def test_nonsense_raises_unknown_spec(cat: Catalogue) -> None:
    with pytest.raises(UnknownSpec):
        cat.get("atlantis")


# ------------------------------------------------------------------ the key figures

# (spec id, field, expected value as loaded). Each group is copied from the source URL in
# the comment above it; the data file lists the same URLs in the spec's ``sources``.
FIGURES: list[tuple[str, str, Any]] = [
    # https://qastack.id/travel/11534/why-are-you-now-required-not-to-smile-in-passport-photos
    # (ICAO guideline list): chin to crown 70-80% of the height, hair ignored; no paper size.
    ("icao", "head_share", Range(0.70, 0.80)),
    ("icao", "crown", Crown.SKULL),
    ("icao", "width_mm", None),
    ("icao", "height_mm", None),
    # https://bg.usembassy.gov/visas/nonimmigrant-visas/photo-requirements/ : 2 x 2 in,
    # head 25-35 mm, white or off-white; https://de.usembassy.gov/u-s-citizen-services/
    # passports/passport-photos/ : eyes 28-35 mm from the bottom, no glasses since 2016;
    # https://fam.state.gov/fam/09FAM/09FAM030306.html : head measured to the top of the hair.
    ("us-passport", "width_mm", Range(51, 51)),
    ("us-passport", "height_mm", Range(51, 51)),
    ("us-passport", "head_mm", Range(25, 35)),
    ("us-passport", "eyes_mm", Range(28, 35)),
    ("us-passport", "crown", Crown.HAIR),
    ("us-passport", "glasses", GlassesRule.BANNED),
    ("us-passport", "backgrounds", ("white", "off-white")),
    ("us-passport", "medium", Medium.PRINT),
    # https://yapa.photo/us/guides/online-passport-renewal-photo-requirements/ : 54 KB-10 MB.
    ("us-passport-online", "kb", Range(54, 10240)),
    ("us-passport-online", "glasses", GlassesRule.BANNED),
    # http://france.usembassy.gov/niv/photo.html : 600 x 600 to 1200 x 1200 px square,
    # JPEG, at most 240 KB; https://www.usgcls.com/manage/photo_req.asp : head 50-69%,
    # eyes 56-69% from the bottom.
    ("us-visa", "width_px", Range(600, 1200)),
    ("us-visa", "height_px", Range(600, 1200)),
    ("us-visa", "kb", Range(0, 240)),
    ("us-visa", "formats", ("JPEG",)),
    ("us-visa", "head_share", Range(0.50, 0.69)),
    ("us-visa", "eyes_share", Range(0.56, 0.69)),
    ("us-visa", "glasses", GlassesRule.BANNED),
    ("us-visa", "medium", Medium.DIGITAL),
    # http://www.dvlotteryinstructions.com/dv2013/dv2013-technical-specifications.php :
    # JPEG, at most 240 KB, at least 600 x 600 (no maximum, so no pixel range).
    ("us-dv", "kb", Range(0, 240)),
    ("us-dv", "formats", ("JPEG",)),
    ("us-dv", "width_px", Range(600, math.inf)),
    ("us-dv", "head_share", Range(0.50, 0.69)),
    ("us-dv", "eyes_share", Range(0.56, 0.69)),
    ("us-dv", "glasses", GlassesRule.BANNED),
    # https://gov.tc/passports/photos : 45 x 35 mm, crown to chin 29-34 mm, cream or
    # light grey; https://www.express.co.uk/travel/articles/993700/ : glasses only if
    # they cannot be taken off.
    ("uk-passport", "width_mm", Range(35, 35)),
    ("uk-passport", "height_mm", Range(45, 45)),
    ("uk-passport", "head_mm", Range(29, 34)),
    ("uk-passport", "backgrounds", ("off-white", "light-grey")),
    ("uk-passport", "glasses", GlassesRule.UNREMOVABLE_ONLY),
    # https://medium.com/@paspiclimited/what-are-the-rules-for-digital-passport-photos-354d00f4ff8b
    # (gov.uk copy): 50 KB-10 MB, do not crop.
    ("uk-passport-digital", "crop_allowed", False),
    ("uk-passport-digital", "kb", Range(50, 10240)),
    ("uk-passport-digital", "medium", Medium.DIGITAL),
    # https://riga.diplo.de/lv-lv/service/05-visaeinreise/2718466-2718466 : 45 x 35 mm,
    # face 70-80% = 32-36 mm; https://vietnam.diplo.de/vn-de/service/passbild/1279496 : white.
    ("schengen", "width_mm", Range(35, 35)),
    ("schengen", "height_mm", Range(45, 45)),
    ("schengen", "head_mm", Range(32, 36)),
    ("schengen", "backgrounds", ("white",)),
    ("schengen", "country", "eu"),
    # https://www.nussbaum.de/entdecken/news/digitale-lichtbilder-ab-1-5-2025-2656332 :
    # digital only from 1 May 2025, at the office or by registered photographers.
    ("de-passport", "medium", Medium.OFFICE),
    ("de-passport", "crown", Crown.SKULL),
    # https://bbs.sgcn.org/thread-16277781-3-1.html (PRC embassy FAQ): 33 x 48 mm,
    # head 28-33 mm, crown to top edge 3-5 mm, white.
    ("cn-passport", "width_mm", Range(33, 33)),
    ("cn-passport", "height_mm", Range(48, 48)),
    ("cn-passport", "head_mm", Range(28, 33)),
    ("cn-passport", "top_margin_mm", Range(3, 5)),
    ("cn-passport", "backgrounds", ("white",)),
    # http://www.fmcoprc.gov.hk/eng/fwxx/wgrqz/t1418248.htm : 48 x 33 mm, white or near
    # white (its '20mm to 33mm' head is a typo for the embassy standard's 28-33 mm).
    ("cn-visa", "width_mm", Range(33, 33)),
    ("cn-visa", "height_mm", Range(48, 48)),
    ("cn-visa", "head_mm", Range(28, 33)),
    ("cn-visa", "backgrounds", ("white", "off-white")),
    ("cn-visa", "glasses", GlassesRule.ALLOWED),
    # https://www.kebanyakan.com/mengenal-syarat-foto-visa-china/ : 354 x 472 to
    # 420 x 560 px, JPEG 40-120 KB.
    ("cn-visa-online", "width_px", Range(354, 420)),
    ("cn-visa-online", "height_px", Range(472, 560)),
    ("cn-visa-online", "kb", Range(40, 120)),
    ("cn-visa-online", "formats", ("JPEG",)),
    # https://aif.ru/society/law/mozhno_li_fotografirovatsya_na_pasport_v_golovnom_ubore
    # (2021 MVD regulation): crown to chin at most 80%, free field 5 +/- 1 mm.
    ("ru-passport", "width_mm", Range(35, 35)),
    ("ru-passport", "height_mm", Range(45, 45)),
    ("ru-passport", "head_share", Range(0, 0.80)),
    ("ru-passport", "top_margin_mm", Range(4, 6)),
    ("ru-passport", "glasses", GlassesRule.UNREMOVABLE_ONLY),
    # https://zakonbase.ru/content/part/493747?print=1 (2006 order, Annex 3): colour,
    # 35 x 45 mm; no head size from any official source.
    ("ru-foreign-passport", "width_mm", Range(35, 35)),
    ("ru-foreign-passport", "height_mm", Range(45, 45)),
    ("ru-foreign-passport", "head_mm", None),
    ("ru-foreign-passport", "confidence", Confidence.LOW),
    # https://www.indianembassycopenhagen.gov.in/page/photo-specifications-for-passport/ :
    # 2 x 2 in, face 70-80%, white.
    ("in-passport", "width_mm", Range(51, 51)),
    ("in-passport", "height_mm", Range(51, 51)),
    ("in-passport", "head_share", Range(0.70, 0.80)),
    # https://issuu.com./nutthakorns/docs/vss_image (indianvisaonline manual): JPEG,
    # 10-300 KB, 350 x 350 to 1000 x 1000 px.
    ("in-evisa", "kb", Range(10, 300)),
    ("in-evisa", "width_px", Range(350, 1000)),
    ("in-evisa", "height_px", Range(350, 1000)),
    ("in-evisa", "formats", ("JPEG",)),
    # http://fukuoka-passport.com/photo/ : 45 x 35 mm, crown incl. hair to chin
    # 34 +/- 2 mm, top margin 4 +/- 2 mm.
    ("jp-passport", "width_mm", Range(35, 35)),
    ("jp-passport", "height_mm", Range(45, 45)),
    ("jp-passport", "head_mm", Range(32, 36)),
    ("jp-passport", "top_margin_mm", Range(2, 6)),
    ("jp-passport", "crown", Crown.HAIR),
    ("jp-passport", "backgrounds", ()),
    # https://www.asiavc.ru/japan/photo/ : 4.5 x 4.5 or 3.5 x 4.5 cm, white.
    ("jp-visa", "width_mm", Range(35, 35)),  # one of the two sizes asiavc.ru gives
    ("jp-visa", "height_mm", Range(45, 45)),
    # https://secret-society.tistory.com/285 (MOFA summary): 3.5 x 4.5 cm, 3.2-3.6 cm.
    ("kr-passport", "width_mm", Range(35, 35)),
    ("kr-passport", "height_mm", Range(45, 45)),
    ("kr-passport", "head_mm", Range(32, 36)),
    # http://okja.org/index.php?document_srl=157686&mid=miju_world&page=197 (MOFA 2020):
    # 413 x 531 px, JPG, at most 200 KB.
    ("kr-passport-online", "width_px", Range(413, 413)),
    ("kr-passport-online", "height_px", Range(531, 531)),
    ("kr-passport-online", "kb", Range(0, 200)),
    # https://123passportphoto.com/?country=CA&type=Passport+%28By+photographer+or+studio%29
    # (Passport Canada copy): 50 x 70 mm, 31-36 mm chin to crown.
    ("ca-passport", "width_mm", Range(50, 50)),
    ("ca-passport", "height_mm", Range(70, 70)),
    ("ca-passport", "head_mm", Range(31, 36)),
    ("ca-passport", "glasses", GlassesRule.ALLOWED),
    # https://talentsolutioncanada.com/photo-req/ (IRCC): JPEG/JPEG2000, at most 4 MB.
    ("ca-visa", "kb", Range(0, 4096)),
    ("ca-visa", "formats", ("JPEG", "JPEG2000")),
    # http://whystudiohk.com/... (passports.gov.au copy): 35-40 x 45-50 mm, 32-36 mm,
    # white or light grey; https://www.passports.gov.au/news?k=%2A : no glasses since 2018.
    ("au-passport", "width_mm", Range(35, 40)),
    ("au-passport", "height_mm", Range(45, 50)),
    ("au-passport", "head_mm", Range(32, 36)),
    ("au-passport", "backgrounds", ("white", "light-grey")),
    ("au-passport", "glasses", GlassesRule.BANNED),
    # https://www.passports.govt.nz/Electronic-photo-standards : JPG, 500 KB-10 MB,
    # 900 x 1200 to 4500 x 6000 px.
    ("nz-passport", "width_px", Range(900, 4500)),
    ("nz-passport", "height_px", Range(1200, 6000)),
    ("nz-passport", "kb", Range(500, 10240)),
    ("nz-passport", "formats", ("JPEG",)),
    ("nz-passport", "medium", Medium.DIGITAL),
    # https://www.ica.gov.sg/common/passport-photo-guidelines : 400 x 514 px, JPG/PNG,
    # at most 2 MB, plain white; 35 x 45 mm for prints.
    ("sg-passport", "width_px", Range(400, 400)),
    ("sg-passport", "height_px", Range(514, 514)),
    ("sg-passport", "kb", Range(0, 2048)),
    ("sg-passport", "formats", ("JPEG", "PNG")),
    ("sg-passport-print", "width_mm", Range(35, 35)),
    ("sg-passport-print", "height_mm", Range(45, 45)),
    # https://www.immd.gov.hk/eng/residents/immigration/traveldoc/photorequirements.html :
    # 40 x 50 mm, 32-36 mm, scanner 600 dpi, JPEG at most 5 MB.
    ("hk-passport", "width_mm", Range(40, 40)),
    ("hk-passport", "height_mm", Range(50, 50)),
    ("hk-passport", "head_mm", Range(32, 36)),
    ("hk-passport", "dpi", 600),
    ("hk-passport-digital", "kb", Range(0, 5120)),
    # https://sivaspsikoteknik.com/gerekli-belgeler/biyometrik-fotograf (NVI): 50 x 60 mm.
    ("tr-passport", "width_mm", Range(50, 50)),
    ("tr-passport", "height_mm", Range(60, 60)),
    # https://luattanthinhphat.com/?p=3148 (Circular 73/2021): 4 x 6 cm, no glasses,
    # white; online .jpg under 4 MB.
    ("vn-passport", "width_mm", Range(40, 40)),
    ("vn-passport", "height_mm", Range(60, 60)),
    ("vn-passport", "glasses", GlassesRule.BANNED),
    ("vn-passport-online", "kb", Range(0, 4096)),
    # http://www.thaiembassy.org/moscow/en/services/7700/83957-4.-Courtesy-Visa.html : 4 x 6 cm.
    ("th-visa", "width_mm", Range(40, 40)),
    ("th-visa", "height_mm", Range(60, 60)),
    # https://visa.visitsaudi.com/Home/PhotoSpecifications : 200 x 200 px, 5-100 KB,
    # face 70-80%, white.
    ("sa-evisa", "width_px", Range(200, 200)),
    ("sa-evisa", "height_px", Range(200, 200)),
    ("sa-evisa", "kb", Range(5, 100)),
    ("sa-evisa", "head_share", Range(0.70, 0.80)),
    # https://embassies.mofa.gov.sa:443/sites/usa/EN/... : 2 x 2 in, white.
    ("sa-visa", "width_mm", Range(51, 51)),
    # https://gulftoday.ae/News/2022/12/28/UAE-issues-new-requirements-for-renewing-passport-and-Emirates-ID
    # (ICP): 35 x 40 mm, at least 600 dpi, white.
    ("ae-passport", "width_mm", Range(35, 35)),
    ("ae-passport", "height_mm", Range(40, 40)),
    ("ae-passport", "dpi", 600),
    # https://visa.educationmalaysia.gov.my/guidelines/passport-photo-guidelines.html/ :
    # 45 x 35 mm, white, no eyeglasses.
    ("my-visa", "width_mm", Range(35, 35)),
    ("my-visa", "glasses", GlassesRule.BANNED),
    # https://lexinform.com.ua/zakonodavstvo/davnist-fotokartky-dlya-oformlennya-dokumentiv-ne-povynna-perevyshhuvaty-6-misyatsiv/
    # (Order 875): 100 x 150 mm, head 70-80%.
    ("ua-photo-card", "width_mm", Range(100, 100)),
    ("ua-photo-card", "height_mm", Range(150, 150)),
    ("ua-photo-card", "head_share", Range(0.70, 0.80)),
    ("ua-passport", "medium", Medium.OFFICE),
    # https://kz.tlscontact.com/cn/bjs/page.php?pid=question_1_1&amp;l=en : 35 x 45 mm,
    # face 70-80%; https://www.zakon.kz/obshestvo/6499931-... : ID photos at terminals.
    ("kz-visa", "width_mm", Range(35, 35)),
    ("kz-visa", "head_share", Range(0.70, 0.80)),
    ("kz-passport", "medium", Medium.OFFICE),
    # https://www.debate.com.mx/viajes/Como-debo-presentarme-para-la-fotografia-del-pasaporte-mexicano-2022-20220701-0194.html
    # : the SRE takes the photo since 2018.
    ("mx-passport", "medium", Medium.OFFICE),
    ("mx-passport", "main", True),
]


@pytest.mark.parametrize(
    ("spec_id", "field", "expected"),
    [pytest.param(*row, id=f"{row[0]}.{row[1]}") for row in FIGURES],
)
def test_key_figures(spec_id: str, field: str, expected: Any) -> None:
    assert getattr(spec(spec_id), field) == expected


@pytest.mark.parametrize(
    ("spec_id", "width", "height"),
    [
        ("uk-passport-digital", 600, 750),  # medium.com copy of gov.uk
        ("us-dv", 600, 600),  # dvlotteryinstructions.com
        ("ca-visa", 420, 540),  # talentsolutioncanada.com
        ("hk-passport-digital", 1200, 1600),  # immd.gov.hk
        ("id-evisa", 400, 600),  # ishotaphoto.com, citing the e-Visa manual
    ],
)
def test_pixel_minima_without_a_maximum(spec_id: str, width: int, height: int) -> None:
    """ "At least W x H px": a bare minimum, which asks for no shape of its own."""
    found = spec(spec_id)
    assert found.width_px == Range(width, math.inf)
    assert found.height_px == Range(height, math.inf)
    assert not found.width_px.bounded and found.width_px.middle == width
    # A bare minimum asks for no shape; the DV lottery states "square" outright.
    assert found.aspect == (1.0 if spec_id == "us-dv" else None)


def test_the_german_office_reason_names_the_change() -> None:
    reason = spec("de-passport").office_reason or ""
    assert "2025" in reason and "registered photographer" in reason
