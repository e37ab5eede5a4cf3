"""The local engine's worker processes.

dlib's descriptor network (and the CNN detector) hold the GIL for their whole run, so
threads would stall the bot: the work goes to a ``ProcessPoolExecutor`` instead.

- **Start method** ``spawn``: a fresh interpreter per worker, safe whatever threads
  the bot runs (aiohttp, aiogram, asyncio's own), on Linux, macOS and Windows alike.
- **Models once per worker**: the initializer loads them; ``start()`` spawns every
  worker and returns only when each has loaded and answered, so the first user does
  not wait for 1-2 s of model loading.
- **A bounded queue**: photos being worked on plus photos waiting never exceed
  ``workers + queue_limit``; past that a call is refused at once with
  ``ProviderRateLimitError`` (``local.busy``: try again shortly) instead of piling up
  minutes of work no user will wait for. A photo being worked on counts until its worker
  is done with it, even when the user who sent it has gone; a waiting one leaves with him.
- **Waiting happens here, not in the executor**: a request goes to the executor only
  when a worker is free for it, so its work starts at once. The executor counts work as
  running as soon as it enters its call queue, where it can no longer be cancelled; kept
  out of it, a waiting request can leave at any time.
- **A time limit per request** (``LOCAL_TIMEOUT``, from the moment it is queued to its
  answer): a request still waiting when it ends leaves the queue, nothing else happens. A
  request whose own work has run that long means a stuck worker: the workers are
  terminated and replaced by fresh ones on the next request (a process pool cannot lose
  one worker and go on: the others' requests fail with it, as on any worker's death).
  Work slow only because it waited is never judged stuck: the stuck check counts from
  the work's start. The request fails with ``ProviderUnavailableError`` code ``timeout``,
  not charged: the local engine bills no one.
- **Shutdown that does not hang**: queued work is cancelled, running work gets a grace
  period, and a worker still busy after it is terminated, then killed.

This module imports no numpy or dlib itself, so a worker can limit its math libraries
to one thread before they load.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, Future, ProcessPoolExecutor
from typing import Any, Final, TypeVar

from services.errors import ProviderRateLimitError, ProviderUnavailableError
from services.i18n import N_
from services.local import NAME

log = logging.getLogger(__name__)
T = TypeVar("T")

START_METHOD: Final = "spawn"
WARM_TIMEOUT: Final = 120.0  # seconds for every worker to load its models and answer
_ONE_THREAD: Final = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _init_worker(landmarks: str, detector: str, models_dir: str) -> None:
    """Runs first in every worker: quiet signals, one math thread each, models loaded.

    The settings arrive as plain values so that unpickling them imports nothing heavy:
    the thread limits below must be in place before numpy loads.
    """
    # Ctrl-C reaches the whole process group; the parent decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in _ONE_THREAD:  # as many workers as cores already; no oversubscription
        os.environ.setdefault(name, "1")
    from services.local import vision

    config = vision.EngineConfig(landmarks=landmarks, detector=detector, models_dir=models_dir)  # type: ignore[arg-type]
    vision.models_for(config)


def _ping(hold: float) -> int:
    """Which worker answered; ``hold`` keeps it busy so the next ping goes to another."""
    time.sleep(hold)
    return os.getpid()


class EnginePool:
    """A process pool sized and bounded for the local engine."""

    def __init__(
        self,
        *,
        landmarks: str = "mesh",
        detector: str = "hog",
        models_dir: str = "",
        workers: int = 1,
        queue_limit: int = 32,
        timeout: float = 60.0,
        start_method: str = START_METHOD,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        if queue_limit < 0:
            raise ValueError("queue_limit must not be negative")
        if timeout <= 0:
            raise ValueError("timeout must be above 0")
        self.landmarks = landmarks
        self.detector = detector
        self.models_dir = models_dir
        self.workers = workers
        self.queue_limit = queue_limit
        self.timeout = timeout
        self._context = multiprocessing.get_context(start_method)
        self._executor: ProcessPoolExecutor | None = None
        self._start_lock = asyncio.Lock()
        self._count_lock = threading.Lock()
        self._in_flight = 0  # photos submitted and not yet finished
        self._free = _FreeWorkers(workers)
        self._replacing: set[asyncio.Future[None]] = set()
        self._closed = False

    @property
    def capacity(self) -> int:
        """Photos that may be in the pool at once: one running per worker, the rest waiting."""
        return self.workers + self.queue_limit

    @property
    def in_flight(self) -> int:
        with self._count_lock:
            return self._in_flight

    @property
    def waiting(self) -> int:
        return max(0, self.in_flight - self.workers)

    @property
    def started(self) -> bool:
        return self._executor is not None

    async def start(self) -> None:
        """Spawn every worker and wait until each has its models loaded."""
        async with self._start_lock:
            if self._closed:
                raise _unavailable("closed", "the local engine is shut down")
            if self._executor is not None:
                return
            began = time.perf_counter()
            executor = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=self._context,
                initializer=_init_worker,
                initargs=(self.landmarks, self.detector, self.models_dir),
            )
            try:
                pids = await _warm(executor, self.workers)
            except BaseException as error:
                await asyncio.to_thread(_stop, executor, 1.0)
                if isinstance(error, BrokenExecutor | TimeoutError):
                    raise _unavailable(
                        "worker_failed", f"local workers failed to start: {error!r}"
                    ) from None
                raise
            self._executor = executor
            log.info(
                "local engine: %d worker(s) ready in %.1f s (pids %s)",
                self.workers,
                time.perf_counter() - began,
                ", ".join(str(p) for p in sorted(set(pids))),
            )

    async def run(self, fn: Callable[..., T], /, *args: Any, photos: int = 1) -> T:
        """``fn(*args)`` in a worker; refused at once when the queue is full, failed with
        code ``timeout`` after ``timeout`` seconds."""
        with self._count_lock:
            if self._in_flight + photos > self.capacity:
                busy = self._in_flight
                raise ProviderRateLimitError(
                    NAME,
                    code="busy",
                    message_id=N_("local.busy"),
                    retry_safe=True,
                    detail=f"local engine busy: {busy} photo(s) in flight, capacity "
                    f"{self.capacity}",
                )
            self._in_flight += photos
        try:
            future, executor, deadline = await self._submit(fn, args)
        except BaseException:
            self._release(photos)
            raise
        future.add_done_callback(lambda _: self._finished(photos))
        asyncio.get_running_loop().call_later(self.timeout, self._overran, executor, future)
        answer = asyncio.timeout_at(deadline)
        try:
            async with answer:
                return await asyncio.wrap_future(future)
        except TimeoutError:
            if not answer.expired():
                raise  # the work's own error
            raise _unavailable(
                "timeout", f"local engine: no answer in {self.timeout:g} s"
            ) from None
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if future.cancelled() and (task is None or not task.cancelling()):
                # Cancelled by close(), not by our caller: say so instead of vanishing.
                raise _unavailable("closed", "the local engine shut down") from None
            raise
        except BrokenExecutor as error:
            # A worker died (killed for memory, a crash in native code): start afresh next time.
            await self._discard(executor)
            raise _unavailable("worker_died", f"local worker died: {error!r}") from None

    async def _submit(
        self, fn: Callable[..., T], args: tuple[Any, ...]
    ) -> tuple[Future[T], ProcessPoolExecutor, float]:
        """Wait for a free worker and hand it ``fn``; also the loop time by which the
        request must be answered. Starting the workers does not count against it."""
        loop = asyncio.get_running_loop()
        while True:
            await self.start()  # at once when started; at first use, or after a replacement
            deadline = loop.time() + self.timeout
            try:
                async with asyncio.timeout_at(deadline):
                    await self._free.take()
            except TimeoutError:
                raise _unavailable(
                    "timeout", f"local engine: no free worker in {self.timeout:g} s"
                ) from None
            executor = self._executor
            if executor is not None:
                break
            self._free.give()  # the workers were replaced, or shut down, while we waited
        try:
            future: Future[T] = executor.submit(fn, *args)
        except BrokenExecutor as error:  # a worker died while idle
            self._free.give()
            await self._discard(executor)
            raise _unavailable("worker_died", f"local worker died: {error!r}") from None
        except BaseException:
            self._free.give()
            raise
        return future, executor, deadline

    def _finished(self, photos: int) -> None:
        """Runs in the executor's thread when a piece of work ends, however it ends."""
        self._free.give()
        self._release(photos)

    def _overran(self, executor: ProcessPoolExecutor, future: Future[Any]) -> None:
        """``timeout`` seconds after the work started: still running means a stuck worker."""
        if future.done() or self._executor is not executor:
            return
        log.warning("local engine: a request ran over %g s; replacing the workers", self.timeout)
        task = asyncio.ensure_future(self._discard(executor, grace=0.0))
        self._replacing.add(task)
        task.add_done_callback(self._replacing.discard)

    def alive(self) -> bool:
        """Whether the workers are up: started, not shut down, none of them dead. Asks the
        processes, queues nothing: the answer does not wait for a busy worker."""
        executor = self._executor
        if executor is None or self._closed:
            return False
        processes = list((getattr(executor, "_processes", None) or {}).values())
        return len(processes) == self.workers and all(p.is_alive() for p in processes)

    async def revive(self) -> None:
        """Replace workers that are gone (one died while idle, or they were replaced and
        no request has come since), so a process that gets no work still recovers."""
        executor = self._executor
        if executor is not None and not self.alive():
            await self._discard(executor)
        await self.start()

    def _release(self, photos: int) -> None:
        with self._count_lock:
            self._in_flight = max(0, self._in_flight - photos)

    async def _discard(self, executor: ProcessPoolExecutor, grace: float = 1.0) -> None:
        async with self._start_lock:
            if self._executor is executor:
                self._executor = None
        await asyncio.to_thread(_stop, executor, grace)

    async def close(self, grace: float = 5.0) -> None:
        """Cancel queued work, give running work ``grace`` seconds, then end the workers."""
        self._closed = True
        async with self._start_lock:
            executor, self._executor = self._executor, None
        self._free.open_all()  # every waiting request goes on, to find the pool closed
        if executor is not None:
            await asyncio.to_thread(_stop, executor, grace)
        if self._replacing:
            await asyncio.gather(*self._replacing, return_exceptions=True)


class _FreeWorkers:
    """How many workers are idle, and the requests waiting for one, first come first served.

    Thread-safe, since work ends in the executor's thread; bound to no event loop, since
    one pool may serve several loops in turn (tests).
    """

    def __init__(self, count: int) -> None:
        self._lock = threading.Lock()
        self._idle = count
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._open = False

    async def take(self) -> None:
        with self._lock:
            if self._open or (self._idle > 0 and not self._waiters):
                self._idle -= 1
                return
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            with self._lock:
                handed = waiter not in self._waiters
                if not handed:
                    self._waiters.remove(waiter)
            if handed and waiter.done() and not waiter.cancelled():
                self.give()  # a worker came just as the request left: pass it on
            raise

    def give(self) -> None:
        """One worker free: to the first request still waiting, else back to idle."""
        with self._lock:
            waiter = self._waiters.popleft() if self._waiters else None
            if waiter is None:
                self._idle += 1
                return
        try:
            waiter.get_loop().call_soon_threadsafe(self._hand, waiter)
        except RuntimeError:  # its event loop is gone, and the request with it
            self.give()

    def _hand(self, waiter: asyncio.Future[None]) -> None:
        if waiter.done():  # it left before the worker reached it
            self.give()
        else:
            waiter.set_result(None)

    def open_all(self) -> None:
        """Let every request through, waiting or to come: the pool is shutting down."""
        with self._lock:
            self._open = True
            waiters, self._waiters = list(self._waiters), deque()
        for waiter in waiters:
            try:
                waiter.get_loop().call_soon_threadsafe(_wake, waiter)
            except RuntimeError:
                pass


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def _warm(executor: ProcessPoolExecutor, workers: int) -> set[int]:
    """Spawn every worker and wait until each has loaded its models and answered.

    Each submission spawns a process while none is idle; a worker answers only once its
    initializer has loaded the models, and each ping holds its worker briefly, so
    rounds of pings reach every worker within a few rounds.
    """
    seen: set[int] = set()
    deadline = time.monotonic() + WARM_TIMEOUT
    while len(seen) < workers:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(seen)} of {workers} local workers started")
        pings = [executor.submit(_ping, 0.05) for _ in range(workers)]
        seen.update(await asyncio.gather(*(asyncio.wrap_future(p) for p in pings)))
    return seen


def _unavailable(code: str, detail: str) -> ProviderUnavailableError:
    return ProviderUnavailableError(NAME, code=code, retry_safe=False, detail=detail)


def _stop(executor: ProcessPoolExecutor, grace: float) -> None:
    """Shut ``executor`` down without waiting on a stuck worker for ever."""
    # The executor keeps its processes in a private dict; take them before shutdown drops it.
    processes = list((getattr(executor, "_processes", None) or {}).values())
    executor.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + grace
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.is_alive():
            log.warning("local worker %s still busy after %.1f s: terminating", process.pid, grace)
            process.terminate()
            process.join(2.0)
        if process.is_alive():
            process.kill()
            process.join(2.0)
