"""services.images: the scan bound on JPEGs, and how many times a request decodes its photo."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator

import pytest
from PIL import Image, ImageFile, JpegImagePlugin

from bot.i18n import create_i18n
from bot.render import error_text
from services import exif
from services.errors import ImageError, ImageProblem
from services.images import (
    CHECK_LIMITS_JUMDATA,
    MAX_JPEG_SCANS,
    ImageLimits,
    inspect_image,
    open_for_drawing,
    prepare_image,
    prepare_with_canvas,
)
from services.models import Box, Face, Measurements
from services.pictures.boxes import FACES_SIDE, annotate_faces
from services.specs import catalogue
from services.specs.make import make_photo

# A head a third of the photo's height, centred: any photo spec can be cut from it.
HEAD = Measurements(head_top=0.3, head_chin_y=0.633, eyes_y_center=0.48, face_x_center=0.5)


def progressive(size: tuple[int, int] = (64, 64), *, smooth: bool = False) -> bytes:
    """A progressive JPEG of noise, or of a gradient that compresses like a photo."""
    if smooth:
        image = Image.linear_gradient("L").resize(size).convert("RGB")
    else:
        image = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90, progressive=True)
    return buffer.getvalue()


def with_scans(data: bytes, scans: int) -> bytes:
    """``data`` (progressive) with its last scan, and the Huffman table before it, repeated
    until it has ``scans`` scans: a scan bomb when ``scans`` is large."""
    segments = list(exif.segments(data))
    at = [i for i, s in enumerate(segments) if s.marker == exif.SOS]
    last = at[-1]
    start = segments[last - 1].start if segments[last - 1].marker == 0xC4 else segments[last].start
    repeated = data[start : segments[last].end]
    eoi = segments[-1].start
    return data[:eoi] + repeated * (scans - len(at)) + data[eoi:]


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[int, int]]]:
    """The JPEG decodes made while the test runs, each as the size it decoded at."""
    seen: list[tuple[int, int]] = []
    load = ImageFile.ImageFile.load

    def counting(self: ImageFile.ImageFile) -> object:
        if isinstance(self, JpegImagePlugin.JpegImageFile) and self.tile:
            seen.append(self.size)
        return load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", counting)
    yield seen


# ----------------------------------------------------------------- scans


def test_a_scan_bomb_is_still_a_jpeg_pillow_decodes() -> None:
    bomb = with_scans(progressive(), 2000)

    with Image.open(io.BytesIO(bomb)) as opened:
        opened.load()
        assert opened.size == (64, 64)
    assert exif.count_scans(bomb, 10_000) == 2000


@pytest.mark.parametrize("gate", ["inspect", "prepare", "draw"])
def test_a_scan_bomb_is_refused_before_any_decode(
    gate: str, decodes: list[tuple[int, int]]
) -> None:
    bomb = with_scans(progressive(), 2000)

    with pytest.raises(ImageError) as caught:
        if gate == "inspect":
            inspect_image(bomb)
        elif gate == "prepare":
            prepare_image(bomb, CHECK_LIMITS_JUMDATA)
        else:
            open_for_drawing(bomb, 512)

    assert caught.value.problem is ImageProblem.TOO_MANY_SCANS
    assert caught.value.message_id == "image.too_many_scans"
    assert caught.value.values == {"limit": MAX_JPEG_SCANS}
    assert decodes == []


def test_scans_up_to_the_bound_pass() -> None:
    limits = ImageLimits(
        max_bytes=6_000_000, max_side=2500, min_side=50, formats=frozenset({"JPEG"})
    )
    assert prepare_image(with_scans(progressive(), 12), limits).untouched
    assert prepare_image(with_scans(progressive(), MAX_JPEG_SCANS), limits).untouched
    with pytest.raises(ImageError) as caught:
        prepare_image(with_scans(progressive(), MAX_JPEG_SCANS + 1), limits)
    assert caught.value.problem is ImageProblem.TOO_MANY_SCANS


# ----------------------------------------------------------------- decodes


def test_prepare_with_canvas_decodes_an_untouched_jpeg_once(
    decodes: list[tuple[int, int]],
) -> None:
    data = progressive((1600, 1200))

    prepared, canvas = prepare_with_canvas(data, CHECK_LIMITS_JUMDATA, FACES_SIDE)

    assert prepared.untouched
    assert len(decodes) == 1
    assert canvas.mode == "RGB"
    assert canvas.tobytes() == open_for_drawing(prepared.data, FACES_SIDE).tobytes()


def test_prepare_with_canvas_of_a_reduced_jpeg_is_the_prepared_photo_scaled(
    decodes: list[tuple[int, int]],
) -> None:
    data = progressive((3000, 2000))

    prepared, canvas = prepare_with_canvas(data, CHECK_LIMITS_JUMDATA, 1000)

    assert decodes == [(3000, 2000)]
    assert (prepared.width, prepared.height) == (2500, 1667)
    assert canvas.size == open_for_drawing(prepared.data, 1000).size == (1000, 667)


def test_faces_picture_on_the_prepared_canvas_decodes_nothing_more(
    decodes: list[tuple[int, int]],
) -> None:
    data = progressive((1600, 1200))
    faces = [Face(Box(400, 300, 300, 400))]
    prepared, canvas = prepare_with_canvas(data, CHECK_LIMITS_JUMDATA, FACES_SIDE)
    before = len(decodes)

    drawn = annotate_faces(prepared, faces, canvas=canvas)

    assert len(decodes) == before == 1
    assert drawn == annotate_faces(prepared, faces)  # the same picture a decode gives


def test_made_photo_decodes_the_original_once(decodes: list[tuple[int, int]]) -> None:
    made = make_photo(progressive((1500, 2000), smooth=True), catalogue().get("us-visa"), HEAD)

    assert made.format == "JPEG" and made.width == made.height
    assert len(decodes) == 1


def test_made_photo_from_a_truncated_jpeg_is_corrupt() -> None:
    data = progressive((1500, 2000))

    with pytest.raises(ImageError) as caught:
        make_photo(data[: len(data) * 2 // 3], catalogue().get("us-visa"), HEAD)

    assert caught.value.problem is ImageProblem.CORRUPT


@pytest.mark.parametrize("locale", ["en", "ru", "zh_Hans"])
def test_a_scan_bomb_is_explained_with_the_bound(locale: str) -> None:
    with pytest.raises(ImageError) as caught:
        inspect_image(with_scans(progressive(), MAX_JPEG_SCANS + 1))

    with create_i18n(locale).context():
        text = error_text(caught.value)

    assert str(MAX_JPEG_SCANS) in text
    assert "image.too_many_scans" not in text  # translated, not the bare id
