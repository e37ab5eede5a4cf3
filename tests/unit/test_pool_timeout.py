"""The local engine's time limit: a stuck worker is replaced, its request fails with a typed,
not charged ``timeout``, and the pool goes on serving."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import time

import pytest

from services.config import ServiceSettings
from services.errors import ProviderUnavailableError
from services.local.pool import EnginePool
from services.providers.local import LocalProvider


async def test_a_stuck_worker_is_killed_and_replaced() -> None:
    pool = EnginePool(workers=1, queue_limit=2, timeout=1.0)
    try:
        await pool.start()
        stuck_pid = await pool.run(os.getpid)
        with pytest.raises(ProviderUnavailableError) as caught:
            await pool.run(time.sleep, 600)
        error = caught.value
        assert (error.provider, error.code, error.charged, error.unknown) == (
            "local",
            "timeout",
            False,
            False,
        )
        assert error.message_id == "provider.unavailable"
        # A fresh worker answers the next request; the stuck one is gone.
        assert await pool.run(math.sqrt, 16.0) == 4.0
        assert await pool.run(os.getpid) != stuck_pid
        with pytest.raises(ProcessLookupError):
            os.kill(stuck_pid, 0)
        for _ in range(100):  # the done-callbacks run in the executor's thread
            if pool.in_flight == 0:
                break
            await asyncio.sleep(0.01)
        assert pool.in_flight == 0  # the stuck request no longer holds a place in the queue
    finally:
        await pool.close()


async def test_a_request_timing_out_while_queued_kills_no_worker() -> None:
    """One worker, three requests: the third waits behind two healthy ones past the limit,
    the second runs past the request's limit only because it waited."""
    pool = EnginePool(workers=1, queue_limit=2, timeout=2.0)
    try:
        await pool.start()
        first, second, third = await asyncio.gather(
            pool.run(_nap, 1.5), pool.run(_nap, 1.0), pool.run(_nap, 0.0), return_exceptions=True
        )
        assert isinstance(first, int)  # the healthy job completed
        for late in (second, third):
            assert isinstance(late, ProviderUnavailableError)
            assert (late.code, late.charged) == ("timeout", False)
        assert pool.alive()
        # The same worker, still there: it finishes the second job and takes the next.
        assert await pool.run(os.getpid) == first
    finally:
        await pool.close()


async def test_a_worker_dead_while_idle_is_replaced() -> None:
    pool = EnginePool(workers=1, queue_limit=1, timeout=30.0)
    try:
        await pool.start()
        assert pool.alive()
        dead = await pool.run(os.getpid)
        os.kill(dead, signal.SIGKILL)
        for _ in range(500):
            if not pool.alive():
                break
            await asyncio.sleep(0.01)
        assert not pool.alive()
        with pytest.raises(ProviderUnavailableError) as caught:
            await pool.run(os.getpid)
        assert caught.value.code == "worker_died"
        replaced = await pool.run(os.getpid)
        assert replaced != dead
        # Dead again, and no request comes: ``revive`` (what /health does) replaces it.
        os.kill(replaced, signal.SIGKILL)
        for _ in range(500):
            if not pool.alive():
                break
            await asyncio.sleep(0.01)
        await pool.revive()
        assert pool.alive()
        assert await pool.run(os.getpid) not in (dead, replaced)
    finally:
        await pool.close()
    assert not pool.alive()


def _nap(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


async def test_an_error_of_the_work_itself_is_not_a_timeout() -> None:
    pool = EnginePool(workers=1, queue_limit=1, timeout=30.0)
    try:
        with pytest.raises(TimeoutError, match="the work's own"):
            await pool.run(_raises_timeout)
    finally:
        await pool.close()


def _raises_timeout() -> None:
    raise TimeoutError("the work's own")


def test_local_timeout_reaches_the_pool() -> None:
    settings = ServiceSettings(_env_file=None, local_timeout=12.5)  # type: ignore[call-arg]
    local = LocalProvider.from_settings(settings)
    assert local._pool.timeout == 12.5
    with pytest.raises(ValueError):
        EnginePool(timeout=0)
