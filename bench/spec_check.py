"""What a document spec adds to a check, and what making the document's file costs.

Measured in one run, the samples of the two sides of each line alternating (which goes
first swaps every round) so that a slower stretch of the machine falls on both:

- a check through ``CheckService`` with the offline engine (``LocalProvider``, started
  once) judged against a spec, against the same check without one, on the same photo:
  the spec adds ``judge`` and draws its bands (inside a crop frame here: the photos are
  not square) instead of the generic ones;
- ``make_photo`` from a 4000x3000 phone-like JPEG, measured once by the same engine,
  against a plain Pillow decode of the file and a resize to the made file's size.

The photos come from a real sample portrait (``tests.local_photos``, the cache the
tests fill): the head cut out onto a plain white 600x800 ID photo with room around it
(the engine finds the top of the head only on a plain background, and a square crop
needs the room), and that photo enlarged with Pillow to 4000x3000 and saved at JPEG
quality 90, its sides filled with a blurred stretch of it as a landscape frame shows.

Figures only: nothing is asserted about time and nothing is written.

    python -m bench.spec_check [--runs 15]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from PIL import Image

from services.models import Measurements
from services.operations import CheckService
from services.providers.local import LocalProvider
from services.specs import Spec, catalogue
from services.specs.make import MadePhoto, make_photo
from tests.local_photos import (
    IdSpec,
    id_photo,
    jpeg,
    phone_photo,
    portrait_landmarks,
    sample_photos,
)

PORTRAIT = "obama3.jpg"
ID_PHOTO = IdSpec(size=(600, 800), background="white", face_width=0.40, eyes_y=0.42)
CHECK_SPEC = "us-passport"  # 51x51 mm: a 3:4 or 4:3 photo gets a crop plan and its frame
MAKE_SPECS = ("us-passport", "cn-visa-online")  # a 602x602 print; an upload of 40-120 KB
PHONE_SIZE = (4000, 3000)
PHONE_QUALITY = 90


def ms(seconds: list[float]) -> float:
    return statistics.median(seconds) * 1000


async def alternate(
    first: Callable[[], Awaitable[Any]], second: Callable[[], Awaitable[Any]], runs: int
) -> tuple[list[float], list[float]]:
    """Both calls ``runs`` times each after one warm-up each, alternating which goes first."""
    await first()
    await second()
    times: tuple[list[float], list[float]] = ([], [])
    calls = (first, second)
    for round_ in range(runs):
        order = (0, 1) if round_ % 2 == 0 else (1, 0)
        for side in order:
            began = time.perf_counter()
            await calls[side]()
            times[side].append(time.perf_counter() - began)
    return times


def baseline(data: bytes, size: tuple[int, int]) -> Image.Image:
    """What any tool does with the file at the least: decode every pixel, then resize."""
    with Image.open(io.BytesIO(data)) as opened:
        rgb = opened.convert("RGB")
    return rgb.resize(size, Image.Resampling.LANCZOS)


def make_times(
    phone: bytes, spec: Spec, m: Measurements, runs: int
) -> tuple[list[float], list[float], MadePhoto]:
    made = make_photo(phone, spec, m)  # warm-up, and the size the baseline resizes to
    size = (made.width, made.height)
    baseline(phone, size)
    times: tuple[list[float], list[float]] = ([], [])
    calls: tuple[Callable[[], object], Callable[[], object]] = (
        lambda: make_photo(phone, spec, m),
        lambda: baseline(phone, size),
    )
    for round_ in range(runs):
        order = (0, 1) if round_ % 2 == 0 else (1, 0)
        for side in order:
            began = time.perf_counter()
            calls[side]()
            times[side].append(time.perf_counter() - began)
    return times[0], times[1], made


def photos() -> dict[str, bytes]:
    """The 600x800 ID photo and the 4000x3000 phone JPEG made from it."""
    path = sample_photos()[PORTRAIT]
    with Image.open(path) as portrait:
        small = id_photo(portrait, portrait_landmarks(path.read_bytes()), ID_PHOTO)
    with Image.open(io.BytesIO(small)) as opened:
        phone = jpeg(phone_photo(opened, PHONE_SIZE), quality=PHONE_QUALITY)
    return {"600x800": small, "4000x3000": phone}


async def main(runs: int) -> dict[str, Any]:
    shots = photos()
    specs = catalogue()
    check_spec = specs.get(CHECK_SPEC)
    figures: dict[str, Any] = {}

    provider = LocalProvider(workers=1, queue_limit=4)
    await provider.start()
    try:
        service = CheckService(provider)
        for label, photo in shots.items():
            judged = await service.check(photo, spec=check_spec)
            generic, with_spec = await alternate(
                partial(service.check, photo), partial(service.check, photo, spec=check_spec), runs
            )
            figures[f"check_{label}_generic_ms"] = ms(generic)
            figures[f"check_{label}_spec_ms"] = ms(with_spec)
            figures[f"check_{label}_ratio"] = ms(with_spec) / ms(generic)
            figures[f"check_{label}_judgement"] = judged.judgement
            figures[f"check_{label}_measurements"] = judged.result.measurements
    finally:
        await provider.close()

    phone, measured = shots["4000x3000"], figures["check_4000x3000_measurements"]
    for spec_id in MAKE_SPECS:
        made_times, plain_times, made = make_times(phone, specs.get(spec_id), measured, runs)
        figures[f"make_{spec_id}_ms"] = ms(made_times)
        figures[f"make_{spec_id}_baseline_ms"] = ms(plain_times)
        figures[f"make_{spec_id}_made"] = made
    return figures


def report(figures: dict[str, Any], runs: int) -> None:
    print(f"median of {runs} runs each, alternating, after one warm-up each")
    print(f"check through CheckService + LocalProvider (1 worker), generic vs {CHECK_SPEC}")
    print(f"  {'photo':<12} {'generic':>10} {'with spec':>12} {'ratio':>7}  judgement")
    for label in ("600x800", "4000x3000"):
        judgement = figures[f"check_{label}_judgement"]
        crop = judgement.crop
        plan = "no crop" if crop is None else f"crop {crop.width}x{crop.height} {crop.reason.value}"
        shape = "shape ok" if judgement.aspect_matches else f"wrong shape, {plan}"
        print(
            f"  {label:<12} {figures[f'check_{label}_generic_ms']:7.1f} ms"
            f" {figures[f'check_{label}_spec_ms']:9.1f} ms"
            f" {figures[f'check_{label}_ratio']:6.3f}x  {shape}"
        )
    width, height = PHONE_SIZE
    print(f"make_photo from a {width}x{height} JPEG (quality {PHONE_QUALITY})")
    print(f"  {'':<28} {'made':>10} {'decode+resize':>14} {'ratio':>7}  file")
    for spec_id in MAKE_SPECS:
        made: MadePhoto = figures[f"make_{spec_id}_made"]
        made_ms, plain_ms = figures[f"make_{spec_id}_ms"], figures[f"make_{spec_id}_baseline_ms"]
        quality = "" if made.quality is None else f" q{made.quality}"
        print(
            f"  {spec_id:<28} {made_ms:7.1f} ms {plain_ms:11.1f} ms {made_ms / plain_ms:6.2f}x"
            f"  {made.width}x{made.height} {made.format}{quality} {made.kb:.0f} KB"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    report(asyncio.run(main(args.runs)), args.runs)
