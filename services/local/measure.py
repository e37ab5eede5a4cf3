"""What the local engine reports, and every formula behind its numbers.

The functions at the bottom (``check_photo``, ``describe_photo``, ``read_faces``) are
what a worker process runs: they decode, detect and measure with
``services.local.vision`` and return plain, picklable results. Nothing here raises a
``ServiceError`` across the process boundary; a refusal is a ``problem`` code that
the provider turns into the right error.

Landmarks (``LOCAL_LANDMARKS``): ``mesh`` (the default) reads MediaPipe's 468-point
face mesh (Apache-2.0) and its iris model, and stands the mesh points in for the 68
iBUG points (``vision.MESH_AS_68``), recalibrated to dlib's jaw width and chin
(``MESH_JAW_WIDTH``, ``MESH_CHIN_DROP``) so that every formula below serves both; ``68``
reads dlib's iBUG 300-W model (non-commercial); ``5`` only the eye corners and the
nose. dlib's 5-point model (CC0) aligns the chips in every case.

The check's ``detect_result`` fields, as the local engine measures them
=========================================================================

Coordinates are shares of the photo's width (x) or height (y). "Dense" marks what
needs the mesh or the 68 points (with ``LOCAL_LANDMARKS=5`` those fields are listed in
``not_checked``); "mesh" what needs the iris model.

Exact, from the user's original file:
    size_pix            width, height as displayed (EXIF orientation applied)
    file_size           bytes of the file as sent
    photo_format        jpg (JPEG, MPO), png, bmp, webp, heic, gif
    color_channels      bands of the stored mode (RGB 3, RGBA 4, L 1; palette 3, or 4
                        with transparency)
    dpi                 only when the file says
    size_mm             size_pix / dpi * 25.4, only with dpi
    is_transparent_background
                        alpha under 128 on most of the outer 3 % border

Geometry, from the landmarks:
    face_num            faces the detector found
    face_x_center       dense: middle of the jaw contour's extremes (points 0..16);
                        5: middle of the outer eye corners
    face_x_occupy       dense: width of the jaw contour (points 0..16);
                        5: 1.70 x the outer eye-corner span (1.70 is the mean ratio of
                        the two on the face_recognition sample portraits, spread +-4 %)
    eyes_y_center       mean height of the two eye centres
    eyes_spacing        distance between the eye centres
    nose_tip (dense)    point 30
    head_chin_y (dense) point 8
    head_pose (dense)   yaw and pitch from PnP on a generic 6-point face (nose tip,
                        chin, outer eye and mouth corners), seen along the ray through
                        the face (principal point at the face, focal length 12 outer
                        eye-corner spans: a head about 1.1 m away), so crops and the
                        face's place in the frame change nothing; roll = the eye
                        line's angle. Degrees; yaw > 0: nose towards the image's
                        right; pitch > 0: chin up; roll > 0: clockwise.

Scores, 0..100, higher is better; ``clamp`` keeps a value within 0..1. "Bound" is the
raw value at the rule's own bound (``services.rules``).

    face_blur
        raw    s = std(Laplacian) / std(luma) on the inner face of the 200 px aligned
               chip. Scale-free: darkening keeps s, blurring drops it (sharp sample
               photos 0.45..0.75; a 3 px Gaussian blur ~0.09).
        score  100 * clamp(ln(s / 0.06) / ln(0.40 / 0.06))
        bound  no rule
    face_darkillum
        raw    Y = mean Rec.601 luma (0..255) of both cheeks and the nose bridge
        score  100 * clamp((Y - 30) / (105 - 30))
        bound  >= 60 <=> Y >= 75
    face_unbalance
        raw    d = |log2(left / right)|: stops between the cheeks' median linear light
        score  100 * clamp(1 - d / 1.5)
        bound  >= 50 <=> d <= 0.75 (a light ratio of 1.7 : 1)
    eyes_close (dense)
        raw    EAR = mean eye aspect ratio (Soukupova and Cech): ~0.3 open, < 0.15 shut;
               with the mesh, from the iris model's lid lines (the gap at their middle
               three points over the corner span: the same scale, 0.21..0.34 open on
               the sample portraits against dlib's 0.22..0.36)
        score  100 * clamp((EAR - 0.10) / (0.20 - 0.10))
        bound  >= 80 <=> EAR >= 0.18
    mouth_close (dense)
        raw    m = inner-lip gap / inner mouth width (lips together ~0.03, a toothy
               smile ~0.2, speaking ~0.4)
        score  100 * clamp(1 - m / 0.40)
        bound  >= 60 <=> m <= 0.16
    background_clean
        raw    q = share of the background pixels farther than 24 RGB levels from the
               colour plane fitted to them; the background is every pixel MediaPipe's
               person segmentation gives less than 0.05 (anywhere in the photo)
        score  100 * clamp(1 - q / 0.40)
        bound  >= 60 <=> q <= 0.16
    background_gradual
        raw    G = RGB distance between the plane's values at opposite corners
        score  100 * clamp((G - 12) / (60 - 12)); low: not a gradient
        bound  no rule
    bf_similarity
        raw    E = CIELAB distance between the clothes (beside the neck, below the
               chin; on a busy background only the mask's person pixels there) and the
               background plane behind them
        score  100 * clamp(E / 50); low: clothes the colour of the background
        bound  no rule
    shoulder_equal
        raw    t = degrees the line between MediaPipe pose's shoulder points turns,
               the pose model run on a square placed where the hips would be (6
               eye-to-chin distances below the chin, 18 of them wide), then again on
               that square turned to the line found; not measured
               when either shoulder's visibility is under 0.5 or outside the photo
        score  100 * clamp(1 - |t| / 20)
        bound  >= 50 <=> |t| <= 10 degrees (the model's own spread on level
               shoulders of the sample photos reaches about 8)
    eyes_sight (mesh)
        raw    o = how far the irises sit sideways from the eyes' middles (the corners'
               midpoint), in eye widths, the mean of both eyes: 0 looking straight out
               of the face; up and down is left out, since the lids move it too
        score  100 * clamp(1 - o / 0.14)
        bound  no rule; under 50 (o > 0.07, the eyes turned about 10 degrees) the
               reply notes it. On the labelled photo set: 3 of 5 faces looking away
               found, none of 24 looking into the lens taken for away (set on the same
               photos: a first figure, not a validation)
    glasses (estimated)
        raw    on the aligned 200 px chip, the strongest row of mean vertical gradient
               across the nose bridge (b) and under each eye (r: the weaker side),
               each over the cheeks' median gradient
        value  normal_glasses when b >= 2.5 and r >= 3.0, else no_glasses. On the
               photo set of ``bench/photo_set.py`` (87 faces): 4 of 5 faces with glasses
               found (the miss a 150 px grey photo), 2 false ones among 82 bare faces
               (both grimaces). Too few to fail a photo on: the check lists it in
               ``estimated``, so a spec that bans glasses warns instead of failing.

    background_color  the fitted plane at the image centre, RGB.
    head_top, head_left, head_right  where the head (with hair) leaves the background:
                     the first of four rows in a row in which 15 % of the head's columns
                     do, and the columns on either side of the face in which 5 % of the
                     rows from head top to chin do. On a plain background (``q`` <= 0.16)
                     a pixel leaves it when it leaves the plane (exact to the pixel); on
                     a busy one, when the person mask gives it at least 0.5.

Not measured by these models (always in ``not_checked``): has_hat, face_occlusion,
nose_occlusion, mouth_occlusion, eyes_occlusion, mouthmask. What one photo did not
allow (shoulders out of frame, a head filling the frame, no clothes in view) is added
to ``not_checked`` for that photo.

Detect and analyze, per face
============================

    quality.blur          1 - face_blur / 100 (0 sharp .. 1 blurred)
    quality.illumination  mean luma of the chip's inner face, 0..255 (the Baidu-style
                          "face brightness" the detect reply reads, dark under 40)
    quality.completeness  False when a landmark, or more than 10 % of the box, lies
                          outside the photo
    pose (dense)          as head_pose above
    smile (dense)            100*(clamp((w-0.65)/0.20) + clamp((l+0.02)/0.12))/2 with
                          w = mouth width / outer eye-corner span (neutral ~0.65, broad
                          smile ~0.85) and l = lip-corner lift over mouth width, in the
                          face's frame (neutral ~0, smile ~0.1); analyze, and detect
                          with attributes
    expression (dense)       laugh: smile >= 50 and m > 0.16 (mouth open);
                          smile: smile >= 50; none otherwise
    age, gender           dlib-models' age predictor and gender classifier (CC0, ONNX,
                          ``services.local.demographics``), on analyze and on detect
                          with attributes; the gender only when the network gives it
                          0.9 or more (``GENDER_SURE``)
    emotion               not estimated (None)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
from PIL import ImageMode

from services.errors import ImageError
from services.images import ImageInfo
from services.local import vision
from services.local.demographics import Estimate
from services.local.mesh import Eye
from services.local.vision import Detection, EngineConfig, Picture
from services.models import (
    Box,
    Expression,
    Face,
    FaceQuality,
    Gender,
    HeadPose,
    Measurements,
    Point,
)

# --- anchors of the scores (see the table above) --------------------------------------------

SHARP_LOW: Final = 0.06
SHARP_HIGH: Final = 0.40
DARK_LOW: Final = 30.0
DARK_HIGH: Final = 105.0
UNBALANCE_STOPS: Final = 1.5
EAR_CLOSED: Final = 0.10
EAR_OPEN: Final = 0.20
MOUTH_WIDE: Final = 0.40
MOUTH_OPEN: Final = 0.16
CLUTTER_FULL: Final = 0.40
GRADIENT_LOW: Final = 12.0
GRADIENT_HIGH: Final = 60.0
CLOTHES_DELTA_E: Final = 50.0
SMILE_WIDTH: Final = (0.65, 0.20)
SMILE_LIFT: Final = (-0.02, 0.12)
SMILE_EXPRESSION: Final = 50.0
SHOULDER_TILT: Final = 20.0
GLASSES_BRIDGE: Final = 2.5
GLASSES_RIMS: Final = 3.0
GENDER_SURE: Final = 0.9
GAZE_OFF: Final = 0.14
FIVE_POINT_FACE_WIDTH: Final = 1.70
BOX_OVERHANG: Final = 0.10
# Faces of one photo that compare reads a descriptor of: each costs about 15 ms.
COMPARE_MAX_FACES: Final = 10

NOT_MEASURED: Final = (
    "has_hat",
    "face_occlusion",
    "nose_occlusion",
    "mouth_occlusion",
    "eyes_occlusion",
    "mouthmask",
)
NEEDS_DENSE: Final = ("head_chin_y", "head_pose", "eyes_close", "mouth_close", "nose_tip")
NEEDS_MESH: Final = ("eyes_sight",)
# Measured, but by a method not proven enough to fail a photo on: a warning at most.
ESTIMATED: Final = ("glasses",)
# Measured only where the photo shows enough plain background (see the table above).
BACKGROUND_FIELDS: Final = (
    "background_clean",
    "background_color",
    "background_gradual",
    "head_top",
    "head_left",
    "head_right",
    "bf_similarity",
)

# What one photo may not allow: the background fields, and the shoulders out of frame.
PER_PHOTO_FIELDS: Final = (*BACKGROUND_FIELDS, "shoulder_equal")

_PHOTO_FORMATS: Final = {
    "JPEG": "jpg",
    "MPO": "jpg",
    "PNG": "png",
    "BMP": "bmp",
    "WEBP": "webp",
    "HEIF": "heic",
    "GIF": "gif",
}


def not_checked(landmarks: str) -> tuple[str, ...]:
    """The documented fields a check with this landmark model leaves unmeasured."""
    return (
        NOT_MEASURED
        + (NEEDS_DENSE if landmarks == "5" else ())
        + (NEEDS_MESH if landmarks != "mesh" else ())
    )


def clamp(value: float) -> float:
    return min(1.0, max(0.0, value))


def _score(fraction: float) -> float:
    return round(100.0 * clamp(fraction), 1)


def blur_score(sharpness: float) -> float:
    if sharpness <= 0:
        return 0.0
    return _score(math.log(sharpness / SHARP_LOW) / math.log(SHARP_HIGH / SHARP_LOW))


def darkness_score(skin_luma: float) -> float:
    return _score((skin_luma - DARK_LOW) / (DARK_HIGH - DARK_LOW))


def unbalance_score(left: float, right: float) -> float:
    floor = 1e-4  # linear light of a black pixel, so a black cheek is finite
    stops = abs(math.log2(max(left, floor) / max(right, floor)))
    return _score(1.0 - stops / UNBALANCE_STOPS)


def eyes_score(eye_ratio: float) -> float:
    return _score((eye_ratio - EAR_CLOSED) / (EAR_OPEN - EAR_CLOSED))


def mouth_score(opening: float) -> float:
    return _score(1.0 - opening / MOUTH_WIDE)


def clean_score(clutter: float) -> float:
    return _score(1.0 - clutter / CLUTTER_FULL)


def gradient_score(span: float) -> float:
    return _score((span - GRADIENT_LOW) / (GRADIENT_HIGH - GRADIENT_LOW))


def clothes_score(delta_e: float) -> float:
    return _score(delta_e / CLOTHES_DELTA_E)


def shoulder_score(shoulders: vision.ShoulderLine) -> float:
    return _score(1.0 - abs(shoulders.tilt) / SHOULDER_TILT)


def wears_glasses(edges: vision.GlassesEdges) -> bool:
    return edges.bridge >= GLASSES_BRIDGE and edges.rims >= GLASSES_RIMS


def gaze_score(offset: float) -> float:
    return _score(1.0 - offset / GAZE_OFF)


def smile_score(smile: vision.Smile) -> float:
    width = clamp((smile.width - SMILE_WIDTH[0]) / SMILE_WIDTH[1])
    lift = clamp((smile.lift - SMILE_LIFT[0]) / SMILE_LIFT[1])
    return round(100.0 * (width + lift) / 2.0, 1)


def expression_of(smile: float, opening: float) -> Expression:
    if smile >= SMILE_EXPRESSION:
        return Expression.LAUGH if opening > MOUTH_OPEN else Expression.SMILE
    return Expression.NONE


# --- one face ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FaceReading:
    """Everything the engine measured on one face, in full-resolution pixels."""

    detection: Detection
    points: np.ndarray  # 68 or 5 landmarks
    five: np.ndarray
    lighting: vision.Lighting
    sharpness: float
    complete: bool
    pose: tuple[float, float, float] | None
    eye_ratio: float | None
    mouth_ratio: float | None
    smile: vision.Smile | None
    descriptor: np.ndarray | None
    gaze: float | None = None  # the iris's offset from the eye's middle, in eye widths
    glasses: vision.GlassesEdges | None = None
    demographics: Estimate | None = None

    @property
    def dense(self) -> bool:
        return len(self.points) == 68

    def centre_x(self) -> float:
        if self.dense:
            jaw = self.points[:17, 0]
            return float(jaw.min() + jaw.max()) / 2.0
        left, right = vision.outer_eye_corners(self.points)
        return float(left[0] + right[0]) / 2.0

    def face_width(self) -> float:
        if self.dense:
            jaw = self.points[:17, 0]
            return float(jaw.max() - jaw.min())
        left, right = vision.outer_eye_corners(self.points)
        return FIVE_POINT_FACE_WIDTH * float(np.linalg.norm(right - left))

    def eyes(self) -> tuple[np.ndarray, np.ndarray]:
        return vision.eye_centres(self.points)

    def chin_y(self) -> float:
        """Point 8 with 68 landmarks; the detector box's bottom (about the chin) with 5."""
        if self.dense:
            return float(self.points[8, 1])
        return self.detection.bottom


def read_face(
    models: vision.Models,
    picture: Picture,
    detection: Detection,
    *,
    with_descriptor: bool = False,
    with_demographics: bool = False,
) -> FaceReading:
    image = picture.full()
    five_shape, dense_shape = vision.shapes(models, image, detection)
    five = vision.points(five_shape)
    eyes: tuple[Eye, Eye] | None = None
    if dense_shape is not None:
        points = vision.points(dense_shape)
    elif models.config.landmarks == "mesh":
        points, eyes = _mesh_points(models, picture, detection, five)
    else:
        points = five
    chip = vision.face_chip(image, five_shape)
    dense = len(points) == 68
    return FaceReading(
        detection=detection,
        points=points,
        five=five,
        lighting=vision.lighting(chip),
        sharpness=vision.sharpness(chip),
        complete=_complete(detection, points, picture.width, picture.height),
        pose=vision.head_pose(points) if dense else None,
        eye_ratio=(
            vision.lid_ratio(eyes)
            if eyes is not None
            else vision.eye_aspect_ratio(points)
            if dense
            else None
        ),
        mouth_ratio=vision.mouth_opening(points) if dense else None,
        smile=vision.smile_geometry(points) if dense else None,
        descriptor=vision.descriptor(models, image, five_shape) if with_descriptor else None,
        gaze=vision.gaze(eyes) if eyes is not None else None,
        glasses=vision.glasses_edges(chip),
        demographics=(
            models.demographics.estimate(image, five_shape) if with_demographics else None
        ),
    )


# dlib's 68-point jaw width over the mesh's (127..356 oval points), and how far below the
# mesh's chin (152) dlib's point 8 lies, in eye-centre distances: the means on the frontal
# sample photos (obama, obama3, biden, human's face sample; width 0.955..0.998, chin
# 0.01..0.08).
MESH_JAW_WIDTH: Final = 1.025
MESH_CHIN_DROP: Final = 0.065
# The mesh runs on the small copy when the face is this wide there: its input is 192 px
# for 1.5 face widths, so more pixels than that add nothing.
MESH_MIN_FACE: Final = 128


def _mesh_points(
    models: vision.Models, picture: Picture, detection: Detection, five: np.ndarray
) -> tuple[np.ndarray, tuple[Eye, Eye]]:
    """The 68-point stand-ins from the face mesh, and both eyes from the iris model, in
    full-resolution pixels."""
    sx, sy = picture.scale
    if detection.width / sx >= MESH_MIN_FACE:
        image, scale = picture.small, np.array([sx, sy])
    else:
        image, scale = picture.full(), np.array([1.0, 1.0])
    box = Detection(
        detection.left / scale[0],
        detection.top / scale[1],
        detection.right / scale[0],
        detection.bottom / scale[1],
        detection.score,
    )
    mesh = vision.face_mesh(models, image, box, five / scale).points
    left, right = models.meshes.eyes(image, mesh)
    points = mesh[list(vision.MESH_AS_68), :2] * scale
    # The mesh's face oval runs a little inside dlib's jaw line and its chin point a
    # little above dlib's point 8; the rules' bounds were set on dlib's.
    jaw_centre = (points[:17, 0].max() + points[:17, 0].min()) / 2.0
    points[:17, 0] = jaw_centre + MESH_JAW_WIDTH * (points[:17, 0] - jaw_centre)
    eye_line = points[42:48].mean(axis=0) - points[36:42].mean(axis=0)
    down = np.array([-eye_line[1], eye_line[0]])  # the face's own "down", eye gaps long
    points[8] += MESH_CHIN_DROP * down
    return points, (
        Eye(contour=left.contour * scale, iris=left.iris * scale),
        Eye(contour=right.contour * scale, iris=right.iris * scale),
    )


def _complete(detection: Detection, points: np.ndarray, width: int, height: int) -> bool:
    inside = bool(
        (points[:, 0] >= 0).all()
        and (points[:, 0] < width).all()
        and (points[:, 1] >= 0).all()
        and (points[:, 1] < height).all()
    )
    dx = BOX_OVERHANG * detection.width
    dy = BOX_OVERHANG * detection.height
    boxed = (
        detection.left >= -dx
        and detection.top >= -dy
        and detection.right <= width + dx
        and detection.bottom <= height + dy
    )
    return inside and boxed


def face_of(reading: FaceReading, *, expressions: bool = False) -> Face:
    """The typed face of detect, analyze and compare."""
    d = reading.detection
    pose = HeadPose(*_rounded(reading.pose)) if reading.pose is not None else None
    smile: float | None = None
    expression: Expression | None = None
    if expressions and reading.smile is not None and reading.mouth_ratio is not None:
        smile = smile_score(reading.smile)
        expression = expression_of(smile, reading.mouth_ratio)
    return Face(
        box=Box(left=d.left, top=d.top, width=d.width, height=d.height),
        pose=pose,
        landmarks=tuple(Point(float(x), float(y)) for x, y in reading.points),
        quality=FaceQuality(
            blur=round(1.0 - blur_score(reading.sharpness) / 100.0, 3),
            illumination=round(reading.lighting.face_luma, 1),
            completeness=reading.complete,
        ),
        smile=smile,
        expression=expression,
        age=reading.demographics.age if reading.demographics is not None else None,
        gender=_gender(reading.demographics),
    )


def _gender(estimate: Estimate | None) -> Gender | None:
    """The gender when the network is sure of it (``GENDER_SURE``), else none at all."""
    if estimate is None or estimate.gender_confidence < GENDER_SURE:
        return None
    return Gender(estimate.gender)


def box_face(detection: Detection) -> Face:
    """A face known only by its box (compare's other faces)."""
    return Face(
        box=Box(
            left=detection.left, top=detection.top, width=detection.width, height=detection.height
        )
    )


def _rounded(values: tuple[float, ...], digits: int = 2) -> tuple[float, ...]:
    return tuple(round(v, digits) for v in values)


# --- the check's measurements --------------------------------------------------------------------


def file_fields(info: ImageInfo) -> dict[str, object]:
    """What the user's file says about itself, exactly."""
    fields: dict[str, object] = {
        "size_pix": (info.width, info.height),
        "file_size": info.file_size,
        "photo_format": _PHOTO_FORMATS.get(info.format, info.format.lower()),
        "color_channels": _channels(info),
    }
    if info.dpi is not None:
        fields["dpi"] = info.dpi
        fields["size_mm"] = (
            round(info.width / info.dpi[0] * 25.4, 1),
            round(info.height / info.dpi[1] * 25.4, 1),
        )
    return fields


def _channels(info: ImageInfo) -> int:
    if info.mode == "P":
        return 4 if info.has_alpha else 3
    try:
        return len(ImageMode.getmode(info.mode).bands)
    except KeyError:
        return 3


def measure(
    reading: FaceReading,
    picture: Picture,
    info: ImageInfo,
    face_num: int,
    transparent: bool,
    person: np.ndarray,
    extra: dict[str, object],
) -> Measurements:
    """Every field of the check that this engine measures honestly, nothing else."""
    w, h = picture.width, picture.height
    left_eye, right_eye = reading.eyes()
    fields: dict[str, object] = dict(file_fields(info))
    fields.update(
        face_num=face_num,
        is_transparent_background=transparent,
        face_x_center=round(reading.centre_x() / w, 4),
        face_x_occupy=round(reading.face_width() / w, 4),
        eyes_y_center=round(float(left_eye[1] + right_eye[1]) / 2.0 / h, 4),
        eyes_spacing=round(float(np.linalg.norm(right_eye - left_eye)) / w, 4),
        face_blur=blur_score(reading.sharpness),
        face_darkillum=darkness_score(reading.lighting.skin_luma),
        face_unbalance=unbalance_score(reading.lighting.left_linear, reading.lighting.right_linear),
    )
    if reading.dense:
        nose, chin = reading.points[30], reading.points[8]
        fields.update(
            nose_tip=(round(float(nose[0]) / w, 4), round(float(nose[1]) / h, 4)),
            head_chin_y=round(float(chin[1]) / h, 4),
            head_pose=HeadPose(*_rounded(reading.pose)) if reading.pose else None,
            eyes_close=eyes_score(reading.eye_ratio or 0.0),
            mouth_close=mouth_score(reading.mouth_ratio or 0.0),
        )
    if reading.gaze is not None:
        fields["eyes_sight"] = gaze_score(reading.gaze)
    if reading.glasses is not None:
        fields["glasses"] = "normal_glasses" if wears_glasses(reading.glasses) else "no_glasses"
    fields.update(extra)
    fields.update(_background_fields(reading, picture, person))
    return Measurements(**fields)  # type: ignore[arg-type]


def _background_fields(
    reading: FaceReading, picture: Picture, person: np.ndarray
) -> dict[str, object]:
    frame = _head_frame(reading, picture)
    found = vision.background(picture.small, frame, person)
    if found is None:
        return {}
    return dict(
        background_clean=clean_score(found.clutter),
        background_color=found.colour,
        background_gradual=gradient_score(found.span),
        head_top=_share(found.head_top),
        head_left=_share(found.head_left),
        head_right=_share(found.head_right),
        bf_similarity=(
            clothes_score(found.clothes_delta_e) if found.clothes_delta_e is not None else None
        ),
    )


def _head_frame(reading: FaceReading, picture: Picture) -> vision.HeadFrame:
    """Where the head is on the small copy."""
    sx, sy = picture.scale
    left_eye, right_eye = reading.eyes()
    return vision.HeadFrame(
        centre_x=reading.centre_x() / sx,
        face_width=reading.face_width() / sx,
        eyes_y=float(left_eye[1] + right_eye[1]) / 2.0 / sy,
        chin_y=reading.chin_y() / sy,
    )


def shoulder_fields(
    models: vision.Models, reading: FaceReading, picture: Picture
) -> dict[str, object]:
    """``shoulder_equal`` from the pose model's shoulder points, when it sees both."""
    frame = _head_frame(reading, picture)
    shoulders = vision.shoulders(models, picture.small, frame)
    if shoulders is None:
        return {}
    return {"shoulder_equal": shoulder_score(shoulders)}


def _share(value: float | None) -> float | None:
    return round(value, 4) if value is not None else None


# --- what a worker runs ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckOutput:
    measurements: Measurements | None
    face_num: int
    problem: str | None = None  # "no_face", or "image:<ImageProblem>"


@dataclass(frozen=True, slots=True)
class PhotoFaces:
    """The real faces of one photo, the main one first; for compare, their descriptors
    in the same order (at most ``COMPARE_MAX_FACES`` of them)."""

    faces: tuple[Face, ...]
    descriptors: tuple[tuple[float, ...], ...] = ()
    problem: str | None = None


def _image_problem(error: ImageError) -> str:
    return f"image:{error.problem.value}"


def check_photo(config: EngineConfig, data: bytes, info: ImageInfo) -> CheckOutput:
    """The ID-photo check's measurements of the largest face."""
    models = vision.models_for(config)
    try:
        picture = vision.decode(data, vision.PORTRAIT_SIDE)
        detections = vision.detect(models, picture)
        if not detections:
            return CheckOutput(None, 0, "no_face")
        reading = read_face(models, picture, detections[0])
        transparent = False
        if info.has_alpha:
            alpha = vision.alpha_channel(data)
            transparent = alpha is not None and vision.transparent_border(alpha)
        person = models.meshes.person(picture.small)
        extra = shoulder_fields(models, reading, picture)
    except ImageError as error:
        return CheckOutput(None, 0, _image_problem(error))
    measured = measure(reading, picture, info, len(detections), transparent, person, extra)
    return CheckOutput(measured, len(detections))


def describe_photo(config: EngineConfig, data: bytes) -> PhotoFaces:
    """Compare's half: every real face, main one first, with landmarks and a descriptor
    for the first ``COMPARE_MAX_FACES`` of them and the box alone for the rest."""
    models = vision.models_for(config)
    try:
        picture = vision.decode(data, vision.PORTRAIT_SIDE)
        detections = vision.detect(models, picture)
        if not detections:
            return PhotoFaces((), (), "no_face")
        readings = [
            read_face(models, picture, d, with_descriptor=True)
            for d in detections[:COMPARE_MAX_FACES]
        ]
    except ImageError as error:
        return PhotoFaces((), (), _image_problem(error))
    faces = (
        *(face_of(r) for r in readings),
        *(box_face(d) for d in detections[COMPARE_MAX_FACES:]),
    )
    descriptors = tuple(
        tuple(float(v) for v in r.descriptor) for r in readings if r.descriptor is not None
    )
    return PhotoFaces(faces, descriptors)


def read_faces(config: EngineConfig, data: bytes, max_faces: int, expressions: bool) -> PhotoFaces:
    """Detect and analyze: up to ``max_faces`` faces, largest first, each measured."""
    models = vision.models_for(config)
    try:
        picture = vision.decode(data, vision.GROUP_SIDE)
        detections = vision.detect(models, picture)
        if not detections:
            return PhotoFaces((), (), "no_face")
        faces = tuple(
            face_of(
                read_face(models, picture, d, with_demographics=expressions),
                expressions=expressions,
            )
            for d in detections[: max(1, max_faces)]
        )
    except ImageError as error:
        return PhotoFaces((), (), _image_problem(error))
    return PhotoFaces(faces)
