"""The local engine's CPU work: the models and the raw quantities measured with them.

Everything here is synchronous, CPU-bound and meant for a worker process
(``services.local.pool``); nothing touches an event loop. The values produced are
physical ones (pixels, ratios, luminances, angles, a descriptor distance); turning
them into the 0–100 scores of a check is ``services.local.measure``'s job, and its
module docstring is the one place those formulas are written down.

How a photo goes through:

1. **Decode for detection.** A JPEG is decoded with Pillow's ``draft()`` straight
   to about the detection size (the DCT scaling skips most of a 12 MP decode),
   turned upright by its EXIF orientation after downscaling; other formats are
   decoded once and reduced.
2. **Detect** with dlib's HOG detector (or the opt-in CNN) on that copy: long side
   800 px for portraits, 1280 px for group photos. HOG's window is 80 px, so when
   nothing is found the copy is upsampled once (2x) and searched again.
3. **Keep the real faces.** Each box is shown to MediaPipe's face mesh, whose
   presence output says whether it holds a face; the main face is the largest real one.
4. **Landmarks**: the 468-point mesh (twice, the second time on its own extent) and
   the iris model on each eye, standing in for the 68 iBUG points (``MESH_AS_68``);
   or dlib's 68-point model (iBUG 300-W, non-commercial); and always the 5-point
   model (CC0) on the full resolution, which aligns the chips.
5. **Descriptor** (compare only): dlib's ResNet on a 150 px chip aligned with the
   5-point model; the distance of two descriptors is Euclidean.
6. **Pixel measures** on a face chip aligned the same way (rotation and scale
   removed, so they do not depend on the photo's resolution): Laplacian sharpness,
   skin luminance, left/right cheek luminance, the edges a glasses frame would draw.
7. **Geometry** from the landmarks: eye aspect ratio, inner-lip opening, smile, gaze
   from the irises, and the head pose from a numpy Perspective-n-Point solve on a
   generic 3-D face.
8. **Body and background** (check only): the pose model's shoulder points, and a
   colour plane fitted to every pixel the person-segmentation mask calls background;
   how much of it leaves the plane, how much the plane changes, and where the head
   (with hair) and the clothes are.
"""

from __future__ import annotations

import importlib.util
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

import numpy as np
from PIL import Image, JpegImagePlugin

from services.images import open_for_drawing
from services.local import modelfiles
from services.local.demographics import Demographics
from services.local.mesh import MESH_SCALE, Eye, Mesh, Meshes, Region

if TYPE_CHECKING:
    import dlib  # no type information: Any to mypy; imported lazily at run time

MODEL_PACKAGE: Final = "face_recognition_models"
MODEL_FILES: Final[dict[str, str]] = {
    "cnn": "mmod_human_face_detector.dat",
    "landmarks5": "shape_predictor_5_face_landmarks.dat",
    "landmarks68": "shape_predictor_68_face_landmarks.dat",
    "descriptor": "dlib_face_recognition_resnet_model_v1.dat",
}

# Long side of the detection copy. Portraits: faces are large, 800 px keeps them well
# above HOG's 80 px window. Group photos: faces of about 100 px in a phone photo would
# fall under the window at 800, so they get 1280.
PORTRAIT_SIDE: Final = 800
GROUP_SIDE: Final = 1280

# The aligned face chip the pixel measures are taken on (dlib's template: eyes near
# y = 0.32 of the chip, mouth corners near 0.70, chin at the bottom edge).
CHIP_SIZE: Final = 200
CHIP_PADDING: Final = 0.25
# Chip regions as (x0, y0, x1, y1) shares of the chip side, image-left first.
LEFT_CHEEK: Final = (0.14, 0.43, 0.36, 0.65)
RIGHT_CHEEK: Final = (0.64, 0.43, 0.86, 0.65)
NOSE_BRIDGE: Final = (0.43, 0.36, 0.57, 0.50)
INNER_FACE: Final = (0.15, 0.20, 0.85, 0.80)

# The descriptor's chip, as face_recognition and dlib's examples make it.
DESCRIPTOR_CHIP: Final = 150
DESCRIPTOR_PADDING: Final = 0.25

Landmarks = Literal["mesh", "68", "5"]
DetectorKind = Literal["hog", "cnn"]


class ModelsMissing(RuntimeError):
    """dlib or the model files cannot be found; the message says which and where."""


@dataclass(frozen=True, slots=True)
class EngineConfig:
    landmarks: Landmarks = "mesh"
    detector: DetectorKind = "hog"
    models_dir: str = ""  # LOCAL_MODELS_DIR; empty: modelfiles' default


# --------------------------------------------------------------------------- models


def models_folder() -> Path:
    """``face_recognition_models``' ``models/`` folder, found without importing the package.

    Its ``__init__`` imports ``pkg_resources``, which current setuptools no longer
    ships; ``find_spec`` only reads where the package is.
    """
    try:
        spec = importlib.util.find_spec(MODEL_PACKAGE)
    except (ImportError, ValueError) as error:
        raise ModelsMissing(f"{MODEL_PACKAGE} cannot be looked up: {error}") from error
    if spec is None or not spec.submodule_search_locations:
        raise ModelsMissing(f"the {MODEL_PACKAGE} package is not installed")
    for location in spec.submodule_search_locations:
        folder = Path(location) / "models"
        if folder.is_dir():
            return folder
    raise ModelsMissing(f"{MODEL_PACKAGE} has no models/ folder")


def model_files(config: EngineConfig) -> dict[str, Path]:
    """The files ``config`` needs, each checked to exist; raises ``ModelsMissing``."""
    try:
        import dlib  # noqa: F401  (the binary wheel, dlib-bin)
    except ImportError as error:
        raise ModelsMissing(f"dlib cannot be imported: {error}") from error
    folder = models_folder()
    needed = ["landmarks5", "descriptor"]
    if config.landmarks == "68":
        needed.append("landmarks68")
    if config.detector == "cnn":
        needed.append("cnn")
    files = {key: folder / MODEL_FILES[key] for key in needed}
    missing = [str(path) for path in files.values() if not path.is_file()]
    if missing:
        raise ModelsMissing("model files missing: " + ", ".join(missing))
    extra_model_files(config)
    return files


def extra_model_files(config: EngineConfig) -> dict[str, Path]:
    """The MediaPipe and age/gender files, verified; raises ``ModelsMissing`` naming them."""
    try:
        return modelfiles.paths(folder=Path(config.models_dir) if config.models_dir else None)
    except modelfiles.ModelFilesMissing as error:
        raise ModelsMissing(str(error)) from error


class Models:
    """dlib's detector, shape predictors and descriptor network, loaded once per process."""

    def __init__(self, config: EngineConfig, files: dict[str, Path] | None = None) -> None:
        import dlib

        files = files if files is not None else model_files(config)
        mesh_files = extra_model_files(config)
        self.config = config
        self.hog = dlib.get_frontal_face_detector()
        self.cnn = (
            dlib.cnn_face_detection_model_v1(str(files["cnn"]))
            if config.detector == "cnn"
            else None
        )
        self.five = dlib.shape_predictor(str(files["landmarks5"]))
        self.sixty_eight = (
            dlib.shape_predictor(str(files["landmarks68"])) if config.landmarks == "68" else None
        )
        self.descriptor_net = dlib.face_recognition_model_v1(str(files["descriptor"]))
        self.meshes = Meshes(mesh_files)
        self.demographics = Demographics(mesh_files)


# --------------------------------------------------------------------------- decoding


@dataclass(slots=True)
class Picture:
    """One photo, upright RGB: a small copy to detect on, the full resolution on demand."""

    data: bytes
    width: int  # full resolution, upright
    height: int
    small: np.ndarray  # H x W x 3 uint8
    _full: np.ndarray | None = None

    @property
    def scale(self) -> tuple[float, float]:
        """Full-resolution pixels per small-copy pixel, x and y."""
        return (self.width / self.small.shape[1], self.height / self.small.shape[0])

    def full(self) -> np.ndarray:
        if self._full is None:
            if self.small.shape[1] == self.width and self.small.shape[0] == self.height:
                self._full = self.small
            else:
                self._full = _array(open_for_drawing(self.data, 1 << 30))
        return self._full


def _array(image: Image.Image) -> np.ndarray:
    if image.mode != "RGB":  # convert() copies even when the mode is already right
        image = image.convert("RGB")
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))


def decode(data: bytes, side: int = PORTRAIT_SIDE) -> Picture:
    """Decode for detection at about ``side`` px (long side); raises ``ImageError``.

    JPEG (and MPO) decode with ``draft()`` at the aspect-correct target size, then turn
    upright; the full resolution is decoded only if something asks for it. Other
    formats have no reduced decode, so the full image is decoded once and reduced.
    """
    with Image.open(io.BytesIO(data)) as probe:
        is_jpeg = isinstance(probe, JpegImagePlugin.JpegImageFile)
    if is_jpeg:
        small = open_for_drawing(data, side)
        full_size = _upright_size(data)
        picture = Picture(data, full_size[0], full_size[1], _array(small))
        return picture
    full = open_for_drawing(data, 1 << 30)
    width, height = full.size
    if max(width, height) > side:
        factor = side / max(width, height)
        target = (max(1, round(width * factor)), max(1, round(height * factor)))
        small_image = full.resize(target, Image.Resampling.BILINEAR, reducing_gap=2.0)
        return Picture(data, width, height, _array(small_image), _array(full))
    array = _array(full)
    return Picture(data, width, height, array, array)


def _upright_size(data: bytes) -> tuple[int, int]:
    """The displayed size of a JPEG, from its header and EXIF orientation."""
    with Image.open(io.BytesIO(data)) as im:
        width, height = im.size
        try:
            orientation = im.getexif().get(0x0112, 1)
        except Exception:  # broken EXIF: open_for_drawing ignored it too
            orientation = 1
    if orientation in (5, 6, 7, 8):
        return (height, width)
    return (width, height)


def alpha_channel(data: bytes) -> np.ndarray | None:
    """The upright alpha channel scaled like the detection copy, or ``None`` if opaque."""
    with Image.open(io.BytesIO(data)) as im:
        bands = im.getbands()
        if "A" not in bands and "transparency" not in im.info:
            return None
        im.load()
        rgba = im.convert("RGBA")
        try:
            orientation = im.getexif().get(0x0112, 1)
        except Exception:
            orientation = 1
    transpose = {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_270,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_90,
    }.get(orientation if isinstance(orientation, int) else 1)
    if transpose is not None:
        rgba = rgba.transpose(transpose)
    return np.asarray(rgba.getchannel("A"), dtype=np.uint8)


# --------------------------------------------------------------------------- detection


@dataclass(frozen=True, slots=True)
class Detection:
    """A face box in full-resolution pixels and the detector's own score."""

    left: float
    top: float
    right: float
    bottom: float
    score: float
    presence: float = 1.0  # the face mesh's own "this is a face", 0..1

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)


def detect(models: Models, picture: Picture, *, retry: bool = True) -> list[Detection]:
    """Real faces on the small copy, main face first, with one 2x-upsampled retry if none.

    Every box the detector finds is shown to the face mesh, whose presence output says
    whether a face is there at all: a badge, a logo or a pattern that HOG takes for a
    face scores near 0, a face near 1. Boxes under ``FACE_PRESENCE`` are dropped; the
    main face is the one with the largest area times presence.
    """
    found = _run_detector(models, picture.small, 0)
    faces = _real(models, picture.small, found)
    if not faces and retry:
        faces = _real(models, picture.small, _run_detector(models, picture.small, 1))
    sx, sy = picture.scale
    faces = [
        Detection(d.left * sx, d.top * sy, d.right * sx, d.bottom * sy, d.score, d.presence)
        for d in faces
    ]
    faces.sort(key=lambda d: d.area * d.presence, reverse=True)
    return faces


# A box is a face when the mesh says so at least this surely (MediaPipe's own threshold
# for keeping a tracked face). Real faces score 0.99+, random patches of a portrait
# under 0.06 (the sample photos).
FACE_PRESENCE: Final = 0.5
# Boxes shown to the mesh, the detector's most confident first: about 2 ms each. As
# many as detect reports at most (``DETECT_MAX_FACES``), so a crowd loses no face.
MAX_CANDIDATES: Final = 120


def _real(
    models: Models, image: np.ndarray, found: list[tuple[float, float, float, float, float]]
) -> list[Detection]:
    ranked = sorted(found, key=lambda item: item[4], reverse=True)[:MAX_CANDIDATES]
    faces = []
    for left, top, right, bottom, score in ranked:
        box = Detection(left, top, right, bottom, score)
        five = points(models.five(image, _rectangle(box)))
        presence = models.meshes.mesh(image, mesh_region(box, five)).presence
        if presence >= FACE_PRESENCE:
            faces.append(Detection(left, top, right, bottom, score, presence))
    return faces


def mesh_region(box: Detection, five: np.ndarray) -> Region:
    """MediaPipe's region for the mesh: 1.5 times the box, turned to level the eyes."""
    return Region(
        (box.left + box.right) / 2.0,
        (box.top + box.bottom) / 2.0,
        MESH_SCALE * max(box.width, box.height),
        math.radians(roll_from_eyes(five)),
    )


def face_mesh(models: Models, image: np.ndarray, box: Detection, five: np.ndarray) -> Mesh:
    """The 468 points in two passes, the second on the first one's own extent (as
    MediaPipe tracks a face from frame to frame): the detector's box is looser."""
    region = mesh_region(box, five)
    first = models.meshes.mesh(image, region)
    c, n = math.cos(region.angle), math.sin(region.angle)
    xy = first.points[:, :2]
    turned = xy @ np.array([[c, -n], [n, c]])  # into the face's level frame
    low, high = turned.min(axis=0), turned.max(axis=0)
    middle = np.array([[c, -n], [n, c]]) @ ((low + high) / 2.0)
    second = Region(
        float(middle[0]), float(middle[1]), MESH_SCALE * float(max(high - low)), region.angle
    )
    return models.meshes.mesh(image, second)


# The 468-point mesh's points at the places of the 68 iBUG points (jaw 0..16, brows,
# nose, eyes from the outer corners, lips), so that one set of formulas serves both.
MESH_AS_68: Final = (
    127, 234, 93, 132, 58, 172, 136, 149, 152, 378, 365, 397, 288, 361, 323, 454, 356,
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    168, 197, 5, 4, 75, 97, 2, 326, 305,
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,
    78, 82, 13, 312, 308, 317, 14, 87,
)  # fmt: skip


def detect_full(models: Models, image: np.ndarray, upsample: int) -> list[Detection]:
    """The naive way (the bench's baseline): the detector on the image as given."""
    found = _run_detector(models, image, upsample)
    faces = [Detection(*item) for item in found]
    faces.sort(key=lambda d: d.area, reverse=True)
    return faces


def _run_detector(
    models: Models, image: np.ndarray, upsample: int
) -> list[tuple[float, float, float, float, float]]:
    if models.cnn is not None:
        return [
            (
                float(d.rect.left()),
                float(d.rect.top()),
                float(d.rect.right() + 1),
                float(d.rect.bottom() + 1),
                float(d.confidence),
            )
            for d in models.cnn(image, upsample)
        ]
    rects, scores, _ = models.hog.run(image, upsample, 0.0)
    return [
        (
            float(r.left()),
            float(r.top()),
            float(r.right() + 1),
            float(r.bottom() + 1),
            float(s),
        )
        for r, s in zip(rects, scores, strict=True)
    ]


def _rectangle(detection: Detection) -> dlib.rectangle:
    import dlib

    return dlib.rectangle(
        round(detection.left),
        round(detection.top),
        round(detection.right) - 1,
        round(detection.bottom) - 1,
    )


def shapes(
    models: Models, image: np.ndarray, detection: Detection
) -> tuple[dlib.full_object_detection, dlib.full_object_detection | None]:
    """dlib's full_object_detection of the 5-point model and, when loaded, the 68-point one."""
    rect = _rectangle(detection)
    five = models.five(image, rect)
    dense = models.sixty_eight(image, rect) if models.sixty_eight is not None else None
    return five, dense


def points(shape: dlib.full_object_detection) -> np.ndarray:
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


def descriptor(models: Models, image: np.ndarray, five: dlib.full_object_detection) -> np.ndarray:
    """dlib's 128-d face descriptor, the chip aligned with the 5-point shape."""
    import dlib

    chip = dlib.get_face_chip(image, five, size=DESCRIPTOR_CHIP, padding=DESCRIPTOR_PADDING)
    return np.array(models.descriptor_net.compute_face_descriptor(chip), dtype=np.float64)


def face_chip(image: np.ndarray, five: dlib.full_object_detection) -> np.ndarray:
    """The face aligned like dlib's descriptor chip, ``CHIP_SIZE`` px: the pixel measures' input."""
    import dlib

    return np.asarray(dlib.get_face_chip(image, five, size=CHIP_SIZE, padding=CHIP_PADDING))


def distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b))


# --------------------------------------------------------------------------- pixel measures


def luma(rgb: np.ndarray) -> np.ndarray:
    """Rec. 601 luma, 0..255 floats (what JPEG stores)."""
    rgb = rgb.astype(np.float64)
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def linear(values: np.ndarray | float) -> np.ndarray | float:
    """sRGB-encoded 0..255 to linear light 0..1."""
    v = np.asarray(values, dtype=np.float64) / 255.0
    out = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    return out if out.ndim else float(out)


def _region(array: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    h, w = array.shape[:2]
    x0, y0, x1, y1 = box
    return array[round(y0 * h) : round(y1 * h), round(x0 * w) : round(x1 * w)]


def laplacian(gray: np.ndarray) -> np.ndarray:
    """The 4-neighbour Laplacian of a 2-D array (valid region, one pixel smaller each side)."""
    result: np.ndarray = (
        gray[:-2, 1:-1] + gray[2:, 1:-1] + gray[1:-1, :-2] + gray[1:-1, 2:] - 4 * gray[1:-1, 1:-1]
    )
    return result


@dataclass(frozen=True, slots=True)
class Lighting:
    skin_luma: float  # mean Rec.601 luma of cheeks and nose bridge, 0..255
    face_luma: float  # mean luma of the inner face (eyes to mouth), 0..255
    face_p95: float  # 95th percentile of the inner face's luma: highlights, eye whites
    left_linear: float  # median linear light of the image-left cheek, 0..1
    right_linear: float


def lighting(chip: np.ndarray) -> Lighting:
    y = luma(chip)
    left = _region(y, LEFT_CHEEK)
    right = _region(y, RIGHT_CHEEK)
    bridge = _region(y, NOSE_BRIDGE)
    inner = _region(y, INNER_FACE)
    skin = np.concatenate([left.ravel(), right.ravel(), bridge.ravel()])
    return Lighting(
        skin_luma=float(skin.mean()),
        face_luma=float(inner.mean()),
        face_p95=float(np.percentile(inner, 95)),
        left_linear=float(linear(np.median(left))),
        right_linear=float(linear(np.median(right))),
    )


def sharpness(chip: np.ndarray) -> float:
    """Laplacian energy over luminance energy on the inner face of the aligned chip.

    The ratio ``std(Laplacian) / std(luma)`` is dimensionless: brightness and contrast
    scale both, so a darker copy keeps its value while a blurred one loses it.
    """
    gray = _region(luma(chip), INNER_FACE)
    spread = float(gray.std())
    if spread < 1e-6:
        return 0.0
    return float(laplacian(gray).std()) / spread


# --------------------------------------------------------------------------- geometry


def eye_aspect_ratio(pts68: np.ndarray) -> float:
    """Mean eye aspect ratio (Soukupová and Čech 2016): about 0.3 open, under 0.15 closed."""

    def one(eye: np.ndarray) -> float:
        vertical = np.linalg.norm(eye[1] - eye[5]) + np.linalg.norm(eye[2] - eye[4])
        horizontal = np.linalg.norm(eye[0] - eye[3])
        return float(vertical / (2.0 * horizontal)) if horizontal > 0 else 0.0

    return (one(pts68[36:42]) + one(pts68[42:48])) / 2.0


def mouth_opening(pts68: np.ndarray) -> float:
    """Inner-lip gap over inner mouth width: 0 with lips together, about 0.5 wide open."""
    width = np.linalg.norm(pts68[64] - pts68[60])
    if width <= 0:
        return 0.0
    gap = (
        np.linalg.norm(pts68[61] - pts68[67])
        + np.linalg.norm(pts68[62] - pts68[66])
        + np.linalg.norm(pts68[63] - pts68[65])
    ) / 3.0
    return float(gap / width)


@dataclass(frozen=True, slots=True)
class Smile:
    width: float  # outer mouth width over outer eye-corner span
    lift: float  # lip-corner height above the lips' centre line, over mouth width


def smile_geometry(pts68: np.ndarray) -> Smile:
    left, right = pts68[48], pts68[54]
    width = float(np.linalg.norm(right - left))
    span = float(np.linalg.norm(pts68[45] - pts68[36]))
    if width <= 0 or span <= 0:
        return Smile(0.0, 0.0)
    # Measured in the face's own frame: the eye line is horizontal.
    angle = math.atan2(pts68[45][1] - pts68[36][1], pts68[45][0] - pts68[36][0])
    c, s = math.cos(-angle), math.sin(-angle)

    def level(p: np.ndarray) -> float:  # y in the de-rotated frame (down is positive)
        return float(s * p[0] + c * p[1])

    centre = (level(pts68[62]) + level(pts68[66])) / 2.0  # inner lips' centre
    corners = (level(left) + level(right)) / 2.0
    return Smile(width=width / span, lift=(centre - corners) / width)


def lid_ratio(eyes: tuple[Eye, Eye]) -> float:
    """The eye aspect ratio from the iris model's lid lines: the mean gap between the
    lids at the middle three of their seven points, over the corner span."""

    def one(eye: Eye) -> float:
        c = eye.contour
        span = float(np.linalg.norm(c[8] - c[0]))
        gaps = [float(np.linalg.norm(c[k + 8] - c[k])) for k in (3, 4, 5)]
        return sum(gaps) / len(gaps) / max(span, 1e-6)

    return (one(eyes[0]) + one(eyes[1])) / 2.0


def gaze(eyes: tuple[Eye, Eye]) -> float:
    """How far the irises sit sideways from the eyes' middles, in eye widths (the mean of
    both eyes, signed so that they agree: 0 when the eyes look straight out of the face).

    Only the sideways offset: up and down, the iris's place between the lids moves with
    how wide the eyes are open (a surprised stare shows white under the iris), not only
    with where they look.
    """
    offsets = []
    for eye in eyes:
        c = eye.contour
        left, right = (c[0], c[8]) if c[0][0] <= c[8][0] else (c[8], c[0])
        span = float(np.linalg.norm(right - left))
        if span < 1e-6:
            return 0.0
        offsets.append(float((eye.iris[0] - (left + right) / 2.0) @ (right - left)) / span**2)
    return abs(sum(offsets) / len(offsets))


def eye_centres(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image-left and image-right eye centres from either landmark set."""
    if len(pts) == 68:
        return pts[36:42].mean(axis=0), pts[42:48].mean(axis=0)
    # 5 points: 0,1 the image-right eye's corners, 2,3 the image-left eye's, 4 under the nose.
    return pts[2:4].mean(axis=0), pts[0:2].mean(axis=0)


def outer_eye_corners(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(pts) == 68:
        return pts[36], pts[45]
    return pts[2], pts[0]


def roll_from_eyes(pts: np.ndarray) -> float:
    """Degrees the eye line turns clockwise in the image (image y points down)."""
    left, right = eye_centres(pts)
    return math.degrees(math.atan2(right[1] - left[1], right[0] - left[0]))


# A generic face for head pose, in millimetres, in the camera's frame when the head
# faces it: x to the image's right, y down, z away from the camera; the nose tip is the
# origin. The usual six-point model (the OpenCV head-pose tutorials' numbers, their y and
# z flipped so that "facing the camera" is the identity rotation).
FACE_MODEL: Final = np.array(
    [
        (0.0, 0.0, 0.0),  # nose tip (68-point index 30)
        (0.0, 330.0, 65.0),  # chin (8)
        (-225.0, -170.0, 135.0),  # image-left eye, outer corner (36)
        (225.0, -170.0, 135.0),  # image-right eye, outer corner (45)
        (-150.0, 150.0, 125.0),  # image-left mouth corner (48)
        (150.0, 150.0, 125.0),  # image-right mouth corner (54)
    ]
)
FACE_MODEL_POINTS: Final = (30, 8, 36, 45, 48, 54)


def rotation_matrix(rvec: np.ndarray) -> np.ndarray:
    """Rodrigues: a rotation vector to its 3x3 matrix."""
    theta = float(np.linalg.norm(rvec))
    if theta < 1e-12:
        return np.eye(3)
    k = rvec / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    matrix: np.ndarray = np.eye(3) + math.sin(theta) * kx + (1 - math.cos(theta)) * (kx @ kx)
    return matrix


def euler_angles(matrix: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of a rotation ``Rz(roll) @ Ry(yaw) @ Rx(pitch)``.

    Signs, as the photo shows them: yaw > 0 turns the nose towards the image's right,
    pitch > 0 raises the chin, roll > 0 tilts the head clockwise.
    """
    b = math.asin(max(-1.0, min(1.0, -matrix[2, 0])))
    a = math.atan2(matrix[2, 1], matrix[2, 2])
    c = math.atan2(matrix[1, 0], matrix[0, 0])
    return (-math.degrees(b), -math.degrees(a), math.degrees(c))


def project(
    model: np.ndarray, rvec: np.ndarray, tvec: np.ndarray, focal: float, centre: np.ndarray
) -> np.ndarray:
    """Pinhole projection of ``model`` rotated by ``rvec`` and moved by ``tvec``."""
    camera = model @ rotation_matrix(rvec).T + tvec
    projected: np.ndarray = focal * camera[:, :2] / camera[:, 2:3] + centre
    return projected


@dataclass(frozen=True, slots=True)
class PnpSolution:
    rvec: np.ndarray
    tvec: np.ndarray
    error: float  # RMS reprojection error, pixels

    @property
    def angles(self) -> tuple[float, float, float]:
        return euler_angles(rotation_matrix(self.rvec))


def solve_pnp(
    model: np.ndarray,
    image_points: np.ndarray,
    focal: float,
    centre: np.ndarray,
    *,
    iterations: int = 100,
) -> PnpSolution:
    """Rotation and translation that project ``model`` onto ``image_points`` (Levenberg-Marquardt).

    What ``cv2.solvePnP(..., SOLVEPNP_ITERATIVE)`` does for a camera without distortion:
    minimise the squared reprojection error over a rotation vector and a translation.
    It starts facing the camera at the distance the point spread implies, which is
    where a face photo is, and converges in a handful of steps.
    """
    model = np.asarray(model, dtype=np.float64)
    target = np.asarray(image_points, dtype=np.float64)
    spread_model = float(np.linalg.norm(model[:, :2] - model[:, :2].mean(axis=0), axis=1).mean())
    spread_image = float(np.linalg.norm(target - target.mean(axis=0), axis=1).mean())
    z = focal * spread_model / max(spread_image, 1e-9)
    offset = (target.mean(axis=0) - centre) * z / focal - model[:, :2].mean(axis=0)
    params = np.array([0.0, 0.0, 0.0, offset[0], offset[1], z])

    def residual(p: np.ndarray) -> np.ndarray:
        return (project(model, p[:3], p[3:], focal, centre) - target).ravel()

    def jacobian(p: np.ndarray) -> np.ndarray:
        jac = np.empty((target.size, 6))
        for i in range(6):
            step = 1e-6 * max(1.0, abs(p[i]))
            up, down = p.copy(), p.copy()
            up[i] += step
            down[i] -= step
            jac[:, i] = (residual(up) - residual(down)) / (2 * step)
        return jac

    damping = 1e-3
    current = residual(params)
    cost = float(current @ current)
    for _ in range(iterations):
        converged = False
        jac = jacobian(params)
        normal = jac.T @ jac
        gradient = jac.T @ current
        improved = False
        while damping < 1e12:
            step = np.linalg.solve(normal + damping * np.diag(np.diag(normal) + 1e-12), -gradient)
            candidate = params + step
            trial = residual(candidate)
            trial_cost = float(trial @ trial)
            if trial_cost < cost:
                params, current = candidate, trial
                converged = cost - trial_cost < 1e-14 * max(cost, 1e-30)
                cost = trial_cost
                damping = max(damping / 10, 1e-12)
                improved = True
                break
            damping *= 10
        if not improved or converged or float(np.abs(step).max()) < 1e-12:
            break
    rms = math.sqrt(cost / len(target))
    return PnpSolution(rvec=params[:3], tvec=params[3:], error=rms)


# The camera the head pose assumes, in units of the outer eye-corner span in pixels: a
# focal length that puts the head about 1.1 m away (12 spans of ~90 mm), whatever the
# lens and crop were.
POSE_FOCAL_SPANS: Final = 12.0


def head_pose(pts68: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees: yaw and pitch from PnP, roll from the eye line.

    The head is seen along the ray through it: the principal point is the centroid of
    the six model points and the focal length ``POSE_FOCAL_SPANS`` eye-corner spans.
    So a face looking into the lens reads as frontal wherever it sits in the frame,
    and cropping the photo changes nothing. Roll comes straight from the eye line,
    which needs no model at all.
    """
    image_points = pts68[list(FACE_MODEL_POINTS)]
    span = float(np.linalg.norm(pts68[45] - pts68[36]))
    solution = solve_pnp(
        FACE_MODEL, image_points, POSE_FOCAL_SPANS * max(span, 1.0), image_points.mean(axis=0)
    )
    yaw, pitch, _ = solution.angles
    return (yaw, pitch, roll_from_eyes(pts68))


# --------------------------------------------------------------------------- glasses

# On the aligned 200 px chip (eyes level, about 0.32 of the chip down): the nose bridge
# between the eyes, where a frame's bridge crosses, and the bands under each eye, where
# the lower rims run. Shares of the chip side, image-left first.
BRIDGE: Final = (0.44, 0.22, 0.56, 0.40)
UNDER_EYES: Final = ((0.14, 0.38, 0.40, 0.50), (0.60, 0.38, 0.86, 0.50))
CHEEKS: Final = (0.15, 0.45, 0.85, 0.65)


@dataclass(frozen=True, slots=True)
class GlassesEdges:
    """Horizontal edges where a frame would run, each over the cheeks' own texture."""

    bridge: float  # across the nose bridge
    rims: float  # under the eyes, the weaker of the two sides


def glasses_edges(chip: np.ndarray) -> GlassesEdges:
    """The strongest row of each region's mean vertical gradient, over the median of
    the cheeks'. A frame puts a line across the bridge and under both eyes where a bare
    face has skin; a frown marks the bridge too, but not the skin under both eyes.
    """
    gray = luma(chip)
    rows = np.abs(np.diff(gray, axis=0))
    texture = float(np.median(_region(rows, CHEEKS))) + 1.0
    bridge = float(_region(rows, BRIDGE).mean(axis=1).max()) / texture
    rims = min(float(_region(rows, box).mean(axis=1).max()) for box in UNDER_EYES) / texture
    return GlassesEdges(bridge=bridge, rims=rims)


# --------------------------------------------------------------------------- shoulders

# The pose model wants the whole body in its square, the hips in the middle (MediaPipe
# centres its region on them). A portrait shows no hips, so the square is placed where
# they would be: ``POSE_HIPS`` eye-to-chin distances below the chin, ``POSE_SIDE`` of
# them wide (an adult is about 16 of them tall). Found on the sample photos: closer
# squares put the shoulders on the face.
POSE_HIPS: Final = 6.0
POSE_SIDE: Final = 18.0
# Below this visibility (the model's own, 0..1) a shoulder is out of the frame.
SHOULDER_VISIBLE: Final = 0.5
SHOULDER_PASSES: Final = 2


@dataclass(frozen=True, slots=True)
class ShoulderLine:
    left: tuple[float, float]  # image-left shoulder, pixels of the image measured
    right: tuple[float, float]
    tilt: float  # degrees the line turns clockwise in the image


def shoulders(models: Models, image: np.ndarray, head: HeadFrame) -> ShoulderLine | None:
    """Both shoulders, or ``None`` when the model does not see them in the photo.

    Two passes: the second square is turned to the shoulder line the first one found,
    as MediaPipe turns its square to the body; an upright square alone pulls a leaning
    line towards level (15 degrees read as 8, on the sample portraits turned by hand).
    """
    eye_to_chin = max(1.0, head.chin_y - head.eyes_y)
    angle = 0.0
    for _ in range(SHOULDER_PASSES):
        region = Region(
            head.centre_x - math.sin(angle) * POSE_HIPS * eye_to_chin,
            head.chin_y + math.cos(angle) * POSE_HIPS * eye_to_chin,
            POSE_SIDE * eye_to_chin,
            angle,
        )
        found = models.meshes.shoulders(image, region)
        dx, dy = found.right - found.left
        angle = math.atan2(dy, dx)
    h, w = image.shape[:2]
    inside = all(0 <= p[0] < w and 0 <= p[1] < h for p in (found.left, found.right))
    if found.visibility < SHOULDER_VISIBLE or not inside:
        return None
    return ShoulderLine(
        left=(float(found.left[0]), float(found.left[1])),
        right=(float(found.right[0]), float(found.right[1])),
        tilt=math.degrees(angle),
    )


# --------------------------------------------------------------------------- background


@dataclass(frozen=True, slots=True)
class HeadFrame:
    """Where the head is, in pixels of the image being measured."""

    centre_x: float
    face_width: float
    eyes_y: float
    chin_y: float


@dataclass(frozen=True, slots=True)
class Background:
    """The colour plane of the bands beside and above the head, and what leaves it."""

    colour: tuple[int, int, int]  # the plane at the image centre
    clutter: float  # share of band pixels farther than CLUTTER_DISTANCE from the plane
    span: float  # RGB distance between the plane's values at opposite image corners
    head_top: float | None  # shares of the image height / width
    head_left: float | None
    head_right: float | None
    clothes_delta_e: float | None  # CIELAB distance of the clothes from the plane there
    transparent: bool | None = None


# A pixel this far (Euclidean RGB) from the fitted plane is not background: well above
# JPEG and sensor noise (a few levels), well below any object's edge.
CLUTTER_DISTANCE: Final = 24.0
# The head's columns: this many face widths either side of its centre.
HEAD_HALF_WIDTH: Final = 0.8
# A row belongs to the head once this share of the head's column span leaves the plane.
HEAD_ROW_SHARE: Final = 0.15
# A column belongs to the head when this share of the rows from head top to chin does.
HEAD_COLUMN_SHARE: Final = 0.05
_MIN_BAND_PIXELS: Final = 200
# A pixel the person mask gives less than this is background: the mask's edge (hair,
# shoulders) is soft, and half of it would bleed the person into the fit.
PERSON_LOW: Final = 0.05
# Clutter up to this share is a plain background (``background_clean`` 60, its rule's
# bound, in ``services.local.measure``'s scale).
PLAIN_CLUTTER: Final = 0.16


def background(image: np.ndarray, head: HeadFrame, person: np.ndarray) -> Background | None:
    """Fit ``colour = a + b*x + c*y`` per channel to the background.

    The background is every pixel the person mask (``Meshes.person``) gives less than
    ``PERSON_LOW``, wherever it lies, so a busy background is measured as well as a
    plain one. Two rounds: fit, drop pixels farther than ``CLUTTER_DISTANCE``, fit again
    to the rest. ``None`` when the person leaves too little background to measure.
    """
    h, w = image.shape[:2]
    rgb = image.astype(np.float32)
    xs = np.arange(w, dtype=np.float32)[None, :]
    ys = np.arange(h, dtype=np.float32)[:, None]
    band = person < PERSON_LOW
    if int(band.sum()) < _MIN_BAND_PIXELS:
        return None
    step = max(1, int(math.sqrt(band.sum() / 40000)))  # at most ~40k pixels in the fit
    sample = band.copy()
    sample[np.arange(h) % step != 0, :] = False
    sample[:, np.arange(w) % step != 0] = False
    rows, cols = np.nonzero(sample)
    colours = rgb[rows, cols].astype(np.float64)
    design = np.column_stack([np.ones(len(rows)), cols / w, rows / h])
    coefficients, *_ = np.linalg.lstsq(design, colours, rcond=None)
    keep = np.linalg.norm(design @ coefficients - colours, axis=1) <= CLUTTER_DISTANCE
    if int(keep.sum()) >= 3:
        coefficients, *_ = np.linalg.lstsq(design[keep], colours[keep], rcond=None)

    c = coefficients.astype(np.float32)
    plane = c[0] + c[1] * (xs / w)[..., None] + c[2] * (ys / h)[..., None]
    residual = rgb - plane
    away = np.einsum("ijk,ijk->ij", residual, residual) > CLUTTER_DISTANCE**2
    clutter = float(away[band].mean())
    corners = [
        coefficients[0] + coefficients[1] * cx + coefficients[2] * cy
        for cx, cy in ((0, 0), (1, 0), (0, 1), (1, 1))
    ]
    span = max(
        float(np.linalg.norm(corners[0] - corners[3])),
        float(np.linalg.norm(corners[1] - corners[2])),
    )
    centre = coefficients[0] + coefficients[1] * 0.5 + coefficients[2] * 0.5
    colour = tuple(round(min(255.0, max(0.0, float(v)))) for v in centre)

    # On a plain background, leaving the plane marks the head to the pixel; the mask,
    # 256 px for the whole photo, is coarser, so it marks it only where the plane cannot.
    masked = clutter > PLAIN_CLUTTER
    subject = person >= 0.5 if masked else away
    head_top, head_left, head_right = _head_extent(subject, head)
    clothes = _clothes_delta_e(rgb, plane, head, subject if masked else None)
    return Background(
        colour=colour,  # type: ignore[arg-type]
        clutter=clutter,
        span=span,
        head_top=head_top / h if head_top is not None else None,
        head_left=head_left / w if head_left is not None else None,
        head_right=head_right / w if head_right is not None else None,
        clothes_delta_e=clothes,
    )


def _head_extent(away: np.ndarray, head: HeadFrame) -> tuple[float | None, ...]:
    """Head top (with hair) and its left and right edges, where the plane is left."""
    h, w = away.shape
    x0 = max(0, round(head.centre_x - HEAD_HALF_WIDTH * head.face_width))
    x1 = min(w, round(head.centre_x + HEAD_HALF_WIDTH * head.face_width))
    eyes = min(h, max(0, round(head.eyes_y)))
    if x1 - x0 < 4 or eyes < 4:
        return (None, None, None)
    rows = away[:eyes, x0:x1].mean(axis=1) >= HEAD_ROW_SHARE
    # The first row of four in a row that belong to the head: one stray row is noise.
    run = np.convolve(rows.astype(np.int32), np.ones(4, dtype=np.int32), mode="valid")
    starts = np.flatnonzero(run == 4)
    if len(starts) == 0:
        return (None, None, None)
    top = int(starts[0])
    chin = min(h, max(top + 1, round(head.chin_y)))
    columns = away[top:chin, :].mean(axis=0) >= HEAD_COLUMN_SHARE
    centre = min(w - 1, max(0, round(head.centre_x)))
    left = centre
    while left > 0 and columns[left - 1]:
        left -= 1
    right = centre
    while right < w - 1 and columns[right + 1]:
        right += 1
    return (float(top), float(left), float(right + 1))


def _clothes_delta_e(
    rgb: np.ndarray, plane: np.ndarray, head: HeadFrame, subject: np.ndarray | None
) -> float | None:
    """CIELAB distance between the clothes and the background plane behind them.

    The clothes: from a quarter of the eye-to-chin distance below the chin to the
    bottom, in two patches 0.5 to 1.2 face widths either side of the centre (beside the
    neck, inside the shoulders).
    """
    h, w = rgb.shape[:2]
    y0 = round(head.chin_y + 0.25 * (head.chin_y - head.eyes_y))
    if y0 >= h - 2:
        return None
    patches = []
    for sign in (-1, 1):
        a = head.centre_x + sign * 0.5 * head.face_width
        b = head.centre_x + sign * 1.2 * head.face_width
        x0, x1 = sorted((round(a), round(b)))
        x0, x1 = max(0, x0), min(w, x1)
        if x1 - x0 >= 2:
            patches.append((slice(max(0, y0), h), slice(x0, x1)))
    if not patches:
        return None
    if subject is not None:  # only the person's pixels of the patches
        inside = np.concatenate([subject[p].ravel() for p in patches])
        if int(inside.sum()) < 20:
            return None
    else:
        inside = slice(None)  # type: ignore[assignment]
    clothes = np.concatenate([rgb[p].reshape(-1, 3) for p in patches])[inside]
    behind = np.concatenate([plane[p].reshape(-1, 3) for p in patches])[inside]
    return float(np.linalg.norm(lab(np.median(clothes, axis=0)) - lab(np.median(behind, axis=0))))


def lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB 0..255 to CIELAB (D65)."""
    lin = np.asarray(linear(np.clip(rgb, 0, 255)), dtype=np.float64)
    m = np.array(
        [
            [0.4124564, 0.3575761, 0.1804375],
            [0.2126729, 0.7151522, 0.0721750],
            [0.0193339, 0.1191920, 0.9503041],
        ]
    )
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    delta = 6 / 29
    f = np.where(xyz > delta**3, np.cbrt(xyz), xyz / (3 * delta**2) + 4 / 29)
    return np.stack(
        [116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])],
        axis=-1,
    )


def transparent_border(alpha: np.ndarray) -> bool:
    """True when most of the photo's outer border is see-through (alpha under half)."""
    h, w = alpha.shape
    band = max(1, round(min(h, w) * 0.03))
    border = np.concatenate(
        [
            alpha[:band].ravel(),
            alpha[-band:].ravel(),
            alpha[:, :band].ravel(),
            alpha[:, -band:].ravel(),
        ]
    )
    return bool((border < 128).mean() > 0.5)


# --------------------------------------------------------------------------- per process

_LOADED: dict[EngineConfig, Models] = {}


def models_for(config: EngineConfig) -> Models:
    """This process's models for ``config``, loaded on first use (a worker loads at start)."""
    models = _LOADED.get(config)
    if models is None:
        models = Models(config)
        _LOADED[config] = models
    return models
