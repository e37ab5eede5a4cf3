"""services.exif and the photos sent untouched: camera metadata goes, the image data stays."""

from __future__ import annotations

import dataclasses
import io
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import ExifTags, Image, ImageCms, PngImagePlugin

from services import exif
from services.images import CHECK_LIMITS_JUMDATA, ImageLimits, inspect_image, prepare_image

ROOT = Path(__file__).resolve().parents[2]
SERIAL = "SN-4242-BODY"
MAKER_NOTE = b"MAKERNOTE-PRIVATE-DATA"
XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
    b'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:CreatorTool="SecretEditor 9"/>'
    b"</rdf:RDF></x:xmpmeta>"
)
COMMENT = b"taken at 12 Baker Street"
PHOTOSHOP = b"Photoshop 3.0\x008BIM\x04\x04\x00\x00\x00\x00\x00\x0ciptc-caption"
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
LIMITS = ImageLimits(
    max_bytes=6_000_000, max_side=2500, min_side=50, formats=frozenset({"JPEG", "PNG"})
)


def noise(size: tuple[int, int]) -> Image.Image:
    return Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))


def camera_exif(orientation: int | None = 1, *, resolution: bool = False) -> Image.Exif:
    tags = Image.Exif()
    if orientation is not None:
        tags[ExifTags.Base.Orientation] = orientation
    tags[ExifTags.Base.Make] = "PhoneCo"
    tags[ExifTags.Base.Model] = "Pixelmaster 7"
    if resolution:
        tags[ExifTags.Base.XResolution] = 350.0
        tags[ExifTags.Base.YResolution] = 350.0
        tags[ExifTags.Base.ResolutionUnit] = 2
    tags[ExifTags.IFD.GPSInfo] = {
        ExifTags.GPS.GPSLatitudeRef: "N",
        ExifTags.GPS.GPSLatitude: (51.0, 31.0, 25.0),
        ExifTags.GPS.GPSLongitudeRef: "W",
        ExifTags.GPS.GPSLongitude: (0.0, 9.0, 29.0),
    }
    camera = tags.get_ifd(ExifTags.IFD.Exif)
    camera[ExifTags.Base.BodySerialNumber] = SERIAL
    camera[ExifTags.Base.MakerNote] = MAKER_NOTE
    return tags


def with_segment(data: bytes, marker: int, payload: bytes) -> bytes:
    """``data`` with an APPn/COM segment put right after its first segment after SOI."""
    first = next(s for s in exif.segments(data) if s.marker != 0xD8)
    segment = bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload
    return data[: first.end] + segment + data[first.end :]


def without_jfif(data: bytes) -> bytes:
    jfif = next(s for s in exif.segments(data) if s.marker == 0xE0)
    return data[: jfif.start] + data[jfif.end :]


def camera_jpeg(*, progressive: bool = False, **params: Any) -> bytes:
    buffer = io.BytesIO()
    options: dict[str, Any] = {
        "quality": 90,
        "dpi": (300, 300),
        "exif": camera_exif(),
        "xmp": XMP,
        "comment": COMMENT,
        "icc_profile": SRGB,
        "progressive": progressive,
    }
    options.update(params)
    noise((400, 500)).save(buffer, "JPEG", **options)
    data = with_segment(buffer.getvalue(), 0xED, PHOTOSHOP)  # APP13
    return data + b"SEFH trailer: camera data after EOI"


def scan_data(data: bytes) -> bytes:
    """From the first SOS to EOI: the image data a decoder reads."""
    first = next(s for s in exif.segments(data) if s.marker == exif.SOS)
    end = next(s for s in exif.segments(data) if s.marker == exif.EOI)
    return data[first.start : end.end]


PRIVATE = (
    b"PhoneCo",
    b"Pixelmaster",
    SERIAL.encode(),
    MAKER_NOTE,
    b"SecretEditor",
    COMMENT,
    b"iptc-caption",
    b"SEFH",
)


@pytest.mark.parametrize("progressive", [False, True])
def test_untouched_jpeg_loses_camera_metadata_and_keeps_its_image_data(progressive: bool) -> None:
    data = camera_jpeg(progressive=progressive)
    assert all(secret in data for secret in PRIVATE)
    with Image.open(io.BytesIO(data)) as original:
        assert original.getexif().get_ifd(ExifTags.IFD.GPSInfo)

    prepared = prepare_image(data, LIMITS)

    assert prepared.untouched
    assert [secret for secret in PRIVATE if secret in prepared.data] == []
    assert scan_data(prepared.data) == scan_data(data)
    with Image.open(io.BytesIO(prepared.data)) as sent:
        tags = sent.getexif()
        assert sent.get_format_mimetype() == "image/jpeg"
        assert tags.get_ifd(ExifTags.IFD.GPSInfo) == {}
        assert tags.get_ifd(ExifTags.IFD.Exif) == {}
        assert dict(tags) == {ExifTags.Base.Orientation: 1}
        assert sent.info["dpi"] == (300, 300)
        assert sent.info["icc_profile"] == SRGB
        assert "xmp" not in sent.info and "comment" not in sent.info
        assert "photoshop" not in sent.info
    with Image.open(io.BytesIO(data)) as original, Image.open(io.BytesIO(prepared.data)) as sent:
        assert sent.tobytes() == original.tobytes()
    assert inspect_image(prepared.data) == dataclasses.replace(
        inspect_image(data), file_size=len(prepared.data)
    )
    assert prepared.original == inspect_image(data)


def test_dpi_kept_in_exif_when_the_file_has_no_jfif() -> None:
    data = without_jfif(camera_jpeg(exif=camera_exif(resolution=True)))
    assert inspect_image(data).dpi == (350.0, 350.0)

    prepared = prepare_image(data, LIMITS)

    assert b"PhoneCo" not in prepared.data
    with Image.open(io.BytesIO(prepared.data)) as sent:
        assert dict(sent.getexif()) == {
            ExifTags.Base.Orientation: 1,
            ExifTags.Base.XResolution: 350.0,
            ExifTags.Base.YResolution: 350.0,
            ExifTags.Base.ResolutionUnit: 2,
        }
    assert inspect_image(prepared.data).dpi == (350.0, 350.0)


def test_reencoded_jpeg_carries_no_camera_metadata_either() -> None:
    data = camera_jpeg(exif=camera_exif(orientation=6))

    prepared = prepare_image(data, LIMITS)

    assert not prepared.untouched  # turned upright
    assert [secret for secret in PRIVATE if secret in prepared.data] == []
    with Image.open(io.BytesIO(prepared.data)) as sent:
        assert dict(sent.getexif()) == {ExifTags.Base.Orientation: 1}
        assert sent.info["dpi"] == (300, 300)
        assert "icc_profile" in sent.info


def test_a_jpeg_with_nothing_to_drop_is_sent_as_it_is() -> None:
    buffer = io.BytesIO()
    noise((300, 300)).save(buffer, "JPEG", quality=90, dpi=(300, 300))
    data = buffer.getvalue()

    assert exif.strip_jpeg(data) is data
    assert prepare_image(data, CHECK_LIMITS_JUMDATA).data is data


def test_orientation_from_xmp_is_kept_when_exif_has_none() -> None:
    """Pillow turns a photo by XMP's tiff:Orientation when EXIF has none."""
    xmp = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description '
        b'tiff:Orientation="6" xmp:CreatorTool="SecretEditor 9"/></rdf:RDF></x:xmpmeta>'
    )
    data = camera_jpeg(exif=camera_exif(orientation=None), xmp=xmp)
    assert inspect_image(data).orientation == 6

    stripped = exif.strip_jpeg(data)

    assert b"SecretEditor" not in stripped and b"PhoneCo" not in stripped
    assert inspect_image(stripped) == dataclasses.replace(
        inspect_image(data), file_size=len(stripped)
    )


def test_exif_thumbnail_markers_are_neither_scans_nor_kept() -> None:
    thumbnail = io.BytesIO()
    noise((64, 64)).save(thumbnail, "JPEG", progressive=True)
    assert exif.count_scans(thumbnail.getvalue(), 100) == 10
    photo = io.BytesIO()
    noise((200, 200)).save(photo, "JPEG", quality=90)
    tags = Image.Exif()
    tags[ExifTags.Base.Make] = "PhoneCo"
    data = with_segment(photo.getvalue(), 0xE1, tags.tobytes() + thumbnail.getvalue())

    assert exif.count_scans(data, 100) == 1
    stripped = exif.strip_jpeg(data)
    assert thumbnail.getvalue() not in stripped
    assert exif.count_scans(stripped, 100) == 1
    assert scan_data(stripped) == scan_data(data)


@pytest.mark.parametrize("progressive", [False, True])
def test_restart_markers_and_stuffed_bytes_stay_inside_their_scan(progressive: bool) -> None:
    buffer = io.BytesIO()
    noise((256, 256)).save(
        buffer, "JPEG", quality=98, progressive=progressive, restart_marker_blocks=4
    )
    data = buffer.getvalue()
    assert b"\xff\x00" in data and b"\xff\xd0" in data
    data = with_segment(data, 0xFE, COMMENT)

    stripped = exif.strip_jpeg(data)

    assert exif.count_scans(data, 100) == (10 if progressive else 1)
    assert COMMENT not in stripped
    assert scan_data(stripped) == scan_data(data)
    with Image.open(io.BytesIO(stripped)) as sent, Image.open(io.BytesIO(data)) as original:
        assert sent.tobytes() == original.tobytes()


def test_unreadable_exif_becomes_an_empty_one() -> None:
    data = with_segment(
        without_jfif(camera_jpeg(exif=b"")), 0xE1, b"Exif\x00\x00MM\x00*broken-GPS-here"
    )
    with pytest.warns(UserWarning):  # Pillow's own complaint about the broken block
        before = inspect_image(data)

    with pytest.warns(UserWarning):
        stripped = exif.strip_jpeg(data)

    assert b"broken-GPS-here" not in stripped
    assert inspect_image(stripped) == dataclasses.replace(before, file_size=len(stripped))


def test_segment_length_under_two_is_malformed() -> None:
    with pytest.raises(exif.Malformed):
        exif.strip_jpeg(b"\xff\xd8\xff\xe1\x00\x01\xff\xd9")


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, pos = [], 8
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        chunks.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return chunks


def test_untouched_png_loses_its_exif_and_text_and_keeps_its_image_data() -> None:
    text = PngImagePlugin.PngInfo()
    text.add_text("Comment", COMMENT.decode())
    text.add_itxt("XML:com.adobe.xmp", XMP.decode())
    text.add_text("Software", "SecretEditor 9", zip=True)
    buffer = io.BytesIO()
    noise((300, 200)).save(buffer, "PNG", exif=camera_exif(), pnginfo=text, dpi=(300, 300))
    data = buffer.getvalue()
    assert {b"eXIf", b"tEXt", b"iTXt", b"zTXt"} <= {kind for kind, _ in png_chunks(data)}

    prepared = prepare_image(data, LIMITS)

    assert prepared.untouched
    assert [secret for secret in PRIVATE if secret in prepared.data] == []
    kept = png_chunks(prepared.data)
    assert [kind for kind, _ in kept if kind != b"IDAT"] == [b"IHDR", b"pHYs", b"eXIf", b"IEND"]
    assert [c for c in kept if c[0] == b"IDAT"] == [c for c in png_chunks(data) if c[0] == b"IDAT"]
    with Image.open(io.BytesIO(prepared.data)) as sent, Image.open(io.BytesIO(data)) as original:
        assert sent.tobytes() == original.tobytes()
        assert dict(sent.getexif()) == {ExifTags.Base.Orientation: 1}
    assert inspect_image(prepared.data) == dataclasses.replace(
        inspect_image(data), file_size=len(prepared.data)
    )


def test_png_with_nothing_to_drop_is_sent_as_it_is() -> None:
    buffer = io.BytesIO()
    noise((100, 100)).save(buffer, "PNG", dpi=(300, 300))
    data = buffer.getvalue()

    assert exif.strip_png(data) is data


def test_truncated_png_chunk_is_malformed() -> None:
    buffer = io.BytesIO()
    noise((100, 100)).save(buffer, "PNG")

    with pytest.raises(exif.Malformed):
        exif.strip_png(buffer.getvalue()[:-20])


def _scan_end(data: bytes, start: int) -> int:
    """Where a scan's entropy-coded data ends, byte by byte: the first FF (of a run) that
    is followed by neither 00, D0..D7 nor another FF, after the run."""
    at = start
    while True:
        at = data.find(b"\xff", at)
        if at < 0:
            return len(data)
        run = at
        while run < len(data) and data[run] == 0xFF:
            run += 1
        if run < len(data) and data[run] not in (0x00, *range(0xD0, 0xD8)):
            return at
        at = run


def test_a_scans_end_is_found_as_a_byte_by_byte_reading_finds_it() -> None:
    """Random entropy data rich in FF, 00, RST and markers, every start included."""
    rng = random.Random(12)
    alphabet = bytes([0xFF, 0xFF, 0x00, 0xD0, 0xD7, 0xD8, 0xD9, 0xDA, 0x12, 0xC4])
    header = bytes.fromhex("ffd8ffda0008010100003f00")  # SOI, then an SOS header
    for _ in range(3000):
        body = bytes(rng.choice(alphabet) for _ in range(rng.randrange(40)))
        walk = exif.segments(header + body)
        next(walk)  # SOI; what follows the scan may be no valid segment
        assert next(walk).end == _scan_end(header + body, len(header))


def test_a_long_run_of_fill_bytes_in_a_scan_is_walked_in_linear_time() -> None:
    """2 MB of FF after an SOS header: a walk that looked ahead from every FF took hours
    (quadratic, the GIL held); it runs in a process that is stopped if it hangs."""
    code = (
        "from services import exif\n"
        "data = bytes.fromhex('ffd8ffda0008010100003f00') + b'\\xff' * 2_000_000 + b'\\x00'\n"
        "print(exif.count_scans(data, 100))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"
