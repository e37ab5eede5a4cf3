"""services.pictures: numbered face boxes (detect, analyze) and the side-by-side compare."""

from __future__ import annotations

import io
import math

import pytest
from PIL import Image, ImageDraw

from services.images import CHECK_LIMITS_JUMDATA, PreparedImage, prepare_image
from services.models import Box, Face, Point
from services.pictures.boxes import FACE_COLOURS, annotate_faces, annotate_faces_async, face_colour
from services.pictures.common import BACKGROUND
from services.pictures.compare import (
    CROP_MARGIN,
    DIFFERENT_COLOUR,
    SAME_COLOUR,
    Shown,
    band_height,
    compare_side_by_side,
    compare_side_by_side_async,
    crop_face,
    tile_gap,
)

Colour = tuple[int, int, int]

GREY: Colour = (128, 128, 128)
RED: Colour = (220, 20, 20)
BLUE: Colour = (20, 40, 220)
GREEN: Colour = (20, 200, 40)


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95, subsampling=0)
    return buffer.getvalue()


def photo(
    size: tuple[int, int] = (800, 600),
    colour: Colour = GREY,
    patches: tuple[tuple[tuple[int, int, int, int], Colour], ...] = (),
) -> PreparedImage:
    image = Image.new("RGB", size, colour)
    draw = ImageDraw.Draw(image)
    for rect, fill in patches:
        draw.rectangle(rect, fill=fill)
    return prepare_image(jpeg(image), CHECK_LIMITS_JUMDATA)


def face(left: float, top: float, width: float, height: float, **kwargs: object) -> Face:
    return Face(box=Box(left, top, width, height), **kwargs)  # type: ignore[arg-type]


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    image.load()
    return image.convert("RGB")


def pixel(image: Image.Image, x: float, y: float) -> Colour:
    return image.getpixel((round(x), round(y)))  # type: ignore[return-value]


def pixels(image: Image.Image) -> list[Colour]:
    raw = image.convert("RGB").tobytes()
    return [(raw[i], raw[i + 1], raw[i + 2]) for i in range(0, len(raw), 3)]


def distance(a: Colour, b: Colour) -> float:
    return math.dist(a, b)


def nearest(colour: Colour, candidates: tuple[Colour, ...]) -> Colour:
    return min(candidates, key=lambda c: distance(colour, c))


def assert_close(actual: Colour, expected: Colour, tolerance: float = 40) -> None:
    assert distance(actual, expected) < tolerance, f"{actual} is not close to {expected}"


# --------------------------------------------------------------------------- annotate_faces


def test_output_is_jpeg_of_the_photo_size() -> None:
    drawn = decode(annotate_faces(photo(), [face(100, 100, 200, 200)]))

    assert drawn.size == (800, 600)


def test_box_edge_has_the_face_colour_and_far_pixels_keep_the_photo() -> None:
    drawn = decode(annotate_faces(photo(), [face(300, 200, 200, 240)]))

    assert_close(pixel(drawn, 301, 320), FACE_COLOURS[0])  # left edge, half way down
    assert_close(pixel(drawn, 498, 320), FACE_COLOURS[0])  # right edge
    assert_close(pixel(drawn, 400, 438), FACE_COLOURS[0])  # bottom edge
    assert_close(pixel(drawn, 400, 320), GREY, 8)  # inside the box
    assert_close(pixel(drawn, 60, 560), GREY, 8)  # far from it


def test_number_tag_sits_above_the_box_or_inside_when_no_room() -> None:
    drawn = decode(annotate_faces(photo(), [face(300, 200, 200, 200), face(40, 0, 200, 200)]))

    # Tag background, left of the digit: above face 1, inside the top of face 2.
    assert_close(pixel(drawn, 301, 197), face_colour(0))
    assert_close(pixel(drawn, 42 + 6, 12), face_colour(1))
    assert_close(pixel(drawn, 400, 190), GREY, 8)  # the tag is not wider than the face


def test_two_faces_get_different_colours() -> None:
    drawn = decode(annotate_faces(photo(), [face(50, 100, 200, 200), face(450, 100, 200, 200)]))

    first, second = pixel(drawn, 51, 200), pixel(drawn, 451, 200)
    assert nearest(first, FACE_COLOURS) == FACE_COLOURS[0]
    assert nearest(second, FACE_COLOURS) == FACE_COLOURS[1]
    assert FACE_COLOURS[0] != FACE_COLOURS[1]


def test_boxes_scale_from_provider_pixels_to_the_drawn_size() -> None:
    image = photo((1600, 1200))
    drawn = decode(annotate_faces(image, [face(400, 300, 400, 400)], max_side=800))

    assert drawn.size == (800, 600)
    assert_close(pixel(drawn, 201, 250), FACE_COLOURS[0])  # 400 px / 2
    assert_close(pixel(drawn, 399, 250), FACE_COLOURS[0])  # 800 px / 2
    assert_close(pixel(drawn, 600, 250), GREY, 8)  # where an unscaled box would be


def test_line_and_label_grow_with_the_face() -> None:
    def coloured_run(drawn: Image.Image, x: int, y: int) -> int:
        run = 0
        while distance(pixel(drawn, x + run, y), FACE_COLOURS[0]) < 60:
            run += 1
        return run

    small = decode(annotate_faces(photo(), [face(300, 250, 40, 40)]))
    large = decode(annotate_faces(photo((1280, 960)), [face(300, 250, 600, 600)]))

    assert 1 <= coloured_run(small, 300, 270) <= 2
    assert coloured_run(large, 300, 550) >= 8


def test_landmarks_are_dots_and_can_be_turned_off() -> None:
    subject = face(200, 150, 300, 300, landmarks=(Point(300, 250), Point(400, 250)))

    with_dots = decode(annotate_faces(photo(), [subject]))
    without = decode(annotate_faces(photo(), [subject], draw_landmarks=False))

    assert_close(pixel(with_dots, 300, 250), FACE_COLOURS[0])
    assert_close(pixel(with_dots, 400, 250), FACE_COLOURS[0])
    assert_close(pixel(without, 300, 250), GREY, 8)
    assert_close(pixel(with_dots, 350, 250), GREY, 8)  # small: between the dots is photo


def test_box_partly_outside_the_image_is_clipped() -> None:
    faces = [
        face(700, 500, 300, 300),  # past the bottom right corner
        face(-100, -80, 250, 250),  # past the top left corner
        face(5000, 5000, 10, 10),  # wholly outside
        face(math.nan, 10, 10, 10),
        face(300, 300, -50, -50),  # negative size
        face(100, 400, 0, 0),
        face(1e12, -1e12, 1e13, 1e13, landmarks=(Point(math.inf, 1), Point(-1e15, 1e15))),
        face(-1e12, -1e12, 2e12, 2e12),  # covers everything: its line runs along the border
    ]

    drawn = decode(annotate_faces(photo(), faces))

    assert drawn.size == (800, 600)
    assert_close(pixel(drawn, 701, 560), face_colour(0))  # left edge of face 1, clipped below
    assert_close(pixel(drawn, 149, 40), face_colour(1))  # right edge of face 2
    assert_close(pixel(drawn, 400, 150), GREY, 8)
    assert_close(pixel(drawn, 400, 598), face_colour(7))  # the huge box, clipped to the border


def test_crowd_of_120_faces_draws_every_box() -> None:
    image = photo((1920, 1080))
    faces = [face(20 + col * 158, 30 + row * 105, 90, 70) for row in range(10) for col in range(12)]

    drawn = decode(annotate_faces(image, faces))

    assert drawn.size == (1280, 720)
    scale = 1280 / 1920
    for index, subject in enumerate(faces):
        box = subject.box
        x = box.left * scale + 0.5
        y = (box.top + box.height * 0.6) * scale
        found = pixel(drawn, x, y)
        assert distance(found, GREY) > 60, f"face {index + 1} not drawn"
        assert nearest(found, FACE_COLOURS) == face_colour(index), f"face {index + 1}"
    assert_close(pixel(drawn, 1275, 715), GREY, 8)


def test_crowd_labels_stay_inside_the_image() -> None:
    faces = [face(col * 40, 0, 30, 30) for col in range(20)] + [face(780, 570, 20, 30)]

    drawn = decode(annotate_faces(photo(), faces))

    assert drawn.size == (800, 600)
    # The last face's tag is pulled back into the corner rather than cut off.
    assert nearest(pixel(drawn, 799, 599), (*FACE_COLOURS, GREY)) != GREY


async def test_annotate_faces_async() -> None:
    data = await annotate_faces_async(photo(), [face(100, 100, 100, 100)])

    assert decode(data).size == (800, 600)


# --------------------------------------------------------------------------- side by side


def red_face_photo() -> tuple[PreparedImage, Face]:
    image = photo((900, 700), GREY, (((500, 200, 700, 440), RED),))
    return image, face(500, 200, 200, 240)


def test_side_by_side_size_and_tiles() -> None:
    image_a, face_a = red_face_photo()
    image_b = photo((640, 480), BLUE)

    drawn = decode(
        compare_side_by_side(
            Shown(image_a, (face_a,)),
            Shown(image_b, (face(200, 150, 200, 200),)),
            0.87,
            tile=256,
            same=True,
        )
    )

    assert drawn.size == (2 * 256 + tile_gap(256), 256 + band_height(256))
    assert_close(pixel(drawn, 128, 128), RED)
    assert_close(pixel(drawn, 256 + tile_gap(256) + 128, 128), BLUE)
    assert_close(pixel(drawn, 256 + tile_gap(256) // 2, 128), BACKGROUND, 12)  # the gap


def test_side_by_side_default_tile() -> None:
    image_a, face_a = red_face_photo()

    shown = Shown(image_a, (face_a,))
    drawn = decode(compare_side_by_side(shown, shown, 0.5, same=False))

    assert drawn.size == (2 * 512 + tile_gap(512), 512 + band_height(512))
    assert_close(pixel(drawn, 256, 256), RED)


def test_none_face_shows_the_whole_photo() -> None:
    halves = photo((800, 400), RED, (((400, 0, 799, 399), GREEN),))

    drawn = decode(compare_side_by_side(Shown(halves), Shown(halves), 0.1, tile=200, same=False))

    # 800x400 fitted into 200: 200x100, centred.
    assert_close(pixel(drawn, 20, 100), RED)
    assert_close(pixel(drawn, 180, 100), GREEN)
    assert_close(pixel(drawn, 100, 30), BACKGROUND, 12)  # padding above the photo


@pytest.mark.parametrize("same", [True, False])
def test_band_and_frames_follow_same(same: bool) -> None:
    want, avoid = (SAME_COLOUR, DIFFERENT_COLOUR) if same else (DIFFERENT_COLOUR, SAME_COLOUR)
    image = photo((400, 400), GREY)

    drawn = decode(compare_side_by_side(Shown(image), Shown(image), 0.87, tile=200, same=same))

    band = drawn.crop((0, 200, drawn.width, drawn.height))
    assert sum(distance(p, want) < 60 for p in pixels(band)) > 200, f"score not in {want}"
    assert not any(distance(p, avoid) < 60 for p in pixels(band))
    # Centred: coloured pixels in both halves of the band, none at its ends.
    half = band.width // 2
    assert any(distance(p, want) < 60 for p in pixels(band.crop((0, 0, half, band.height))))
    assert any(
        distance(p, want) < 60 for p in pixels(band.crop((half, 0, band.width, band.height)))
    )
    ends = (
        band.crop((0, 0, 60, band.height)),
        band.crop((band.width - 60, 0, band.width, band.height)),
    )
    assert all(distance(p, BACKGROUND) < 20 for end in ends for p in pixels(end))
    assert_close(pixel(drawn, 1, 100), want)  # frame of tile A
    assert_close(pixel(drawn, drawn.width - 2, 100), want)  # frame of tile B


@pytest.mark.parametrize("score", [0.0, 1.0, 1.7, -3.0, math.nan, math.inf])
def test_odd_scores_do_not_crash(score: float) -> None:
    image = photo((300, 300))

    drawn = decode(compare_side_by_side(Shown(image), Shown(image), score, tile=64, same=True))

    assert drawn.size == (2 * 64 + tile_gap(64), 64 + band_height(64))


async def test_compare_side_by_side_async() -> None:
    image_a, face_a = red_face_photo()

    data = await compare_side_by_side_async(
        Shown(image_a, (face_a,)), Shown(image_a), 0.9, tile=128, same=True
    )

    assert decode(data).size == (2 * 128 + tile_gap(128), 128 + band_height(128))


# --------------------------------------------------------------------------- crop_face


def test_crop_keeps_a_margin_around_the_face() -> None:
    image = Image.new("RGB", (1000, 800), GREY)
    ImageDraw.Draw(image).rectangle((400, 300, 499, 399), fill=RED)

    crop = crop_face(jpeg(image), Box(400, 300, 100, 100), 270)

    assert crop.size == (270, 270)
    assert_close(pixel(crop, 135, 135), RED)
    # The face fills 1 / (1 + margin) of the side; the rim is photo.
    inner = 270 / (1 + CROP_MARGIN)
    assert_close(pixel(crop, (270 - inner) / 2 + 6, 135), RED)
    assert_close(pixel(crop, (270 - inner) / 2 - 6, 135), GREY, 10)
    assert_close(pixel(crop, 3, 3), GREY, 10)


def test_crop_uses_the_frame_coordinates() -> None:
    # Provider saw 500x400; the bytes are twice that size.
    image = Image.new("RGB", (1000, 800), GREY)
    ImageDraw.Draw(image).rectangle((400, 300, 499, 399), fill=RED)

    crop = crop_face(jpeg(image), Box(200, 150, 50, 50), 128, frame=(500, 400))

    assert crop.size == (128, 128)
    assert_close(pixel(crop, 64, 64), RED)
    assert_close(pixel(crop, 2, 64), GREY, 10)


def test_crop_near_the_edge_moves_inside_and_stays_square() -> None:
    image = Image.new("RGB", (600, 400), GREY)
    ImageDraw.Draw(image).rectangle((0, 0, 99, 99), fill=RED)

    crop = crop_face(jpeg(image), Box(-20, -20, 120, 120), 162)

    assert crop.size == (162, 162)
    assert_close(pixel(crop, 5, 5), RED)  # photo corner: no padding, the square was moved
    assert_close(pixel(crop, 155, 155), GREY, 10)


def test_crop_of_a_face_larger_than_the_photo_is_padded_not_stretched() -> None:
    image = Image.new("RGB", (400, 200), RED)

    crop = crop_face(jpeg(image), Box(50, 0, 300, 200), 200)

    assert crop.size == (200, 200)
    assert_close(pixel(crop, 100, 100), RED)
    assert_close(pixel(crop, 100, 5), BACKGROUND, 12)  # 400x200 region in a square


@pytest.mark.parametrize(
    "box",
    [None, Box(5000, 5000, 10, 10), Box(10, 10, 0, 0), Box(math.nan, 0, 10, 10)],
)
def test_crop_without_a_usable_box_fits_the_whole_photo(box: Box | None) -> None:
    image = Image.new("RGB", (300, 300), RED)
    ImageDraw.Draw(image).rectangle((150, 0, 299, 299), fill=GREEN)

    crop = crop_face(jpeg(image), box, 100)

    assert crop.size == (100, 100)
    assert_close(pixel(crop, 20, 50), RED)
    assert_close(pixel(crop, 80, 50), GREEN)
