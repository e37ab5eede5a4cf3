"""services.workers: image work has its own threads and never takes the default executor's."""

from __future__ import annotations

import asyncio
import io
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import pytest
from PIL import Image

from services import images, operations, workers
from services.images import CHECK_LIMITS_JUMDATA, PreparedImage
from services.models import CheckResult
from services.pictures import boxes, check, compare
from services.pictures.compare import Shown

HANG_GUARD = 30.0  # seconds; only so that a broken pool fails instead of hanging the run


@pytest.fixture(autouse=True)
async def fresh_pool() -> AsyncIterator[None]:
    yield
    await workers.close()
    workers.configure(min(2, os.cpu_count() or 1))


class Blocker:
    """Jobs that hold their thread until released, and say when they start."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started: list[int] = []
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()

    def job(self, n: int) -> int:
        self._loop.call_soon_threadsafe(self._started, n)
        self.release.wait(HANG_GUARD)
        return n

    def _started(self, n: int) -> None:
        self.started.append(n)
        self._wake.set()

    async def until_started(self, count: int) -> None:
        while len(self.started) < count:
            self._wake.clear()
            await asyncio.wait_for(self._wake.wait(), HANG_GUARD)


async def test_default_executor_runs_while_every_image_thread_is_busy() -> None:
    workers.configure(2)
    blocker = Blocker()
    busy = [asyncio.create_task(workers.run(blocker.job, n)) for n in range(3)]
    await blocker.until_started(2)

    loop = asyncio.get_running_loop()
    resolved = await asyncio.wait_for(loop.run_in_executor(None, lambda: "resolved"), HANG_GUARD)

    assert resolved == "resolved"
    assert sorted(blocker.started) == [0, 1]  # the third photo waits for an image thread
    assert not any(task.done() for task in busy)
    blocker.release.set()
    assert await asyncio.gather(*busy) == [0, 1, 2]


async def test_configure_sets_how_many_photos_are_worked_on_at_once() -> None:
    """Three threads: three photos at once (more than the default of at most two), and a
    fourth waits for one of them."""
    workers.configure(3)
    blocker = Blocker()
    jobs = [asyncio.create_task(workers.run(blocker.job, n)) for n in range(4)]
    await blocker.until_started(3)
    assert len(blocker.started) == 3  # every thread is held: the fourth cannot have started
    blocker.release.set()
    assert await asyncio.gather(*jobs) == [0, 1, 2, 3]
    assert sorted(blocker.started) == [0, 1, 2, 3]


async def test_run_after_close_starts_a_new_pool() -> None:
    assert await workers.run(threading.current_thread) is not threading.current_thread()
    await workers.close()

    name = await workers.run(lambda: threading.current_thread().name)

    assert name.startswith("image")


def test_configure_refuses_no_threads() -> None:
    with pytest.raises(ValueError):
        workers.configure(0)


# ----------------------------------------------------------------- who uses the pool


def recorder(threads: list[str], value: object) -> Callable[..., object]:
    def record(*_args: object, **_kwargs: object) -> object:
        threads.append(threading.current_thread().name)
        return value

    return record


def image() -> PreparedImage:
    buffer = io.BytesIO()
    Image.new("RGB", (200, 200), (120, 130, 140)).save(buffer, "JPEG")
    return images.prepare_image(buffer.getvalue(), CHECK_LIMITS_JUMDATA)


def wrappers(photo: PreparedImage) -> dict[str, tuple[Any, str, Callable[[], Awaitable[object]]]]:
    result = cast(CheckResult, None)
    return {
        "prepare": (
            images,
            "prepare_image",
            lambda: images.prepare_image_async(b"photo", CHECK_LIMITS_JUMDATA),
        ),
        "faces": (boxes, "annotate_faces", lambda: boxes.annotate_faces_async(photo, ())),
        "check": (check, "annotate_check", lambda: check.annotate_check_async(photo, result)),
        "side by side": (
            compare,
            "compare_side_by_side",
            lambda: compare.compare_side_by_side_async(
                Shown(photo, ()), Shown(photo, ()), 0.5, same=True
            ),
        ),
        "one photo": (
            compare,
            "compare_one_photo",
            lambda: compare.compare_one_photo_async(photo, (), (0, 1), 0.5, same=True),
        ),
    }


@pytest.mark.parametrize("name", ["prepare", "faces", "check", "side by side", "one photo"])
async def test_image_work_runs_on_the_image_threads(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    module, attribute, call = wrappers(image())[name]
    threads: list[str] = []
    monkeypatch.setattr(module, attribute, recorder(threads, b"done"))

    assert await call() == b"done"

    assert len(threads) == 1 and threads[0].startswith("image")


async def test_check_picture_decodes_and_paints_on_the_image_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads: list[str] = []
    monkeypatch.setattr(operations, "open_canvas", recorder(threads, "canvas"))
    monkeypatch.setattr(operations, "paint_check", recorder(threads, b"picture"))
    drawing = operations._CheckPicture(None)
    photo = image()

    drawing.start(photo)
    await drawing(cast(Any, None), photo, cast(CheckResult, None))

    assert drawing.picture == b"picture"
    assert len(threads) == 2 and all(name.startswith("image") for name in threads)
