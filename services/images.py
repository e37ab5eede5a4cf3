"""Checking user photos and fitting them to what a provider accepts.

A photo from a chat is untrusted bytes: it may be no image, an animation, a
decompression bomb or a truncated upload. ``inspect_image`` refuses those before
anything decodes the full pixel array. ``prepare_image`` then sends the original
bytes whenever the provider takes them as they are, because the ID-photo check
reads DPI, format and file size from the file itself; only when the photo breaks
a provider limit is it re-encoded. A photo over the side limit keeps its printed size
in mm and ends no smaller than the largest size libjpeg decodes it to directly within
that limit (``_decode_upright``).

A JPEG or PNG sent as it is still loses its camera metadata (``services.exif``): GPS
position and serial numbers go, the image data, orientation and DPI stay.

Everything here is CPU-bound and synchronous; the ``*_async`` wrappers run it on the image
threads (``services.workers``), never on the event loop or its default executor.
"""

from __future__ import annotations

import io
import logging
import math
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, overload

import pillow_heif
from PIL import ExifTags, Image, ImageFile, JpegImagePlugin, UnidentifiedImageError

from services import exif, workers
from services.errors import ImageError, ImageProblem

log = logging.getLogger(__name__)

pillow_heif.register_heif_opener()

MAX_DOWNLOAD_BYTES: Final = 20 * 1024 * 1024  # Telegram Bot API getFile limit
# Larger is treated as a decompression bomb (phones top out near 50 MP).
MAX_PIXELS: Final = 60_000_000
# Scans (SOS markers) a JPEG may have. libjpeg's progressive script writes 10 for colour
# (6 for grey), a baseline file 1 (3-4 when not interleaved), mozjpeg and jpegli about 10-20.
# libjpeg passes over every block of the photo once per scan, however little a scan holds:
# a 969 KB file of 7700x7700 px with 20,000 scans took 22 s to decode (issue 12), about
# 1 ms a scan at 60 MP; 100 scans cap that at a tenth of a second, 5x what any encoder writes.
MAX_JPEG_SCANS: Final = 100

# Pillow format names accepted from users. GIF only when it is a single frame.
ACCEPTED_FORMATS: frozenset[str] = frozenset({"JPEG", "MPO", "PNG", "WEBP", "BMP", "HEIF", "GIF"})

# Formats whose extra frames are not an animation: MPO keeps a preview or depth
# image after the photo, HEIF may hold more images than its primary one.
_STILL_MULTI_FRAME: Final = frozenset({"MPO", "HEIF"})

# What ``prepare_image`` can write.
_WRITABLE: Final = frozenset({"JPEG", "PNG", "BMP"})

_FILE_TYPES: Final[dict[str, tuple[str, str]]] = {
    "JPEG": ("image/jpeg", "jpg"),
    "MPO": ("image/jpeg", "jpg"),
    "PNG": ("image/png", "png"),
    "BMP": ("image/bmp", "bmp"),
    "WEBP": ("image/webp", "webp"),
    "GIF": ("image/gif", "gif"),
    "HEIF": ("image/heif", "heic"),
}

# EXIF orientation -> the transposition that shows the photo upright (as ImageOps.exif_transpose).
_UPRIGHT: Final[dict[int, Image.Transpose]] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_SIDES: Final = frozenset({5, 6, 7, 8})

_JPEG_FIRST_QUALITY: Final = 95
_JPEG_QUALITY_STEPS: Final = (92, 88, 84, 80)
# JPEG DCT scales libjpeg decodes at directly, finest first.
_DCT_SCALES: Final = (2, 4, 8)
_PREPARE_DRAFT_SHARE: Final = 0.75  # see _decode_upright
_SCALE_STEP: Final = 0.85
_MAX_SCALE_STEPS: Final = 8
# 4:4:4 chroma below this: ID photos are small and their colour edges matter.
_FULL_CHROMA_MAX_PIXELS: Final = 4_000_000
_SUBSAMPLING_420: Final = 2
_SUBSAMPLING_444: Final = 0

# Re-encoded files carry no camera EXIF (GPS, serials), only "upright".
_EXIF_UPRIGHT: Final = Image.Exif()
_EXIF_UPRIGHT[ExifTags.Base.Orientation] = 1
_EXIF_UPRIGHT_BYTES: Final = _EXIF_UPRIGHT.tobytes()

# Image.open is made strict about Pillow's bomb warning only inside this lock,
# so concurrent opens never save and restore the warning filters over each other.
_OPEN_LOCK = threading.Lock()


class Change(StrEnum):
    """What ``prepare_image`` did to a photo; none means the original bytes were sent."""

    ROTATED = "rotated"  # EXIF orientation applied to the pixels
    CONVERTED = "converted"  # written in another format
    REDUCED = "reduced"  # fewer pixels, or recompressed to fit a byte limit


@dataclass(frozen=True, slots=True)
class ImageLimits:
    """What one provider accepts untouched."""

    max_bytes: int
    max_side: int
    min_side: int
    formats: frozenset[str]
    max_base64_chars: int | None = None

    @property
    def byte_cap(self) -> int:
        """The largest file that meets both the byte and the base64 limit."""
        if self.max_base64_chars is None:
            return self.max_bytes
        # 4 * ceil(n / 3) <= m  <=>  n <= 3 * (m // 4)
        return min(self.max_bytes, 3 * (self.max_base64_chars // 4))


# jumdata's ID-photo check: under 6 MB, at most 2500 px a side.
CHECK_LIMITS_JUMDATA = ImageLimits(
    max_bytes=6 * 1024 * 1024 - 1,
    max_side=2500,
    min_side=100,
    formats=frozenset({"JPEG", "PNG", "BMP"}),
)


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """A photo as the user sent it; width and height as displayed (after EXIF orientation)."""

    format: str
    width: int
    height: int
    file_size: int
    orientation: int  # EXIF 1..8, 1 when absent
    dpi: tuple[float, float] | None
    mode: str
    has_alpha: bool


@dataclass(frozen=True, slots=True)
class PreparedImage:
    """The bytes to send to a provider, and what was done to get them."""

    data: bytes
    format: str
    width: int
    height: int
    original: ImageInfo
    changes: frozenset[Change]

    @property
    def mime_type(self) -> str:
        return _FILE_TYPES.get(self.format, ("application/octet-stream", ""))[0]

    @property
    def extension(self) -> str:
        return _FILE_TYPES.get(self.format, ("", self.format.lower()))[1]

    @property
    def file_name(self) -> str:
        return f"photo.{self.extension}"

    @property
    def untouched(self) -> bool:
        return not self.changes


# --------------------------------------------------------------------------- inspect


def inspect_image(data: bytes, *, verify: bool = True) -> ImageInfo:
    """Refuse what no provider should see; raises ``ImageError``.

    ``verify=False`` skips decoding a JPEG's scans, for a caller that decodes the photo
    next anyway (``open_for_drawing`` refuses a broken one just the same).
    """
    info, im = _inspect(data)
    if verify and isinstance(im, JpegImagePlugin.JpegImageFile):
        _verify_jpeg(im)
    return info


def _inspect(data: bytes) -> tuple[ImageInfo, ImageFile.ImageFile]:
    """The gates and the photo's ``ImageInfo``, with the opened image.

    A JPEG comes back undecoded, so that its one decode can be the DCT-scaled one
    ``prepare_image`` needs; whoever needs no pixels verifies it with ``_verify_jpeg``.
    Other formats are decoded here, which verifies them and reads metadata stored after
    the pixels (a PNG's eXIf chunk may follow its image data).
    """
    im = _open_still(data, allow_animation=False)
    fmt = im.format or ""
    mode = im.mode
    has_alpha = "A" in im.getbands() or "transparency" in im.info
    stored_width, stored_height = im.size
    if not isinstance(im, JpegImagePlugin.JpegImageFile):
        _load(im)

    orientation = _orientation(im)
    width, height = stored_width, stored_height
    dpi = _dpi(im.info.get("dpi"))
    if orientation in _SWAPS_SIDES and _needs_transpose(fmt, orientation) is not None:
        width, height = height, width
        dpi = (dpi[1], dpi[0]) if dpi is not None else None
    info = ImageInfo(
        format=fmt,
        width=width,
        height=height,
        file_size=len(data),
        orientation=orientation,
        dpi=dpi,
        mode=mode,
        has_alpha=has_alpha,
    )
    return info, im


def _open_still(data: bytes, *, allow_animation: bool) -> ImageFile.ImageFile:
    """Size, format, animation and pixel-count gates; reads headers only."""
    if len(data) > MAX_DOWNLOAD_BYTES:
        raise ImageError(
            ImageProblem.FILE_TOO_BIG, size=len(data), limit_mb=MAX_DOWNLOAD_BYTES // (1024 * 1024)
        )
    im = _open_header(data)
    fmt = im.format or ""
    if fmt not in ACCEPTED_FORMATS:
        raise ImageError(ImageProblem.UNSUPPORTED_FORMAT, format=fmt or "unknown")
    if not allow_animation and _is_animated(im):
        raise ImageError(ImageProblem.ANIMATED, format=fmt)
    width, height = im.size
    if width * height > MAX_PIXELS:
        raise ImageError(ImageProblem.TOO_MANY_PIXELS, width=width, height=height)
    if width <= 0 or height <= 0:
        raise ImageError(ImageProblem.CORRUPT, f"{fmt} declares size {width}x{height}")
    if isinstance(im, JpegImagePlugin.JpegImageFile):  # MPO too: its first frame is decoded
        _require_few_scans(data)
    return im


def _require_few_scans(data: bytes) -> None:
    """Refuse a JPEG with more than ``MAX_JPEG_SCANS`` scans, before libjpeg reads any.

    Other formats have no such multiplier: a PNG's or GIF's interlacing is a fixed number
    of passes (7 and 4), and PNG, GIF, WebP, BMP and HEIF decoders stop at the pixel count
    the header declares, which ``MAX_PIXELS`` bounds.
    """
    try:
        scans = exif.count_scans(data, MAX_JPEG_SCANS)
    except exif.Malformed as exc:
        raise ImageError(ImageProblem.CORRUPT, f"segments: {exc}") from exc
    if scans > MAX_JPEG_SCANS:
        raise ImageError(ImageProblem.TOO_MANY_SCANS, limit=MAX_JPEG_SCANS)


def _open_header(data: bytes) -> ImageFile.ImageFile:
    """``Image.open`` with Pillow's bomb warning raised as an error for this call only."""
    try:
        with _OPEN_LOCK, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        width, height = _declared_size(data) or (0, 0)
        raise ImageError(
            ImageProblem.TOO_MANY_PIXELS, str(exc), width=width, height=height
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageError(ImageProblem.NOT_IMAGE, str(exc)) from exc
    except Exception as exc:  # a plugin took the header and then failed on it
        raise ImageError(ImageProblem.CORRUPT, f"header: {exc!r}") from exc


def _declared_size(data: bytes) -> tuple[int, int] | None:
    """The size a bomb declares, for the user message.

    Pillow refuses to return such an image at all, so ask its registered
    openers directly, as ``Image.open`` does, minus the bomb check. Header only.
    """
    Image.init()
    prefix = data[:16]
    for fmt in Image.ID:
        factory, accept = Image.OPEN[fmt]
        try:
            if accept is not None:
                verdict = accept(prefix)
                if isinstance(verdict, str) or not verdict:
                    continue
            return factory(io.BytesIO(data), "").size
        except Exception:  # the next opener may know the format
            continue
    return None


def _is_animated(im: ImageFile.ImageFile) -> bool:
    if im.format in _STILL_MULTI_FRAME:
        return False
    try:
        return bool(getattr(im, "is_animated", False))
    except Exception as exc:  # GIF finds its frames by walking the file
        raise ImageError(ImageProblem.CORRUPT, f"frames: {exc!r}") from exc


def _load(im: ImageFile.ImageFile) -> None:
    """Decode the whole file, so a truncated upload fails here and not at the provider."""
    try:
        im.load()
    except Exception as exc:  # any decoder failure on untrusted bytes means the same to the user
        raise ImageError(ImageProblem.CORRUPT, f"decode: {exc!r}") from exc


def _verify_jpeg(im: JpegImagePlugin.JpegImageFile) -> None:
    """``_load`` at 1/8 scale: libjpeg still reads every scan but skips most of the work
    and memory. The image is of no further use."""
    im.draft("L", (1, 1))
    _load(im)


def _orientation(im: Image.Image) -> int:
    if im.format == "HEIF":
        # pillow_heif applies the rotation while decoding and resets the EXIF tag;
        # it keeps what the file said here.
        value: Any = im.info.get("original_orientation") or 1
    else:
        try:
            value = im.getexif().get(ExifTags.Base.Orientation, 1)
        except Exception:  # broken EXIF must not cost the photo
            log.debug("unreadable EXIF", exc_info=True)
            value = 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _needs_transpose(fmt: str, orientation: int) -> Image.Transpose | None:
    """The transposition still to apply to decoded pixels (HEIF arrives upright)."""
    if fmt == "HEIF":
        return None
    return _UPRIGHT.get(orientation)


def _dpi(value: Any) -> tuple[float, float] | None:
    if not isinstance(value, tuple | list) or len(value) != 2:
        return None
    try:
        x, y = float(value[0]), float(value[1])
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(x) and math.isfinite(y)) or x <= 0 or y <= 0:
        return None
    return (x, y)


# --------------------------------------------------------------------------- prepare


LimitsFor = Callable[[ImageInfo], ImageLimits]


def prepare_image(data: bytes, limits: ImageLimits | LimitsFor) -> PreparedImage:
    """The original bytes when ``limits`` allow them, else a re-encoding that fits.

    ``limits`` may depend on the photo (jumdata's detect bounds both sides), so it may be
    a function of the photo's ``ImageInfo``.
    """
    return _prepare(data, limits, None)[0]


def prepare_with_canvas(
    data: bytes, limits: ImageLimits | LimitsFor, canvas_side: int
) -> tuple[PreparedImage, Image.Image]:
    """``prepare_image``, and a copy of the prepared photo to draw on (upright RGB, no larger
    than ``canvas_side``, as ``open_for_drawing`` of its bytes) from the same decode: a
    picture drawn after the answer then costs no second decode."""
    if canvas_side < 1:
        raise ValueError("canvas_side must be positive")
    return _prepare(data, limits, canvas_side)


@overload
def _prepare(
    data: bytes, limits: ImageLimits | LimitsFor, canvas_side: int
) -> tuple[PreparedImage, Image.Image]: ...
@overload
def _prepare(
    data: bytes, limits: ImageLimits | LimitsFor, canvas_side: None
) -> tuple[PreparedImage, None]: ...
def _prepare(
    data: bytes, limits: ImageLimits | LimitsFor, canvas_side: int | None
) -> tuple[PreparedImage, Image.Image | None]:
    info, im = _inspect(data)
    if not isinstance(limits, ImageLimits):
        limits = limits(info)
    as_it_is = (
        info.format in limits.formats
        and info.orientation == 1
        and max(info.width, info.height) <= limits.max_side
    )
    sent = _without_metadata(data, info.format) if as_it_is else data
    if as_it_is and len(sent) <= limits.byte_cap:
        canvas: Image.Image | None = None
        if canvas_side is not None:  # the canvas's decode verifies the file too
            canvas = _drawing_copy(im, canvas_side, None)
        elif isinstance(im, JpegImagePlugin.JpegImageFile):
            _verify_jpeg(im)
        _require_min_side(info, limits)
        prepared = PreparedImage(
            data=sent,
            format=info.format,
            width=info.width,
            height=info.height,
            original=info,
            changes=frozenset(),
        )
        return prepared, canvas
    decoded = _decode_upright(im, info, limits)
    _require_min_side(info, limits)
    prepared = _reencode(info, decoded, limits)
    return prepared, None if canvas_side is None else _fitted_copy(decoded.image, canvas_side)


async def prepare_image_async(data: bytes, limits: ImageLimits | LimitsFor) -> PreparedImage:
    return await workers.run(prepare_image, data, limits)


_STRIP: Final[dict[str, Callable[[bytes], bytes]]] = {
    "JPEG": exif.strip_jpeg,
    "PNG": exif.strip_png,
}


def _without_metadata(data: bytes, fmt: str) -> bytes:
    """The file a provider gets as it is: same image data, no camera metadata.

    BMP holds none; an MPO, WebP, GIF or HEIF goes as it is only to the local engine,
    which sends nothing anywhere (the cloud providers take JPEG, PNG and BMP).
    """
    strip = _STRIP.get(fmt)
    if strip is None:
        return data
    try:
        return strip(data)
    except exif.Malformed as exc:
        raise ImageError(ImageProblem.CORRUPT, f"segments: {exc}") from exc


def _require_min_side(info: ImageInfo, limits: ImageLimits) -> None:
    if min(info.width, info.height) < limits.min_side:
        raise ImageError(
            ImageProblem.TOO_SMALL, width=info.width, height=info.height, min_side=limits.min_side
        )


@dataclass(frozen=True, slots=True)
class _JpegTables:
    """The source JPEG's own quantisation, to re-encode at the quality it had."""

    qtables: dict[int, list[int]]
    subsampling: int


@dataclass(frozen=True, slots=True)
class _Decoded:
    """Upright pixels, with what the source said about them before any copy dropped it."""

    image: Image.Image
    tables: _JpegTables | None
    icc: bytes | None


def _reencode(info: ImageInfo, decoded: _Decoded, limits: ImageLimits) -> PreparedImage:
    img = decoded.image
    if max(img.size) > limits.max_side:
        target = _fit_side(info.width, info.height, limits.max_side)
        img = img.resize(target, Image.Resampling.LANCZOS, reducing_gap=2.0)

    img = _normalise_mode(img)
    transparent = img.mode == "RGBA" and _has_real_transparency(img)
    if img.mode == "RGBA" and not transparent:
        img = img.convert("RGB")

    out_format = _output_format(info.format, limits.formats, transparent)
    byte_cap = limits.byte_cap

    changes: set[Change] = set()
    if info.orientation != 1:
        changes.add(Change.ROTATED)
    if img.size != (info.width, info.height) or info.file_size > byte_cap:
        changes.add(Change.REDUCED)

    attempts = _attempts(img, out_format, limits, transparent, decoded.tables)
    for fmt, candidate, params in attempts:
        icc = _matching_icc(decoded.icc, candidate.mode)
        encoded = _encode(candidate, fmt, params, _scaled_dpi(info, candidate.size), icc)
        if len(encoded) > byte_cap:
            log.debug(
                "%s %s %s: %d > %d bytes", fmt, candidate.size, params, len(encoded), byte_cap
            )
            continue
        if fmt != info.format:
            changes.add(Change.CONVERTED)
        if candidate.size != (info.width, info.height):
            changes.add(Change.REDUCED)
        return PreparedImage(
            data=encoded,
            format=fmt,
            width=candidate.size[0],
            height=candidate.size[1],
            original=info,
            changes=frozenset(changes),
        )
    raise ImageError(ImageProblem.CANNOT_FIT, max_bytes=limits.max_bytes, max_side=limits.max_side)


def _fit_side(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The size that fits ``max_side`` with the aspect ratio kept; never enlarges."""
    if max(width, height) <= max_side:
        return (width, height)
    if width >= height:
        return (max_side, max(1, round(height * max_side / width)))
    return (max(1, round(width * max_side / height)), max_side)


def _dct_scale(
    size: tuple[int, int], max_side: int, min_long: int, min_short: int = 1
) -> int | None:
    """The scale libjpeg decodes at directly (1/2, 1/4, 1/8) to the largest size whose long
    side is at most ``max_side``; ``None`` when that size's long side is under ``min_long``,
    or its short side under ``min_short`` or shorter than the scale's divisor."""
    long_side, short_side = max(size), min(size)
    for scale in _DCT_SCALES:
        long_scaled = -(-long_side // scale)
        if long_scaled <= max_side:
            fits = (
                long_scaled >= min_long
                and short_side >= scale
                and -(-short_side // scale) >= min_short
            )
            return scale if fits else None
    return None


def _draft_at(im: JpegImagePlugin.JpegImageFile, mode: str | None, scale: int) -> None:
    """Have libjpeg decode at 1/``scale`` (sides rounded up), for a ``scale`` from
    ``_dct_scale``: ``draft`` takes the coarsest scale that keeps at least the size asked,
    and sides of ``w // scale`` by ``h // scale`` keep exactly this one."""
    width, height = im.size
    im.draft(mode, (width // scale, height // scale))


def _decode_upright(im: ImageFile.ImageFile, info: ImageInfo, limits: ImageLimits) -> _Decoded:
    """The photo's pixels, upright; a JPEG over ``limits.max_side`` decoded DCT-scaled.

    Such a JPEG decodes straight to the largest DCT-scaled size within the limit when that
    keeps at least ``_PREPARE_DRAFT_SHARE`` of the limit's side: the decode is then smaller
    and no resampling follows it (LANCZOS over a phone photo costs several times its
    decode). The print size holds, as ``_scaled_dpi`` follows the pixels. Otherwise it
    decodes at the coarsest scale that still reaches the limit and ``_reencode`` resamples
    to the limit exactly, so a photo just over the limit does not lose up to half its side.
    """
    tables: _JpegTables | None = None
    if isinstance(im, JpegImagePlugin.JpegImageFile):
        tables = _jpeg_tables(im)
        max_side = limits.max_side
        if max(im.size) > max_side:
            min_long = math.ceil(max_side * _PREPARE_DRAFT_SHARE)
            scale = _dct_scale(im.size, max_side, min_long, limits.min_side)
            if scale is not None:
                _draft_at(im, None, scale)
            else:
                im.draft(None, _fit_side(*im.size, max_side))
        _load(im)
    icc = im.info.get("icc_profile")
    img: Image.Image = im
    transpose = _needs_transpose(info.format, info.orientation)
    if transpose is not None:
        try:
            img = img.transpose(transpose)
        except Exception as exc:
            raise ImageError(ImageProblem.CORRUPT, f"decode: {exc!r}") from exc
    return _Decoded(img, tables, icc if isinstance(icc, bytes) and icc else None)


def _jpeg_tables(im: JpegImagePlugin.JpegImageFile) -> _JpegTables | None:
    """Colour JPEG quantisation as Pillow can write it back; ``None`` when unusable."""
    quantization = getattr(im, "quantization", None)
    if im.mode != "RGB" or not quantization or len(quantization) < 2:
        return None
    subsampling = JpegImagePlugin.get_sampling(im)
    return _JpegTables(
        qtables={k: list(v) for k, v in quantization.items()},
        subsampling=subsampling if subsampling >= 0 else _SUBSAMPLING_420,
    )


def _normalise_mode(img: Image.Image) -> Image.Image:
    """Bring any decoded mode to RGB, RGBA or L, the modes every writer here takes."""
    mode = img.mode
    if "transparency" in img.info and mode in ("P", "L", "RGB"):
        return img.convert("RGBA")
    if mode in ("RGB", "RGBA", "L"):
        return img
    if mode.startswith("I"):
        # 16-bit grey: scale down, a plain convert("L") would clip to white.
        return img.convert("I").point(lambda v: v / 256).convert("L")
    if mode in ("LA", "La", "PA", "RGBa"):
        return img.convert("RGBA")
    if mode == "1":
        return img.convert("L")
    return img.convert("RGB")


def _has_real_transparency(img: Image.Image) -> bool:
    # One band gives (min, max) numbers; the tuple case of Pillow's signature is multi-band.
    low, _ = img.getchannel("A").getextrema()
    return isinstance(low, int | float) and low < 255


def _output_format(source: str, accepted: frozenset[str], transparent: bool) -> str:
    if source in accepted and source in _WRITABLE:
        return source
    if transparent and "PNG" in accepted:
        return "PNG"
    for fmt in ("JPEG", "PNG", "BMP"):
        if fmt in accepted:
            return fmt
    raise ValueError(f"no writable format among {sorted(accepted)}")


def _attempts(
    img: Image.Image,
    out_format: str,
    limits: ImageLimits,
    transparent: bool,
    tables: _JpegTables | None,
) -> Iterator[tuple[str, Image.Image, dict[str, Any]]]:
    """Encodings to try, least lossy first; a bounded list so a hopeless photo ends."""
    fmt = out_format
    if fmt != "JPEG":
        yield fmt, img, {}
        if not transparent and "JPEG" in limits.formats:
            fmt = "JPEG"  # an opaque photo too big as lossless: JPEG before fewer pixels
    if fmt == "JPEG":
        rgb = _flatten(img)
        first: dict[str, Any]
        if tables is not None:  # the quality the photo already had
            first = {"qtables": tables.qtables, "subsampling": tables.subsampling}
        else:
            full_chroma = rgb.width * rgb.height <= _FULL_CHROMA_MAX_PIXELS
            first = {
                "quality": _JPEG_FIRST_QUALITY,
                "subsampling": _SUBSAMPLING_444 if full_chroma else _SUBSAMPLING_420,
            }
        yield fmt, rgb, first
        for quality in _JPEG_QUALITY_STEPS:
            yield fmt, rgb, {"quality": quality, "subsampling": _SUBSAMPLING_420}
        img = rgb
    last: dict[str, Any] = {}
    if fmt == "JPEG":
        last = {"quality": _JPEG_QUALITY_STEPS[-1], "subsampling": _SUBSAMPLING_420}
    for step in range(1, _MAX_SCALE_STEPS + 1):
        factor = _SCALE_STEP**step
        size = (max(1, round(img.width * factor)), max(1, round(img.height * factor)))
        if min(size) < limits.min_side:
            return
        yield fmt, img.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0), last


def _flatten(img: Image.Image) -> Image.Image:
    """RGB for JPEG; transparency goes onto white, the usual ID-photo background."""
    if img.mode == "RGBA":
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        background.alpha_composite(img)
        return background.convert("RGB")
    return img if img.mode == "RGB" else img.convert("RGB")


def _matching_icc(icc: bytes | None, mode: str) -> bytes | None:
    """Keep the profile only when it describes the pixels written (no CMYK profile on RGB)."""
    if icc is None or len(icc) < 20:
        return None
    space = icc[16:20]
    if mode in ("RGB", "RGBA") and space == b"RGB ":
        return icc
    if mode == "L" and space == b"GRAY":
        return icc
    return None


def _scaled_dpi(info: ImageInfo, size: tuple[int, int]) -> tuple[float, float] | None:
    """DPI that keeps the printed size in mm: fewer pixels over the same width."""
    if info.dpi is None:
        return None
    return (info.dpi[0] * size[0] / info.width, info.dpi[1] * size[1] / info.height)


def _encode(
    img: Image.Image,
    fmt: str,
    params: dict[str, Any],
    dpi: tuple[float, float] | None,
    icc: bytes | None,
) -> bytes:
    """Write ``img`` with only the metadata chosen here (no camera EXIF carried over)."""
    img.info = {}  # resize/convert copy info; comments, XMP, EXIF must not leak through
    options: dict[str, Any] = dict(params)
    if dpi is not None:
        options["dpi"] = dpi
    if fmt in ("JPEG", "PNG"):
        options["exif"] = _EXIF_UPRIGHT_BYTES
        if icc is not None:
            options["icc_profile"] = icc
    if fmt == "JPEG":
        options["optimize"] = True
    buffer = io.BytesIO()
    try:
        img.save(buffer, format=fmt, **options)
    except OSError:
        if not options.get("optimize"):
            raise
        # libjpeg's optimising pass must hold the whole file in a buffer Pillow sizes
        # by guess (1-2 bytes a pixel); very noisy photos overflow it.
        options["optimize"] = False
        buffer = io.BytesIO()
        img.save(buffer, format=fmt, **options)
    return buffer.getvalue()


# --------------------------------------------------------------------------- drawing


def open_for_drawing(
    data: bytes, max_side: int, *, draft_share: float | None = None
) -> Image.Image:
    """An upright RGB copy no larger than ``max_side``, decoded as cheaply as the format allows.

    With ``draft_share``, a JPEG that libjpeg decodes directly (at 1/2, 1/4 or 1/8) to a
    long side of at least that share of ``max_side`` comes back at that size: for a picture
    only looked at, a few pixels fewer cost less than a LANCZOS pass over the decode.
    """
    if max_side < 1:
        raise ValueError("max_side must be positive")
    im = _open_still(data, allow_animation=True)  # drawing uses the first frame
    return _drawing_copy(im, max_side, draft_share)


def _drawing_copy(im: ImageFile.ImageFile, max_side: int, draft_share: float | None) -> Image.Image:
    """``open_for_drawing`` of an opened image; one not yet decoded is decoded here."""
    fmt = im.format or ""
    try:
        orientation = _orientation(im)
        transpose = _needs_transpose(fmt, orientation)
        width, height = im.size
        if transpose is not None and orientation in _SWAPS_SIDES:
            width, height = height, width
        target = _fit_side(width, height, max_side)
        scale: int | None = None
        if isinstance(im, JpegImagePlugin.JpegImageFile) and target != (width, height):
            if draft_share is not None:
                scale = _dct_scale(im.size, max_side, math.ceil(max_side * draft_share))
            if scale is not None:
                _draft_at(im, "RGB", scale)
            else:
                swapped = transpose is not None and orientation in _SWAPS_SIDES
                im.draft("RGB", (target[1], target[0]) if swapped else target)
        im.load()
        img: Image.Image = im
        if transpose is not None:
            img = img.transpose(transpose)
        img = _flatten(_normalise_mode(img))
        if scale is None and img.size != target:
            img = img.resize(target, Image.Resampling.LANCZOS, reducing_gap=2.0)
    except Exception as exc:
        raise ImageError(ImageProblem.CORRUPT, f"decode: {exc!r}") from exc
    return img


def _fitted_copy(img: Image.Image, max_side: int) -> Image.Image:
    """Upright pixels as ``open_for_drawing`` gives them: RGB, no larger than ``max_side``."""
    img = _flatten(_normalise_mode(img))
    target = _fit_side(*img.size, max_side)
    if img.size != target:
        img = img.resize(target, Image.Resampling.LANCZOS, reducing_gap=2.0)
    return img
