"""The local engine against the naive way of doing the same with the same models.

The naive way is what the face_recognition package does, written with dlib directly:
decode the whole photo, run the HOG detector once upsampled (2x) on the full
resolution, then landmarks and the descriptor on the largest face. The local engine
decodes a JPEG with ``draft()`` near 800 px, detects there (upsampling only when
nothing is found) and goes back to the full resolution only for the landmarks.

Measured in the same run, on photos made from face_recognition's sample portraits:

- check of a 600x800 ID photo and of a 4000x3000 phone JPEG;
- compare of two 4000x3000 phone photos.

Each line gives the median time of the naive way and of the engine in this process
(the same work, one photo after the other), their ratio, and the engine through its
process pool as the bot calls it (two workers: compare's photos run side by side).
The answers must be the same: same faces, same broken rules, same verdict.

    python -m bench.local_engine [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from services.images import PreparedImage, prepare_image
from services.local import measure, vision
from services.local.mesh import Meshes
from services.local.vision import EngineConfig, Picture
from services.providers.local import LocalProvider, check_result, score_of
from tests.local_photos import (
    IdSpec,
    id_photo,
    jpeg,
    phone_photo,
    portrait_landmarks,
    sample_photos,
)

RESULTS = Path(__file__).parent / "results"
CONFIG = EngineConfig()


# --------------------------------------------------------------------------- the naive way


def naive_picture(data: bytes) -> Picture:
    """Full decode: every pixel, as ``face_recognition.load_image_file`` does."""
    image = np.ascontiguousarray(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
    height, width = image.shape[:2]
    return Picture(data, width, height, image, image)


def naive_check(data: bytes, image: PreparedImage) -> measure.CheckOutput:
    models = vision.models_for(CONFIG)
    picture = naive_picture(data)
    faces = vision.detect_full(models, picture.small, upsample=1)
    if not faces:
        return measure.CheckOutput(None, 0, "no_face")
    reading = measure.read_face(models, picture, faces[0])
    person = models.meshes.person(picture.small)
    extra = measure.shoulder_fields(models, reading, picture)
    measurements = measure.measure(
        reading, picture, image.original, len(faces), False, person, extra
    )
    return measure.CheckOutput(measurements, len(faces))


def naive_descriptor(data: bytes) -> np.ndarray:
    models = vision.models_for(CONFIG)
    picture = naive_picture(data)
    faces = vision.detect_full(models, picture.small, upsample=1)
    five, _ = vision.shapes(models, picture.small, faces[0])
    return vision.descriptor(models, picture.small, five)


# --------------------------------------------------------------------------- the engine


def local_check(data: bytes, image: PreparedImage) -> measure.CheckOutput:
    return measure.check_photo(CONFIG, data, image.original)


class ModelClock:
    """Time spent inside the MediaPipe models (mesh, iris, pose, person mask) during a
    call: the new checks' share of it; the rest is the check without them."""

    def __init__(self, meshes: Meshes) -> None:
        self.spent = 0.0
        for name in ("mesh", "eyes", "shoulders", "person"):
            method = getattr(meshes, name)
            setattr(meshes, name, self._timed(method))

    def _timed(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any) -> Any:
            began = time.perf_counter()
            try:
                return method(*args)
            finally:
                self.spent += time.perf_counter() - began

        return run


def local_descriptor(data: bytes) -> np.ndarray:
    described = measure.describe_photo(CONFIG, data)
    assert described.descriptors
    return np.array(described.descriptors[0])


# --------------------------------------------------------------------------- timing


def timed(call: Callable[[], Any], runs: int) -> tuple[float, Any]:
    answer = call()  # warm-up, and the answer to compare
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        call()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000, answer


async def timed_async(call: Callable[[], Awaitable[Any]], runs: int) -> float:
    await call()
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        await call()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


def same_check(a: measure.CheckOutput, b: measure.CheckOutput) -> None:
    assert a.face_num == b.face_num, (a.face_num, b.face_num)
    ra = {r.message_id for r in check_result(a, ()).reasons}
    rb = {r.message_id for r in check_result(b, ()).reasons}
    assert ra == rb, (ra, rb)
    for name in ("face_x_center", "face_x_occupy", "eyes_y_center", "head_chin_y"):
        va, vb = a.measurements.value(name), b.measurements.value(name)
        assert abs(va - vb) < 0.01, (name, va, vb)


def photos() -> dict[str, bytes]:
    files = sample_photos()
    with Image.open(files["obama3.jpg"]) as portrait:
        points = portrait_landmarks(files["obama3.jpg"].read_bytes())
        id_600 = id_photo(portrait, points, IdSpec(size=(600, 800)))
    phone = {}
    for name in ("obama.jpg", "obama2.jpg"):
        with Image.open(files[name]) as portrait:
            phone[name] = jpeg(phone_photo(portrait), quality=92)
    return {"id_600x800": id_600, "phone_a": phone["obama.jpg"], "phone_b": phone["obama2.jpg"]}


async def main(runs: int) -> dict[str, float]:
    shots = photos()
    clock = ModelClock(vision.models_for(CONFIG).meshes)
    provider = LocalProvider(workers=2, queue_limit=8)
    await provider.start()
    figures: dict[str, float] = {}
    try:
        for label, key in (("check_600x800", "id_600x800"), ("check_4000x3000", "phone_a")):
            data = shots[key]
            image = prepare_image(data, provider.limits)
            naive_ms, naive_answer = timed(lambda d=data, i=image: naive_check(d, i), runs)
            clock.spent = 0.0
            local_ms, local_answer = timed(lambda d=data, i=image: local_check(d, i), runs)
            new_ms = clock.spent * 1000 / (runs + 1)
            same_check(naive_answer, local_answer)
            pool_ms = await timed_async(lambda i=image: provider.check(i), runs)
            figures.update(
                {
                    f"{label}_naive_ms": naive_ms,
                    f"{label}_local_ms": local_ms,
                    f"{label}_new_checks_ms": new_ms,
                    f"{label}_without_new_ms": local_ms - new_ms,
                    f"{label}_pool_ms": pool_ms,
                    f"{label}_speedup": naive_ms / local_ms,
                }
            )
        a, b = shots["phone_a"], shots["phone_b"]

        def naive_compare() -> float:
            return score_of(vision.distance(naive_descriptor(a), naive_descriptor(b)))

        def local_compare() -> float:
            return score_of(vision.distance(local_descriptor(a), local_descriptor(b)))

        naive_ms, naive_score = timed(naive_compare, runs)
        local_ms, local_score = timed(local_compare, runs)
        thresholds = provider.thresholds
        assert thresholds.verdict(naive_score) is thresholds.verdict(local_score)
        assert abs(naive_score - local_score) < 0.03, (naive_score, local_score)
        pa, pb = prepare_image(a, provider.limits), prepare_image(b, provider.limits)
        pool_ms = await timed_async(lambda: provider.compare(pa, pb), runs)
        figures.update(
            {
                "compare_4000x3000_naive_ms": naive_ms,
                "compare_4000x3000_local_ms": local_ms,
                "compare_4000x3000_pool_ms": pool_ms,
                "compare_4000x3000_speedup": naive_ms / local_ms,
                "compare_naive_score": naive_score,
                "compare_local_score": local_score,
            }
        )
    finally:
        await provider.close()
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    figures = asyncio.run(main(args.runs))
    print(f"median of {args.runs} runs (after one warm-up); the answers matched")
    print(f"  {'':<18} {'naive':>10} {'engine':>10} {'speed-up':>9} {'via pool':>10}")
    for name in ("check_600x800", "check_4000x3000", "compare_4000x3000"):
        print(
            f"  {name:<18} {figures[f'{name}_naive_ms']:8.0f} ms {figures[f'{name}_local_ms']:7.0f}"
            f" ms {figures[f'{name}_speedup']:8.1f}x {figures[f'{name}_pool_ms']:7.0f} ms"
        )
    for name in ("check_600x800", "check_4000x3000"):
        print(
            f"  {name}: {figures[f'{name}_local_ms']:.0f} ms with the new checks, of which"
            f" {figures[f'{name}_new_checks_ms']:.0f} ms in the MediaPipe models:"
            f" {figures[f'{name}_without_new_ms']:.0f} ms without them"
        )
    print(
        f"  compare scores: naive {figures['compare_naive_score']:.3f}, "
        f"engine {figures['compare_local_score']:.3f}"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "local_engine.json").write_text(json.dumps(figures, indent=2))
