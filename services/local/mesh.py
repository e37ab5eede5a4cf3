"""MediaPipe's face mesh, iris, pose and person segmentation models, run without MediaPipe.

The ``.tflite`` files (Apache-2.0, ``services.local.modelfiles``) run under
``ai-edge-litert``; what MediaPipe's graphs do around them is written here with numpy
and Pillow: cut a rotated square region out of the photo, scale it to the model's
input (RGB floats in 0..1), and map the outputs back to the photo's pixels.

- Face mesh: 468 points and a face-presence logit, on a square 1.5 times the face
  box, turned so that the eyes are level (MediaPipe's own region for the model).
- Iris: 71 eye-contour points and 5 iris points per eye, on a square 2.3 times the
  eye's corner span; the model sees a left eye, so the other one is mirrored.
- Pose: 33 body points with visibility, on a square about the head and shoulders.
- Segmentation: the chance that each pixel belongs to a person, on the whole photo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
from PIL import Image

MESH_INPUT: Final = 192
IRIS_INPUT: Final = 64
POSE_INPUT: Final = 256
SEGMENT_INPUT: Final = 256

MESH_SCALE: Final = 1.5  # MediaPipe's face_detection_front_detection_to_roi
IRIS_SCALE: Final = 2.3  # iris_landmark_landmarks_to_roi
# MediaPipe's eye corners in the 468-point mesh: (outer, inner), image-left eye first.
LEFT_EYE_CORNERS: Final = (33, 133)
RIGHT_EYE_CORNERS: Final = (263, 362)


@dataclass(frozen=True, slots=True)
class Region:
    """A square of the photo, ``side`` pixels, centred at (cx, cy), turned ``angle`` radians."""

    cx: float
    cy: float
    side: float
    angle: float = 0.0

    def matrix(self, size: int) -> np.ndarray:
        """2x3 affine map from the model's input pixels to the photo's pixels."""
        s = self.side / size
        c, n = math.cos(self.angle), math.sin(self.angle)
        half = size / 2.0
        # photo = centre + R(angle) @ (s * (input - half))
        return np.array(
            [
                [s * c, -s * n, self.cx - s * (c * half - n * half)],
                [s * n, s * c, self.cy - s * (n * half + c * half)],
            ]
        )

    def to_photo(self, points: np.ndarray, size: int) -> np.ndarray:
        m = self.matrix(size)
        mapped: np.ndarray = points[:, :2] @ m[:, :2].T + m[:, 2]
        return mapped


def cut(image: np.ndarray, region: Region, size: int, *, mirror: bool = False) -> np.ndarray:
    """The region as the model's input: 1 x size x size x 3 float32 in 0..1.

    Only the pixels under the region are handed to Pillow, so a face in a 12 MP photo
    costs what the face costs, not what the photo does.
    """
    m = region.matrix(size)
    reach = region.side * 0.7072 + 2  # half the diagonal, and a pixel for the filter
    height, width = image.shape[:2]
    x0, y0 = max(0, math.floor(region.cx - reach)), max(0, math.floor(region.cy - reach))
    x1 = min(width, math.ceil(region.cx + reach))
    y1 = min(height, math.ceil(region.cy + reach))
    if x1 <= x0 or y1 <= y0:
        return np.zeros((1, size, size, 3), dtype=np.float32)
    coefficients = (m[0, 0], m[0, 1], m[0, 2] - x0, m[1, 0], m[1, 1], m[1, 2] - y0)
    patch = Image.fromarray(np.ascontiguousarray(image[y0:y1, x0:x1])).transform(
        (size, size), Image.Transform.AFFINE, coefficients, resample=Image.Resampling.BILINEAR
    )
    array = np.asarray(patch, dtype=np.float32) / 255.0
    if mirror:
        array = array[:, ::-1]
    return array[None, ...]


class _Model:
    """One interpreter, one thread: the worker process is the unit of parallelism."""

    def __init__(self, path: Path) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_path=str(path), num_threads=1)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._outputs = {d["name"]: d["index"] for d in self._interpreter.get_output_details()}

    def __call__(self, tensor: np.ndarray) -> dict[str, np.ndarray]:
        self._interpreter.set_tensor(self._input, tensor)
        self._interpreter.invoke()
        return {name: self._interpreter.get_tensor(i) for name, i in self._outputs.items()}


def _sigmoid(value: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, value))))


@dataclass(frozen=True, slots=True)
class Mesh:
    points: np.ndarray  # 468 x 3: photo pixels x, y and a relative depth
    presence: float  # 0..1, the model's own "this is a face"


@dataclass(frozen=True, slots=True)
class Eye:
    contour: np.ndarray  # 71 x 2 photo pixels; 0..15 the lid line (MediaPipe's order)
    iris: np.ndarray  # 5 x 2: centre, then four points on the iris edge


@dataclass(frozen=True, slots=True)
class Shoulders:
    left: np.ndarray  # image-left shoulder (the person's right), photo pixels
    right: np.ndarray
    visibility: float  # the lower of the two, 0..1


class Meshes:
    """The four networks of one worker, loaded once."""

    def __init__(self, files: dict[str, Path]) -> None:
        self._mesh = _Model(files["face_landmark.tflite"])
        self._iris = _Model(files["iris_landmark.tflite"])
        self._pose = _Model(files["pose_landmark_full.tflite"])
        self._segment = _Model(files["selfie_segmentation.tflite"])

    def mesh(self, image: np.ndarray, region: Region) -> Mesh:
        out = self._mesh(cut(image, region, MESH_INPUT))
        raw = out["conv2d_21"].reshape(468, 3).astype(np.float64)
        points = region.to_photo(raw, MESH_INPUT)
        depth = raw[:, 2:3] * region.side / MESH_INPUT
        return Mesh(np.hstack([points, depth]), _sigmoid(float(out["conv2d_31"].ravel()[0])))

    def eyes(self, image: np.ndarray, mesh: np.ndarray) -> tuple[Eye, Eye]:
        return (
            self._eye(image, mesh, LEFT_EYE_CORNERS, mirror=False),
            self._eye(image, mesh, RIGHT_EYE_CORNERS, mirror=True),
        )

    def _eye(
        self, image: np.ndarray, mesh: np.ndarray, corners: tuple[int, int], *, mirror: bool
    ) -> Eye:
        a, b = mesh[corners[0], :2], mesh[corners[1], :2]
        if mirror:  # the model's eye has its outer corner on the left, like this one's inner
            a, b = b, a
        centre = (a + b) / 2.0
        angle = math.atan2(b[1] - a[1], b[0] - a[0])
        region = Region(
            float(centre[0]), float(centre[1]), IRIS_SCALE * float(np.linalg.norm(b - a)), angle
        )
        out = self._iris(cut(image, region, IRIS_INPUT, mirror=mirror))
        contour = out["output_eyes_contours_and_brows"].reshape(71, 3)[:, :2].astype(np.float64)
        iris = out["output_iris"].reshape(5, 3)[:, :2].astype(np.float64)
        if mirror:
            contour[:, 0] = IRIS_INPUT - contour[:, 0]
            iris[:, 0] = IRIS_INPUT - iris[:, 0]
        return Eye(region.to_photo(contour, IRIS_INPUT), region.to_photo(iris, IRIS_INPUT))

    def shoulders(self, image: np.ndarray, region: Region) -> Shoulders:
        out = self._pose(cut(image, region, POSE_INPUT))
        raw = out["Identity"].reshape(39, 5).astype(np.float64)
        points = region.to_photo(raw[:, :2], POSE_INPUT)
        # 11 is the person's left shoulder (image right), 12 the right one.
        visibility = min(_sigmoid(float(raw[11, 3])), _sigmoid(float(raw[12, 3])))
        return Shoulders(left=points[12], right=points[11], visibility=visibility)

    def person(self, image: np.ndarray) -> np.ndarray:
        """The person mask, H x W float32 0..1, at the size of ``image``."""
        height, width = image.shape[:2]
        small = Image.fromarray(image).resize(
            (SEGMENT_INPUT, SEGMENT_INPUT), Image.Resampling.BILINEAR
        )
        tensor = (np.asarray(small, dtype=np.float32) / 255.0)[None, ...]
        out: Any = next(iter(self._segment(tensor).values()))
        mask = Image.fromarray(np.asarray(out, dtype=np.float32).reshape(SEGMENT_INPUT, -1))
        resized = mask.resize((width, height), Image.Resampling.BILINEAR)
        return np.asarray(resized, dtype=np.float32)
