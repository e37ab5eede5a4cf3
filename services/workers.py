"""The threads that decode, re-encode and draw photos.

Pillow releases the GIL while it decodes and encodes, so image work runs in threads, but
not in the event loop's default executor (``asyncio.to_thread``): aiohttp resolves names
there, and a few slow photos holding every default thread stalled DNS for every user
(issue 12). Image work gets its own ``IMAGE_WORKERS`` threads instead; photos beyond that
wait in its queue, and nothing else waits behind them.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

_lock = threading.Lock()
_workers = min(2, os.cpu_count() or 1)  # ServiceSettings.image_workers' default
_executor: ThreadPoolExecutor | None = None


def configure(workers: int) -> None:
    """Use ``workers`` threads; called once at start, before any photo arrives.

    A pool already started keeps its threads for the work it holds and takes no more.
    """
    global _workers, _executor
    if workers < 1:
        raise ValueError("workers must be at least 1")
    with _lock:
        _workers = workers
        old, _executor = _executor, None
    if old is not None:
        old.shutdown(wait=False)


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(_workers, thread_name_prefix="image")
        return _executor


async def run(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)`` on an image thread, with the caller's context (as
    ``asyncio.to_thread``, so log context follows the photo)."""
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    call = functools.partial(context.run, fn, *args, **kwargs)
    return await loop.run_in_executor(_pool(), call)


async def close() -> None:
    """Drop queued work and wait for the running work to end; a later ``run`` starts anew."""
    global _executor
    with _lock:
        executor, _executor = _executor, None
    if executor is not None:
        executor.shutdown(wait=False, cancel_futures=True)
        await asyncio.to_thread(executor.shutdown)
