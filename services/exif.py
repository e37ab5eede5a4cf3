"""JPEG segments and PNG chunks, read without decoding: counting scans, dropping camera metadata.

A JPEG is a row of marker segments; after each SOS (start of scan) comes entropy-coded
data that runs to the next marker other than a stuffed ``FF 00`` or a restart marker.
Walking the segments costs a search for ``FF`` bytes, nothing like a decode, so the scan
count of a progressive JPEG can be bounded before libjpeg reads a single scan. Segments
are skipped whole by their length, so the markers of an EXIF thumbnail inside APP1 are
never mistaken for the photo's own.

``strip_jpeg`` rewrites only the metadata segments: the frame, the tables, the scans and
their entropy-coded data stay byte for byte, so the pixels a provider decodes are the ones
the user sent, without the GPS position, serial numbers or editing history around them.
``strip_png`` does the same for a PNG's chunks.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from PIL import ExifTags, Image

SOS: Final = 0xDA
EOI: Final = 0xD9
_SOI: Final = b"\xff\xd8"
_APP0: Final = 0xE0
_APP1: Final = 0xE1
_APP2: Final = 0xE2
_APP14: Final = 0xEE
_APP15: Final = 0xEF
_COM: Final = 0xFE
# Markers with no length field: TEM, RST0..7, SOI (EOI ends the walk).
_STANDALONE: Final = frozenset({0x01, *range(0xD0, 0xD8), 0xD8})

# The end of entropy-coded data: a run of FF then a byte that is neither a stuffed 00 nor
# a restart marker (D0..D7). Matched only from the start of a run (the lookbehind) and
# without backtracking into it (the possessive ``++``): linear in the data, where a
# lookahead from every FF took quadratic time on a long run (16 s for 80 KB of FF, the
# GIL held throughout). Searched in a slice, so the lookbehind sees nothing before it.
_MARKER_AFTER_SCAN: Final = re.compile(rb"(?<!\xff)\xff++[^\x00\xd0-\xd7]")

_EXIF: Final = b"Exif\x00\x00"
_XMP: Final = b"http://ns.adobe.com/xap/1.0/\x00"
_XMP_ORIENTATION: Final = re.compile(rb'tiff:Orientation(="|>)([0-9])')  # as Pillow reads it
_XMP_WITH_ORIENTATION: Final = (
    _XMP + b'<x:xmpmeta xmlns:x="adobe:ns:meta/">'
    b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description rdf:about="" xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
    b'tiff:Orientation="%b"/></rdf:RDF></x:xmpmeta>'
)
# APPn segments that describe how to decode the pixels, by their identifier.
_KEPT_APP: Final[dict[int, bytes]] = {
    _APP0: b"JFIF\x00",  # density: the DPI
    _APP2: b"ICC_PROFILE\x00",  # the colours
    _APP14: b"Adobe",  # the colour transform (YCbCr or not, CMYK inverted)
}
_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
# Chunks no decoder needs: EXIF, text (comments, XMP, ImageMagick's raw profiles), time.
_PNG_METADATA: Final = frozenset({b"eXIf", b"tEXt", b"zTXt", b"iTXt", b"tIME"})
# What a minimal EXIF keeps: how to turn the pixels upright, and the DPI Pillow reads
# from EXIF when the file has no JFIF density.
_KEPT_TAGS: Final = (
    ExifTags.Base.Orientation,
    ExifTags.Base.XResolution,
    ExifTags.Base.YResolution,
    ExifTags.Base.ResolutionUnit,
)


class Malformed(ValueError):
    """The segments or chunks do not add up; the decoder would refuse the file too."""


@dataclass(frozen=True, slots=True)
class Segment:
    """One marker segment: ``data[start:end]`` from its first ``FF`` (fill bytes included);
    an SOS segment runs on over its entropy-coded data to the next marker."""

    marker: int
    start: int
    end: int
    payload: bytes  # between the length field and the end of the header, for an APPn or COM


def is_jpeg(data: bytes) -> bool:
    return data.startswith(_SOI)


def segments(data: bytes) -> Iterator[Segment]:
    """The segments from SOI to the first EOI; a truncated file just ends the walk.

    Bytes between segments that are no marker are skipped, as libjpeg skips them.
    Raises ``Malformed`` for a length field that cannot be right.
    """
    if not is_jpeg(data):
        raise Malformed("no SOI")
    yield Segment(0xD8, 0, 2, b"")
    n = len(data)
    pos = 2
    while True:
        start = data.find(b"\xff", pos)
        if start < 0:
            return
        at = start + 1
        while at < n and data[at] == 0xFF:  # fill bytes
            at += 1
        if at >= n:
            return
        marker = data[at]
        if marker == 0x00:  # a stuffed zero outside a scan: garbage to skip
            pos = at + 1
            continue
        if marker == EOI:
            yield Segment(marker, start, at + 1, b"")
            return
        if marker in _STANDALONE:
            yield Segment(marker, start, at + 1, b"")
            pos = at + 1
            continue
        if at + 3 > n:
            return
        length = int.from_bytes(data[at + 1 : at + 3], "big")
        if length < 2:
            raise Malformed(f"marker {marker:#04x} declares length {length}")
        header_end = at + 1 + length
        if header_end > n:
            return
        payload = data[at + 3 : header_end] if _is_metadata(marker) else b""
        end = header_end
        if marker == SOS:
            found = _MARKER_AFTER_SCAN.search(memoryview(data)[header_end:])
            end = n if found is None else header_end + found.start()
        yield Segment(marker, start, end, payload)
        pos = end


def count_scans(data: bytes, stop_after: int) -> int:
    """The number of scans (SOS markers) of the JPEG's first image, counting no further
    than ``stop_after`` + 1 so a scan bomb costs no more than a sane file."""
    scans = 0
    for segment in segments(data):
        if segment.marker == SOS:
            scans += 1
            if scans > stop_after:
                break
    return scans


def strip_jpeg(data: bytes) -> bytes:
    """``data`` without camera metadata, its image data untouched; ``data`` itself when
    there is nothing to drop.

    Kept: the frame, tables, scans with their entropy-coded data, JFIF (DPI), ICC profiles
    and Adobe's colour transform. EXIF becomes one block holding only orientation and
    resolution (``minimal_exif``), XMP a packet holding only its orientation, which Pillow
    reads when EXIF has none. Dropped: the rest of EXIF (GPS, serial numbers, maker notes,
    the thumbnail) and of XMP, Photoshop/IPTC, comments, any other APPn, and whatever
    follows EOI. Raises ``Malformed``.
    """
    parts: list[bytes] = []
    exif_blocks: list[bytes] = []  # Pillow joins an EXIF split over several APP1s
    exif_at: int | None = None
    xmp: bytes | None = None  # Pillow reads the last XMP packet
    xmp_at: int | None = None
    changed = False
    last = 0
    for segment in segments(data):
        last = segment.end
        marker, payload = segment.marker, segment.payload
        keep = not _is_metadata(marker) or (
            marker in _KEPT_APP and payload.startswith(_KEPT_APP[marker])
        )
        if keep:
            parts.append(data[segment.start : segment.end])
            continue
        changed = True
        if marker == _APP1 and payload.startswith(_EXIF):
            if exif_at is None:
                exif_at = len(parts)
                parts.append(b"")
            exif_blocks.append(payload if len(exif_blocks) == 0 else payload[len(_EXIF) :])
        elif marker == _APP1 and payload.startswith(_XMP):
            xmp = payload
            if xmp_at is None:
                xmp_at = len(parts)
                parts.append(b"")
    if last < len(data):
        changed = True  # a trailer after EOI (or a truncated scan's missing EOI)
    if not changed:
        return data
    if exif_at is not None:
        parts[exif_at] = _app1(minimal_exif(b"".join(exif_blocks)))
    if xmp_at is not None:
        found = None if xmp is None else _XMP_ORIENTATION.search(xmp)
        parts[xmp_at] = b"" if found is None else _app1(_XMP_WITH_ORIENTATION % found[2])
    stripped = b"".join(parts)
    if not stripped.endswith(b"\xff\xd9"):
        stripped += b"\xff\xd9"
    return stripped


def minimal_exif(exif_payload: bytes) -> bytes:
    """An EXIF block (``Exif\\0\\0`` and TIFF) with only ``_KEPT_TAGS`` of ``exif_payload``;
    an unreadable block gives an empty one, which Pillow reads just as it read the broken
    one (upright, 72 DPI when no JFIF says otherwise)."""
    source = Image.Exif()
    kept = Image.Exif()
    try:
        source.load(exif_payload)
        for tag in _KEPT_TAGS:
            value = source.get(tag)
            if value is not None:
                kept[tag] = value
    except Exception:  # broken EXIF: whatever Pillow could not read it cannot keep either
        kept = Image.Exif()
    return kept.tobytes()


def _app1(exif_block: bytes) -> bytes:
    return b"\xff\xe1" + (len(exif_block) + 2).to_bytes(2, "big") + exif_block


def _is_metadata(marker: int) -> bool:
    """APP0..APP15 or COM: segments a decoder may ignore, unlike the JPGn markers between."""
    return _APP0 <= marker <= _APP15 or marker == _COM


def strip_png(data: bytes) -> bytes:
    """``data`` without EXIF, text and time chunks, every other chunk byte for byte; ``data``
    itself when there is nothing to drop. EXIF becomes a ``minimal_exif`` (a PNG's DPI is
    in pHYs, which stays). An orientation only in text (ImageMagick's raw EXIF profile, XMP)
    is dropped with it: ``prepare_image`` sends as it is only photos that are upright.
    Raises ``Malformed``.
    """
    if not data.startswith(_PNG_SIGNATURE):
        raise Malformed("no PNG signature")
    parts = [_PNG_SIGNATURE]
    changed = False
    pos = len(_PNG_SIGNATURE)
    while pos < len(data):
        if pos + 12 > len(data):
            raise Malformed("truncated chunk")
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data):
            raise Malformed(f"chunk {kind!r} runs past the end")
        if kind not in _PNG_METADATA:
            parts.append(data[pos:end])
        else:
            changed = True
            if kind == b"eXIf":
                parts.append(_png_chunk(kind, minimal_exif(_EXIF + data[pos + 8 : end - 4])[6:]))
        pos = end
        if kind == b"IEND":
            break
    if not changed and pos == len(data):
        return data
    return b"".join(parts)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body)
    return len(body).to_bytes(4, "big") + kind + body + crc.to_bytes(4, "big")
