"""Making the file a document asks for, and a print sheet (``services.specs.make``).

The made photos are measured again by the offline engine: a head and eye line put
mid-band must be found mid-band. The source is a synthetic ID photo built from a real
portrait (``tests.local_photos``) on a plain background, which the engine needs to find
the top of the head, stored on its side with an EXIF orientation and camera metadata.
Refusals and sheets use hand-made measurements and plain pictures: no engine needed.
"""

from __future__ import annotations

import io
from dataclasses import replace
from itertools import pairwise

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageCms

from services.images import prepare_image
from services.local import measure, vision
from services.models import Measurements
from services.providers.local import LOCAL_LIMITS
from services.specs import Crown, Range, Spec, catalogue
from services.specs import make as make_module
from services.specs.crop import HAIR_ALLOWANCE_SHARE, Edge
from services.specs.make import (
    CUT_MARK_GREY,
    SHEET_DPI,
    CannotMake,
    MadePhoto,
    Reason,
    make_photo,
    print_sheet,
)
from tests.local_photos import IdSpec, id_photo, portrait_landmarks

CONFIG = vision.EngineConfig()
SOURCE_SIZE = (1500, 2000)  # upright; the file stores it on its side (EXIF orientation 6)
# A head fitting a 1000 x 1000 photo (hand-made measurements): 0.4 of its height.
HEAD = Measurements(head_top=0.2, head_chin_y=0.6, eyes_y_center=0.4, face_x_center=0.5)


def spec(code: str) -> Spec:
    return catalogue().get(code)


def check(data: bytes) -> Measurements:
    """The local engine's measurements, the check made as the provider makes it."""
    image = prepare_image(data, LOCAL_LIMITS)
    output = measure.check_photo(CONFIG, image.data, image.original)
    assert output.measurements is not None, output.problem
    return output.measurements


def jpeg(image: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **options)
    return buffer.getvalue()


def noise(width: int, height: int) -> Image.Image:
    """A picture JPEG cannot squeeze: file sizes far above a flat picture's."""
    pixels = np.random.default_rng(1).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def texture(width: int, height: int) -> Image.Image:
    """Noise smoothed over 4 px: at 672 px square about 460 KB at quality 95, 140 at 40."""
    return noise(width // 4, height // 4).resize((width, height), Image.Resampling.BICUBIC)


def camera_exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "Phone maker"
    exif.get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitudeRef] = "N"
    return exif.tobytes()


def assert_only_dpi(data: bytes, dpi: int) -> None:
    """No EXIF (camera, GPS, orientation), profile or comment: only the JFIF density."""
    with Image.open(io.BytesIO(data)) as image:
        assert len(image.getexif()) == 0
        assert not {"icc_profile", "exif", "comment"} & set(image.info)
        assert image.info["dpi"] == pytest.approx((dpi, dpi))


@pytest.fixture(scope="module")
def source(photos) -> tuple[bytes, Measurements]:
    """A 1500 x 2000 ID-style photo of a real face, stored rotated, and its measurements."""
    path = photos["biden.jpg"]
    with Image.open(path) as portrait:
        upright = id_photo(
            portrait,
            portrait_landmarks(path.read_bytes()),
            IdSpec(size=SOURCE_SIZE, face_width=0.3, eyes_y=0.4, background="white"),
        )
    with Image.open(io.BytesIO(upright)) as image:
        stored = image.transpose(Image.Transpose.ROTATE_90)  # orientation 6 turns it back
    data = jpeg(stored, quality=93, exif=camera_exif(6), comment=b"Joe, at home")
    m = check(data)
    assert m.size_pix == SOURCE_SIZE and m.head_top is not None
    return data, m


# --------------------------------------------------------------------------- measured again


@pytest.mark.parametrize(
    ("code", "size_px"),
    [("us-passport", (602, 602)), ("schengen", (413, 531))],  # 51 x 51 and 35 x 45 mm
)
def test_print_photo_measures_mid_band(source, code: str, size_px: tuple[int, int]) -> None:
    data, m = source
    document = spec(code)
    assert document.width_mm is not None and document.height_mm is not None
    assert document.head_mm is not None
    made = make_photo(data, document, m)
    assert (made.format, made.width, made.height, made.dpi) == ("JPEG", *size_px, 300)
    assert made.quality == 95 and not made.icao_proportions
    with Image.open(io.BytesIO(made.data)) as image:
        assert image.format == "JPEG" and image.size == size_px
    assert_only_dpi(made.data, 300)

    again = check(made.data)
    assert again.head_top is not None and again.head_chin_y is not None
    assert again.eyes_y_center is not None
    print_h = document.height_mm.middle
    head_mm = (again.head_chin_y - again.head_top) * print_h
    hair = HAIR_ALLOWANCE_SHARE * print_h if document.crown is Crown.SKULL else 0.0
    assert document.crown is (Crown.SKULL if code == "schengen" else Crown.HAIR)
    assert document.head_mm.low <= head_mm <= document.head_mm.high + hair
    assert head_mm == pytest.approx(document.head_mm.middle + hair / 2, abs=0.5)
    assert again.face_x_center == pytest.approx(0.5, abs=0.01)
    eyes_mm = (1 - again.eyes_y_center) * print_h
    if document.eyes_mm is not None:
        assert document.eyes_mm.holds(eyes_mm)
        assert eyes_mm == pytest.approx(document.eyes_mm.middle, abs=0.5)
    else:  # no eye band: the head is centred, as much room above it as below
        margin_mm = again.head_top * print_h
        assert margin_mm == pytest.approx((print_h - head_mm) / 2, abs=0.5)


def test_digital_photo_within_the_upload_limits(source) -> None:
    data, m = source
    visa = spec("us-visa")  # 600-1200 px square, JPEG, at most 240 KB
    assert visa.head_share is not None and visa.eyes_share is not None
    made = make_photo(data, visa, m)
    # The head (0.38 of the 2000 px source height) over 0.595 is a crop of about 1280 px:
    # the largest size the spec allows is 1200.
    assert (made.width, made.height, made.format) == (1200, 1200, "JPEG")
    assert made.kb == len(made.data) / 1024 <= 240
    with Image.open(io.BytesIO(made.data)) as image:
        assert (image.format, image.size, image.mode) == ("JPEG", (1200, 1200), "RGB")
    assert_only_dpi(made.data, 300)
    again = check(made.data)
    assert again.head_top is not None and again.head_chin_y is not None
    assert again.eyes_y_center is not None
    assert again.head_chin_y - again.head_top == pytest.approx(visa.head_share.middle, abs=0.01)
    assert 1 - again.eyes_y_center == pytest.approx(visa.eyes_share.middle, abs=0.01)


# --------------------------------------------------------------------------- no crop


def test_no_crop_spec_keeps_the_whole_photo_upright_without_metadata() -> None:
    upright = noise(900, 1200)
    upright.paste((255, 0, 0), (0, 0, 900, 100))  # red along the top
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = jpeg(stored, quality=90, exif=camera_exif(6), icc_profile=srgb, comment=b"Jane, home")
    uk = spec("uk-passport-digital")
    assert not uk.crop_allowed and uk.kb is not None
    made = make_photo(data, uk, Measurements())  # measurements are not needed
    assert (made.width, made.height, made.crop) == (900, 1200, (0, 0, 900, 1200))
    assert uk.kb.holds(made.kb) and made.dpi is None
    with Image.open(io.BytesIO(made.data)) as image:
        assert image.size == (900, 1200)
        assert len(image.getexif()) == 0
        assert "icc_profile" not in image.info and "comment" not in image.info
        red, green, _ = image.convert("RGB").getpixel((450, 40))
        assert red > 200 and green < 60


# --------------------------------------------------------------------------- refusals


def test_too_few_pixels_names_the_size_needed() -> None:
    small = jpeg(noise(300, 400))
    with pytest.raises(CannotMake) as visa:
        make_photo(small, spec("us-visa"), HEAD)
    # The head is 0.4 x 400 = 160 px; at 0.595 of the height the crop is 269 px square.
    assert visa.value.reason is Reason.TOO_FEW_PIXELS
    assert (visa.value.needed_px, visa.value.have_px) == ((600, 600), (269, 269))
    with pytest.raises(CannotMake) as passport:
        make_photo(small, spec("us-passport"), HEAD)
    # 30 mm of 51: 160 / (30 / 51) = 272 px, where a 51 mm print at 300 dpi has 602.
    assert passport.value.reason is Reason.TOO_FEW_PIXELS
    assert (passport.value.needed_px, passport.value.have_px) == ((602, 602), (272, 272))


@pytest.mark.parametrize(
    ("m", "outside"),
    [
        # The face at 0.15 of the width: the 680 px wide crop centred on it starts 190 px
        # left of the photo (head 400 px / (30 / 51) = 680 px).
        (replace(HEAD, face_x_center=0.15), {Edge.LEFT: 190}),
        # The hair at the top edge: the eye line mid-band wants 60 px above the photo;
        # moved up to the band's top (35 mm) it still wants 13.
        (
            Measurements(head_top=0.0, head_chin_y=0.4, eyes_y_center=0.2, face_x_center=0.5),
            {Edge.TOP: 13},
        ),
    ],
)
def test_head_near_an_edge_says_how_far_out(m: Measurements, outside: dict[Edge, int]) -> None:
    with pytest.raises(CannotMake) as refused:
        make_photo(jpeg(noise(1000, 1000)), spec("us-passport"), m)
    assert refused.value.reason is Reason.HEAD_NEAR_EDGE
    assert dict(refused.value.outside) == outside


def test_the_eye_line_moves_within_its_band_to_stay_inside() -> None:
    """The head near the top, as above, but 20 px lower: mid-band the crop would start
    40 px above the photo; with the eye line at 34.5 mm instead of 31.5 it fits."""
    m = Measurements(head_top=0.02, head_chin_y=0.42, eyes_y_center=0.22, face_x_center=0.5)
    made = make_photo(jpeg(noise(1000, 1000)), spec("us-passport"), m)
    assert made.crop == (160, 0, 840, 680)
    eyes_mm = (1 - 220 / 680) * 51
    assert eyes_mm == pytest.approx(34.5) and 28 <= eyes_mm <= 35


@pytest.mark.parametrize(
    ("code", "m", "reason", "missing"),
    [
        ("de-passport", HEAD, Reason.OFFICE, ()),
        ("icao", HEAD, Reason.NOT_PRINTABLE, ()),  # ICAO leaves the paper size to states
        ("us-passport", replace(HEAD, head_top=None), Reason.NOT_MEASURED, ("head_top",)),
        (
            "us-visa",
            replace(HEAD, eyes_y_center=None, face_x_center=None),
            Reason.NOT_MEASURED,
            ("face_x_center", "eyes_y_center"),
        ),
        # Eyes just above the chin: no crop holds both them in 28-35 mm and the whole head.
        ("us-passport", replace(HEAD, eyes_y_center=0.58), Reason.HEAD_PROPORTIONS, ()),
    ],
)
def test_refusals(code: str, m: Measurements, reason: Reason, missing: tuple[str, ...]) -> None:
    with pytest.raises(CannotMake) as refused:
        make_photo(jpeg(noise(1000, 1000)), spec(code), m)
    assert refused.value.reason is reason
    assert refused.value.missing == missing


@pytest.mark.parametrize(
    ("code", "icao", "crop"),
    [
        # 35 x 45 mm, head at most 0.8 of the height, crown 4-6 mm below the top edge: the
        # 500 px head at ICAO's 0.75 is a 667 px crop starting 5 / 45 of it above the head.
        ("ru-passport", True, (241, 26, 759, 693)),
        # 35 x 45 mm, no head size: ICAO's 0.75, the head centred.
        ("my-visa", True, (241, 17, 759, 683)),
        # 29-34 mm of 45: a 714 px crop; centred it would start 7 px above the photo, so it
        # slides down to the edge, the head still whole inside.
        ("uk-passport", False, (222, 0, 778, 714)),
    ],
)
def test_head_size_from_the_band_or_icao(
    code: str, icao: bool, crop: tuple[int, int, int, int]
) -> None:
    m = Measurements(head_top=0.1, head_chin_y=0.6, face_x_center=0.5)
    made = make_photo(jpeg(noise(1000, 1000)), spec(code), m)
    assert (made.icao_proportions, made.crop) == (icao, crop)


def test_no_eye_band_needs_no_eyes() -> None:
    """Schengen gives no eye line: the head (500 px over 34.9 of 45 mm, 645 px) is centred."""
    m = Measurements(head_top=0.1, head_chin_y=0.6, face_x_center=0.5)
    made = make_photo(jpeg(noise(1000, 1000)), spec("schengen"), m)
    assert (made.width, made.height) == (413, 531)
    assert made.crop == (249, 28, 751, 672)


# --------------------------------------------------------------------------- file size


@pytest.fixture
def encodes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int | None, float]]:
    """The quality and KB of every encode ``make_photo`` makes."""
    made: list[tuple[int | None, float]] = []
    encode = make_module._encode

    def counted(image: Image.Image, fmt: str, dpi: int | None, quality: int | None) -> bytes:
        data = encode(image, fmt, dpi, quality)
        made.append((quality, len(data) / 1024))
        return data

    monkeypatch.setattr(make_module, "_encode", counted)
    return made


def test_quality_is_searched_into_the_kb_range(encodes: list[tuple[int | None, float]]) -> None:
    visa = spec("us-visa")
    picture = jpeg(texture(1000, 1000), quality=95)
    made = make_photo(picture, replace(visa, kb=Range(0, 250)), HEAD)
    assert (made.width, made.height) == (672, 672)  # the 400 px head over 0.595
    assert made.quality is not None and 40 <= made.quality < 95 and made.kb <= 250
    assert encodes[0][0] == 95 and len(encodes) <= 8
    assert dict(encodes)[made.quality + 1] > 250  # the best quality that fits: one more does not

    encodes.clear()
    with pytest.raises(CannotMake) as large:
        make_photo(picture, replace(visa, kb=Range(0, 20)), HEAD)
    assert large.value.reason is Reason.FILE_TOO_LARGE and len(encodes) <= 8
    assert large.value.kb is not None and large.value.kb > 20
    assert large.value.kb_range == Range(0, 20)


def test_a_file_under_the_minimum_is_refused_not_padded(
    encodes: list[tuple[int | None, float]],
) -> None:
    flat = jpeg(Image.new("RGB", (1000, 1000), (200, 200, 200)))
    with pytest.raises(CannotMake) as small:
        make_photo(flat, replace(spec("us-visa"), kb=Range(54, 240)), HEAD)
    assert small.value.reason is Reason.FILE_TOO_SMALL
    assert small.value.kb is not None and small.value.kb < 54
    assert small.value.kb_range == Range(54, 240)
    assert [quality for quality, _ in encodes] == [95]  # lower qualities make it smaller


def test_png_when_the_spec_takes_no_jpeg() -> None:
    png_only = replace(spec("us-visa"), formats=("PNG",), kb=None)
    made = make_photo(jpeg(noise(1000, 1000)), png_only, HEAD)
    assert (made.format, made.quality) == ("PNG", None)
    with Image.open(io.BytesIO(made.data)) as image:
        assert image.format == "PNG" and image.size == (672, 672)


# --------------------------------------------------------------------------- print sheet


def runs(line: np.ndarray) -> list[tuple[int, int]]:
    """Start and length of each run of red pixels along a line of RGB pixels."""
    red = (line[:, 0] > 200) & (line[:, 1] < 60) & (line[:, 2] < 60)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], red.astype(int), [0]))))
    return [(int(a), int(b - a)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


@pytest.mark.parametrize(
    ("code", "cell", "sheet_size", "columns", "rows"),
    [
        # 35 x 45 mm = 413 x 531 px at 300 dpi, 24 px (2 mm) apart: landscape holds
        # 4 x 2 (1724 x 1086 px), portrait only 2 x 3.
        ("schengen", (413, 531), (1800, 1200), 4, 2),
        # 51 mm = 602 px: two side by side need 1228 px, so 1 x 2 either way (portrait).
        ("us-passport", (602, 602), (1200, 1800), 1, 2),
    ],
)
def test_print_sheet_holds_as_many_copies_as_fit(
    code: str, cell: tuple[int, int], sheet_size: tuple[int, int], columns: int, rows: int
) -> None:
    red = jpeg(Image.new("RGB", cell, (255, 0, 0)), quality=95, dpi=(300, 300))
    photo = MadePhoto(red, "JPEG", *cell, 300, len(red) / 1024, 95, False, (0, 0, *cell))
    sheet = print_sheet(photo, spec(code))
    with Image.open(io.BytesIO(sheet)) as image:
        assert image.format == "JPEG" and image.size == sheet_size
        assert image.info["dpi"] == pytest.approx((SHEET_DPI, SHEET_DPI))
        pixels = np.asarray(image.convert("RGB")).astype(int)
    red_ys, red_xs = np.nonzero((pixels[:, :, 0] > 200) & (pixels[:, :, 1] < 60))
    top, left = red_ys.min(), red_xs.min()
    across = runs(pixels[top + cell[1] // 2])
    down = runs(pixels[:, left + cell[0] // 2])
    assert (len(across), len(down)) == (columns, rows)
    for found, side in ((across, cell[0]), (down, cell[1])):
        assert all(abs(length - side) <= 2 for _, length in found)
        starts = [start for start, _ in found]
        assert all(abs(b - a - side - 24) <= 2 for a, b in pairwise(starts))  # 2 mm
    mark = pixels[top + cell[1] // 2, left - 1]  # the cut outline just left of the copy
    assert np.abs(mark - CUT_MARK_GREY).max() <= 20
    assert pixels[top + cell[1] // 2, left - 12].min() >= 245  # white in the gap beyond


def test_no_print_sheet_without_a_print_size() -> None:
    photo = MadePhoto(b"", "JPEG", 600, 600, 300, 0.0, 95, False, (0, 0, 600, 600))
    with pytest.raises(CannotMake) as refused:
        print_sheet(photo, spec("us-visa"))
    assert refused.value.reason is Reason.NOT_PRINTABLE


PHONE_PHOTO = (3000, 4000)


@pytest.mark.parametrize("code", ["us-passport", "schengen", "us-visa", "in-evisa"])
@pytest.mark.parametrize(
    ("top", "chin", "eyes"),
    [(0.25, 0.55, 0.42), (0.02, 0.40, 0.22), (0.05, 0.75, 0.45), (0.45, 0.80, 0.65)],
)
def test_the_reply_and_the_button_agree_on_the_crop(
    code: str, top: float, chin: float, eyes: float
) -> None:
    """What a check says of the best crop is what "make the file" then does."""
    from services.specs.judge import CropReason, judge

    spec = catalogue().get(code)
    m = Measurements(
        head_top=top,
        head_chin_y=chin,
        eyes_y_center=eyes,
        face_x_center=0.5,
        size_pix=PHONE_PHOTO,
    )
    crop = judge(spec, m).crop
    assert crop is not None  # every spec here has a shape other than the photo's 3:4
    data = jpeg(Image.new("RGB", PHONE_PHOTO, (250, 250, 250)))
    try:
        make_photo(data, spec, m)
    except CannotMake as refusal:
        assert not crop.feasible, (refusal.reason, crop)
        placed = {
            Reason.HEAD_NEAR_EDGE: CropReason.HEAD_NEAR_EDGE,
            Reason.HEAD_PROPORTIONS: CropReason.HEAD_PROPORTIONS,
            Reason.TOO_FEW_PIXELS: CropReason.TOO_FEW_PIXELS,
        }
        assert placed.get(refusal.reason) is crop.reason
    else:
        assert crop.feasible, crop
