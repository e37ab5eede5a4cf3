"""services.images: the gates on user photos and the fit to provider limits.

Every photo is built here with Pillow; nothing is read from disk.
"""

from __future__ import annotations

import base64
import io
import os
import struct
import warnings
import zlib
from typing import Any

import pytest
from PIL import ExifTags, Image, ImageCms, ImageFile

from services.errors import ImageError, ImageProblem
from services.images import (
    ACCEPTED_FORMATS,
    CHECK_LIMITS_JUMDATA,
    MAX_DOWNLOAD_BYTES,
    MAX_PIXELS,
    Change,
    ImageLimits,
    inspect_image,
    open_for_drawing,
    prepare_image,
    prepare_image_async,
)

GREY = (120, 130, 140)
RED = (255, 0, 0)


def encode(image: Image.Image, fmt: str, **params: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def plain(size: tuple[int, int], colour: tuple[int, ...] = GREY, mode: str = "RGB") -> Image.Image:
    return Image.new(mode, size, colour)


def noise(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    bands = len(mode)
    return Image.frombytes(mode, size, os.urandom(size[0] * size[1] * bands))


def corner_marked(size: tuple[int, int]) -> Image.Image:
    """Grey with a red square in the stored top-left corner, to see where it ends up."""
    image = plain(size)
    image.paste(RED, (0, 0, 50, 50))
    return image


def exif_with(orientation: int, *, camera: bool = False) -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    if camera:
        exif[ExifTags.Base.Make] = "PhoneCo"
        exif[ExifTags.IFD.GPSInfo] = {
            ExifTags.GPS.GPSLatitudeRef: "N",
            ExifTags.GPS.GPSLatitude: (55.0, 45.0, 0.0),
        }
    return exif


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height``: a decompression bomb in miniature."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def problem_of(data: bytes, limits: ImageLimits = CHECK_LIMITS_JUMDATA) -> ImageError:
    with pytest.raises(ImageError) as caught:
        prepare_image(data, limits)
    return caught.value


def is_red(pixel: tuple[int, ...]) -> bool:
    r, g, b = pixel[:3]
    return r > 200 and g < 60 and b < 60


# ----------------------------------------------------------------- untouched


def test_jpeg_within_limits_is_sent_byte_identical() -> None:
    """With no camera metadata to drop (test_exif), the very bytes the user sent."""
    data = encode(noise((600, 800)), "JPEG", quality=90, dpi=(300, 300))

    prepared = prepare_image(data, CHECK_LIMITS_JUMDATA)

    assert prepared.data == data
    assert prepared.untouched
    assert prepared.changes == frozenset()
    assert (prepared.format, prepared.width, prepared.height) == ("JPEG", 600, 800)
    assert (prepared.mime_type, prepared.extension, prepared.file_name) == (
        "image/jpeg",
        "jpg",
        "photo.jpg",
    )
    assert prepared.original.dpi == (300.0, 300.0)
    assert prepared.original.file_size == len(data)


@pytest.mark.parametrize("fmt", ["PNG", "BMP"])
def test_other_accepted_formats_within_limits_are_untouched(fmt: str) -> None:
    data = encode(plain((300, 400)), fmt)

    prepared = prepare_image(data, CHECK_LIMITS_JUMDATA)

    assert prepared.data == data  # Pillow writes no metadata chunks to drop
    assert prepared.format == fmt
    assert prepared.file_name == f"photo.{fmt.lower()}"


def test_png_with_alpha_within_limits_stays_png() -> None:
    image = plain((300, 400), (10, 200, 10, 255), "RGBA")
    image.paste((0, 0, 0, 0), (0, 0, 300, 100))
    data = encode(image, "PNG")

    prepared = prepare_image(data, CHECK_LIMITS_JUMDATA)

    assert prepared.untouched
    assert prepared.original.has_alpha
    assert prepared.mime_type == "image/png"


# ----------------------------------------------------------------- re-encoding


def test_large_jpeg_is_reduced_and_dpi_keeps_the_printed_size() -> None:
    data = encode(plain((4000, 3000)), "JPEG", quality=90, dpi=(300, 300))

    prepared = prepare_image(data, CHECK_LIMITS_JUMDATA)

    assert prepared.changes == {Change.REDUCED}
    # Decoded at 1/2: 2000 px is the largest DCT-scaled side within 2500.
    assert (prepared.width, prepared.height) == (2000, 1500)
    out = inspect_image(prepared.data)
    assert (out.format, out.width, out.height) == ("JPEG", 2000, 1500)
    # 4000 px at 300 dpi is 338.7 mm; 2000 px must say the same: 150 dpi.
    assert out.dpi == (150.0, 150.0)
    assert out.width / out.dpi[0] == pytest.approx(4000 / 300, rel=0.001)


def _largest_draft_side(long_side: int, max_side: int) -> int | None:
    """The longest side libjpeg's 1/2, 1/4, 1/8 decodes give within ``max_side``."""
    sides = [-(-long_side // scale) for scale in (2, 4, 8)]
    return max((side for side in sides if side <= max_side), default=None)


@pytest.mark.parametrize(
    ("size", "max_side", "expected"),
    [
        # The largest draft within the limit keeps 3/4 of it: decoded at that scale, no resample.
        ((4000, 3000), 2500, (2000, 1500)),
        ((3000, 4000), 2500, (1500, 2000)),
        ((4000, 3000), 1000, (1000, 750)),
        ((3000, 2250), 1000, (750, 563)),  # 1/4, the sides rounded up as libjpeg does
        ((3001, 2001), 1501, (1501, 1001)),
        # It would keep less: decoded at the next finer scale, resampled to the limit.
        ((3001, 2001), 1500, (1500, 1000)),  # 1/2 rounds up to 1501, over the limit
        ((3000, 2000), 2500, (2500, 1667)),
        ((2600, 1300), 1000, (1000, 500)),
        ((2501, 300), 2500, (2500, 300)),
        ((4000, 300), 400, (400, 30)),  # even 1/8 is over the limit
    ],
)
def test_shrunk_jpeg_is_no_smaller_than_the_largest_draft_within_the_limit(
    size: tuple[int, int], max_side: int, expected: tuple[int, int]
) -> None:
    data = encode(plain(size), "JPEG", quality=90, dpi=(300, 200))
    limits = ImageLimits(
        max_bytes=6_000_000, max_side=max_side, min_side=20, formats=frozenset({"JPEG"})
    )

    prepared = prepare_image(data, limits)

    assert (prepared.width, prepared.height) == expected
    long_side = max(prepared.width, prepared.height)
    assert long_side <= max_side
    assert long_side >= (_largest_draft_side(max(size), max_side) or 0)
    out = inspect_image(prepared.data)
    assert (out.width, out.height) == expected
    assert out.dpi is not None
    # The printed size in mm is kept; JPEG stores whole dpi.
    assert out.dpi[0] == pytest.approx(300 * expected[0] / size[0], abs=0.5)
    assert out.dpi[1] == pytest.approx(200 * expected[1] / size[1], abs=0.5)
    assert out.width / out.dpi[0] == pytest.approx(size[0] / 300, rel=0.01)
    assert out.height / out.dpi[1] == pytest.approx(size[1] / 200, rel=0.01)


def test_shrunk_jpeg_turned_upright_keeps_its_corner_and_dpi() -> None:
    data = encode(
        corner_marked((4000, 3000)), "JPEG", quality=95, exif=exif_with(6), dpi=(300, 200)
    )

    prepared = prepare_image(data, CHECK_LIMITS_JUMDATA)

    assert prepared.changes == {Change.ROTATED, Change.REDUCED}
    assert (prepared.width, prepared.height) == (1500, 2000)
    with Image.open(io.BytesIO(prepared.data)) as out:
        assert out.size == (1500, 2000)
        assert out.info["dpi"] == pytest.approx((100, 150), abs=0.5)
        rgb = out.convert("RGB")
        assert is_red(rgb.getpixel((1490, 10)))  # type: ignore[arg-type]
        assert not is_red(rgb.getpixel((10, 10)))  # type: ignore[arg-type]


def test_draft_that_would_break_min_side_is_resampled_instead() -> None:
    data = encode(plain((4000, 180)), "JPEG", quality=90)

    prepared = prepare_image(data, CHECK_LIMITS_JUMDATA)

    # 1/2 would give 2000x90, under the provider's 100 px.
    assert (prepared.width, prepared.height) == (2500, 112)


def test_drafted_jpeg_still_meets_the_byte_cap() -> None:
    data = encode(noise((2000, 1500)), "JPEG", quality=95)
    limits = ImageLimits(
        max_bytes=200_000, max_side=1000, min_side=100, formats=frozenset({"JPEG"})
    )

    prepared = prepare_image(data, limits)

    assert len(prepared.data) <= 200_000
    assert max(prepared.width, prepared.height) < 1000  # past the quality steps: fewer pixels
    assert prepared.changes == {Change.REDUCED}
    out = inspect_image(prepared.data)
    assert (out.width, out.height) == (prepared.width, prepared.height)


def test_exif_orientation_6_is_applied_to_the_pixels() -> None:
    data = encode(corner_marked((300, 200)), "JPEG", quality=95, exif=exif_with(6))

    info = inspect_image(data)
    prepared = prepare_image(data, CHECK_LIMITS_JUMDATA)

    assert (info.orientation, info.width, info.height) == (6, 200, 300)
    assert prepared.changes == {Change.ROTATED}
    assert prepared.format == "JPEG"
    with Image.open(io.BytesIO(prepared.data)) as out:
        assert out.size == (200, 300)
        assert out.getexif().get(ExifTags.Base.Orientation) == 1
        rgb = out.convert("RGB")
        # Orientation 6 turns the stored top-left corner to the displayed top-right.
        assert is_red(rgb.getpixel((175, 25)))  # type: ignore[arg-type]
        assert not is_red(rgb.getpixel((25, 25)))  # type: ignore[arg-type]
        assert not is_red(rgb.getpixel((175, 275)))  # type: ignore[arg-type]


def test_reencoded_output_drops_camera_exif() -> None:
    data = encode(plain((400, 300)), "JPEG", exif=exif_with(3, camera=True))
    with Image.open(io.BytesIO(data)) as original:
        assert original.getexif().get(ExifTags.Base.Make) == "PhoneCo"  # the fixture has it

    prepared = prepare_image(data, CHECK_LIMITS_JUMDATA)

    with Image.open(io.BytesIO(prepared.data)) as out:
        exif = out.getexif()
        assert exif.get(ExifTags.Base.Make) is None
        assert ExifTags.IFD.GPSInfo not in exif
        assert exif.get(ExifTags.Base.Orientation) == 1


def test_webp_is_converted_to_jpeg_with_icc_profile_kept() -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encode(plain((400, 500)), "WEBP", quality=90, icc_profile=icc)

    prepared = prepare_image(data, CHECK_LIMITS_JUMDATA)

    assert prepared.changes == {Change.CONVERTED}
    assert (prepared.format, prepared.width, prepared.height) == ("JPEG", 400, 500)
    with Image.open(io.BytesIO(prepared.data)) as out:
        assert out.format == "JPEG"
        assert out.mode == "RGB"
        assert out.info.get("icc_profile") == icc


def _heif_encodes() -> bool:
    try:
        encode(plain((64, 64)), "HEIF")
    except Exception:
        return False
    return True


@pytest.mark.skipif(not _heif_encodes(), reason="pillow_heif cannot encode HEIF here")
def test_heif_is_converted_to_jpeg() -> None:
    data = encode(plain((320, 400), (200, 40, 40)), "HEIF", quality=90)
    assert inspect_image(data).format == "HEIF"

    prepared = prepare_image(data, CHECK_LIMITS_JUMDATA)

    assert prepared.changes == {Change.CONVERTED}
    assert (prepared.format, prepared.width, prepared.height) == ("JPEG", 320, 400)
    with Image.open(io.BytesIO(prepared.data)) as out:
        r, g, b = out.convert("RGB").getpixel((160, 200))  # type: ignore[misc]
        assert r > 150 and g < 90 and b < 90


def test_mpo_from_a_phone_is_sent_as_its_first_frame_in_jpeg() -> None:
    first, second = corner_marked((400, 300)), plain((400, 300), (0, 0, 255))
    data = encode(first, "MPO", save_all=True, append_images=[second])
    assert inspect_image(data).format == "MPO"

    prepared = prepare_image(data, CHECK_LIMITS_JUMDATA)

    assert prepared.changes == {Change.CONVERTED}
    assert prepared.format == "JPEG"
    with Image.open(io.BytesIO(prepared.data)) as out:
        assert out.format == "JPEG"
        assert is_red(out.convert("RGB").getpixel((10, 10)))  # type: ignore[arg-type]
        assert not is_red(out.convert("RGB").getpixel((200, 150)))  # type: ignore[arg-type]


def test_transparent_webp_becomes_png_when_png_is_accepted() -> None:
    image = plain((300, 400), (10, 200, 10, 255), "RGBA")
    image.paste((0, 0, 0, 0), (0, 0, 300, 100))
    data = encode(image, "WEBP", lossless=True)

    prepared = prepare_image(data, CHECK_LIMITS_JUMDATA)

    assert prepared.format == "PNG"
    assert prepared.changes == {Change.CONVERTED}
    with Image.open(io.BytesIO(prepared.data)) as out:
        assert out.mode == "RGBA"
        assert out.getpixel((150, 50))[3] == 0  # type: ignore[index]
        assert out.getpixel((150, 300))[3] == 255  # type: ignore[index]


def test_transparent_webp_goes_onto_white_when_only_jpeg_is_accepted() -> None:
    image = plain((300, 400), (10, 200, 10, 255), "RGBA")
    image.paste((0, 0, 0, 0), (0, 0, 300, 100))
    data = encode(image, "WEBP", lossless=True)
    jpeg_only = ImageLimits(
        max_bytes=1_000_000, max_side=2000, min_side=50, formats=frozenset({"JPEG"})
    )

    prepared = prepare_image(data, jpeg_only)

    assert prepared.format == "JPEG"
    with Image.open(io.BytesIO(prepared.data)) as out:
        assert min(out.getpixel((150, 50))) > 240  # type: ignore[arg-type]


def test_large_png_with_alpha_is_reduced_and_stays_png() -> None:
    image = plain((3000, 1000), (10, 200, 10, 255), "RGBA")
    image.paste((0, 0, 0, 0), (0, 0, 3000, 300))
    data = encode(image, "PNG", dpi=(300, 300))

    prepared = prepare_image(data, CHECK_LIMITS_JUMDATA)

    assert prepared.format == "PNG"
    assert prepared.changes == {Change.REDUCED}
    assert (prepared.width, prepared.height) == (2500, 833)
    with Image.open(io.BytesIO(prepared.data)) as out:
        assert out.mode == "RGBA"
        assert out.getpixel((1000, 50))[3] == 0  # type: ignore[index]
        assert out.info["dpi"][0] == pytest.approx(250, abs=0.5)


def test_noisy_png_over_6mb_is_reencoded_under_the_limit() -> None:
    data = encode(noise((2000, 2000)), "PNG")
    assert len(data) > CHECK_LIMITS_JUMDATA.max_bytes  # the fixture really is too big

    prepared = prepare_image(data, CHECK_LIMITS_JUMDATA)

    assert len(prepared.data) <= CHECK_LIMITS_JUMDATA.max_bytes
    assert prepared.format == "JPEG"
    assert Change.CONVERTED in prepared.changes
    assert Change.REDUCED in prepared.changes
    out = inspect_image(prepared.data)
    assert (out.width, out.height) == (prepared.width, prepared.height)
    assert max(out.width, out.height) <= CHECK_LIMITS_JUMDATA.max_side


def test_base64_limit_is_met() -> None:
    data = encode(noise((800, 800)), "JPEG", quality=95)
    limit = len(base64.b64encode(data)) // 2
    limits = ImageLimits(
        max_bytes=10_000_000,
        max_side=2500,
        min_side=100,
        formats=frozenset({"JPEG"}),
        max_base64_chars=limit,
    )

    prepared = prepare_image(data, limits)

    assert len(base64.b64encode(prepared.data)) <= limit
    assert Change.REDUCED in prepared.changes


def test_byte_cap_matches_base64_length() -> None:
    limits = ImageLimits(1_000_000, 2500, 100, frozenset({"JPEG"}), max_base64_chars=4001)
    cap = limits.byte_cap
    assert len(base64.b64encode(b"x" * cap)) <= 4001
    assert len(base64.b64encode(b"x" * (cap + 1))) > 4001


def test_photo_that_cannot_fit_is_refused() -> None:
    data = encode(noise((300, 300)), "JPEG", quality=95)
    tiny = ImageLimits(max_bytes=1000, max_side=2500, min_side=100, formats=frozenset({"JPEG"}))

    error = problem_of(data, tiny)

    assert error.problem is ImageProblem.CANNOT_FIT


def test_single_frame_gif_is_accepted_and_converted() -> None:
    data = encode(plain((200, 200), (0, 0, 255)).convert("P"), "GIF")

    prepared = prepare_image(data, CHECK_LIMITS_JUMDATA)

    assert prepared.format == "JPEG"
    assert prepared.changes == {Change.CONVERTED}


async def test_async_wrapper_gives_the_same_result() -> None:
    data = encode(plain((600, 800)), "JPEG")

    prepared = await prepare_image_async(data, CHECK_LIMITS_JUMDATA)

    assert prepared.data == data


# ----------------------------------------------------------------- refusals


@pytest.mark.parametrize("data", [b"", b"this is a text file, not a photo\n" * 10])
def test_text_is_not_an_image(data: bytes) -> None:
    assert problem_of(data).problem is ImageProblem.NOT_IMAGE


def test_tiff_is_an_unsupported_format() -> None:
    error = problem_of(encode(plain((200, 200)), "TIFF"))

    assert error.problem is ImageProblem.UNSUPPORTED_FORMAT
    assert error.values["format"] == "TIFF"
    assert "TIFF" not in ACCEPTED_FORMATS


@pytest.mark.parametrize("progressive", [False, True])
def test_truncated_jpeg_is_corrupt(progressive: bool) -> None:
    data = encode(noise((640, 480)), "JPEG", quality=90, progressive=progressive)

    error = problem_of(data[: len(data) * 2 // 3])

    assert error.problem is ImageProblem.CORRUPT
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.parametrize(
    ("size", "orientation"),
    [((1200, 900), 1), ((400, 300), 6)],
    ids=["shrunk", "rotated"],
)
def test_truncated_jpeg_that_is_reencoded_is_corrupt(
    size: tuple[int, int], orientation: int
) -> None:
    data = encode(noise(size), "JPEG", quality=90, exif=exif_with(orientation))
    limits = ImageLimits(
        max_bytes=6_000_000, max_side=500, min_side=100, formats=frozenset({"JPEG"})
    )

    with pytest.raises(ImageError) as caught:
        prepare_image(data[: len(data) * 2 // 3], limits)

    assert caught.value.problem is ImageProblem.CORRUPT


def test_truncated_png_is_corrupt() -> None:
    data = encode(noise((300, 300)), "PNG")

    assert problem_of(data[: len(data) // 2]).problem is ImageProblem.CORRUPT


@pytest.mark.parametrize(
    ("width", "height"),
    [
        (30_000, 30_000),  # past twice Pillow's limit: Pillow itself refuses to open it
        (10_000, 9_000),  # between Pillow's warning and error limits
        (8_000, 8_000),  # under Pillow's limits, over ours
    ],
)
def test_pixel_bomb_is_refused_from_the_header(width: int, height: int) -> None:
    data = png_declaring(width, height)
    assert len(data) < 200
    assert width * height > MAX_PIXELS
    filters_before = list(warnings.filters)
    pillow_limit = Image.MAX_IMAGE_PIXELS

    error = problem_of(data)

    assert error.problem is ImageProblem.TOO_MANY_PIXELS
    assert (error.values["width"], error.values["height"]) == (width, height)
    assert warnings.filters == filters_before
    assert Image.MAX_IMAGE_PIXELS == pillow_limit


def test_tiny_photo_is_too_small() -> None:
    error = problem_of(encode(plain((20, 20)), "JPEG"))

    assert error.problem is ImageProblem.TOO_SMALL
    assert error.values == {"width": 20, "height": 20, "min_side": 100}


def test_animated_gif_is_refused() -> None:
    frames = [plain((200, 200), colour).convert("P") for colour in (RED, (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)

    assert problem_of(data).problem is ImageProblem.ANIMATED


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_animated_png_and_webp_are_refused(fmt: str) -> None:
    frames = [plain((200, 200), colour) for colour in (RED, (0, 0, 255))]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100)

    assert problem_of(data).problem is ImageProblem.ANIMATED


def test_file_over_telegram_limit_is_too_big() -> None:
    data = encode(plain((200, 200)), "JPEG") + b"\0" * MAX_DOWNLOAD_BYTES

    error = problem_of(data)

    assert error.problem is ImageProblem.FILE_TOO_BIG
    assert error.values == {"size": len(data), "limit_mb": 20}


def test_errors_carry_a_message_id() -> None:
    error = problem_of(b"not an image")

    assert error.message_id == "image.not_image"


# ----------------------------------------------------------------- inspect / drawing


def test_inspect_reports_what_the_file_says() -> None:
    info = inspect_image(encode(plain((640, 480)), "PNG"))

    assert info.format == "PNG"
    assert (info.width, info.height, info.orientation) == (640, 480, 1)
    assert info.dpi is None
    assert info.mode == "RGB"
    assert not info.has_alpha


def test_open_for_drawing_is_upright_rgb_within_max_side() -> None:
    data = encode(corner_marked((4000, 3000)), "JPEG", quality=95, exif=exif_with(6))

    image = open_for_drawing(data, 1000)

    assert image.mode == "RGB"
    assert image.size == (750, 1000)
    assert is_red(image.getpixel((745, 5)))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((2000, 1500), (1000, 750)),  # 1/2 keeps 1000 >= 3/4 of 1280: no resample
        ((2500, 1875), (1250, 938)),
        ((1600, 1200), (1280, 960)),  # 1/2 would give 800: resampled to max_side
        ((1000, 800), (1000, 800)),
    ],
)
def test_open_for_drawing_keeps_a_draft_within_the_share(
    size: tuple[int, int], expected: tuple[int, int]
) -> None:
    data = encode(corner_marked(size), "JPEG", quality=95, exif=exif_with(8))

    image = open_for_drawing(data, 1280, draft_share=0.75)

    assert image.mode == "RGB"
    assert image.size == (expected[1], expected[0])
    # Orientation 8 turns the stored top-left corner to the displayed bottom-left.
    assert is_red(image.getpixel((5, image.height - 5)))  # type: ignore[arg-type]
    assert not is_red(image.getpixel((5, 5)))  # type: ignore[arg-type]


def test_open_for_drawing_without_a_share_resamples_to_max_side() -> None:
    image = open_for_drawing(encode(plain((2000, 1500)), "JPEG"), 1280)

    assert image.size == (1280, 960)


def test_open_for_drawing_flattens_alpha() -> None:
    image = plain((200, 100), (0, 0, 0, 0), "RGBA")

    drawn = open_for_drawing(encode(image, "PNG"), 1280)

    assert drawn.mode == "RGB"
    assert drawn.size == (200, 100)
    assert drawn.getpixel((5, 5)) == (255, 255, 255)
