"""The soak: 50 users for a while against ``python -m bot``, faults everywhere, then the books.

Afterwards the counts must agree exactly (see ``tests/e2e/soak.py``): (a) one usage row
per call a fake provider received, (b) charged rows = calls billed and answered, unknown
rows = calls billed and never answered, (c) each user's units = their requests answered
with a report, no reservation left open, (d) the known remaining JD budget never above
the provider's own figure (and below it by at most the calls whose answer never came),
(e) exactly one reply to every message, none lost to a 429, and no scan bomb reaching a
provider. ``SOAK_SECONDS`` sets the length (120 under ``CI=true``, 30 otherwise).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import fragment
from tests.db import REDIS_URL
from tests.e2e.soak import KINDS, SoakConfig, SoakResult, run_soak, soak_seconds
from tests.e2e.test_scale import redis_or_skip, scratch_database

pytestmark = pytest.mark.e2e

PORTRAITS = ("obama.jpg", "obama2.jpg", "biden.jpg", "obama3.jpg")


def assert_books(result: SoakResult) -> None:
    print(result.summary())
    # The soak did what it is for: every kind of message, every fault, met and answered.
    assert set(result.kinds()) == {kind for kind, _ in KINDS}, result.kinds()
    assert result.ledgers.telegram_429s > 0
    assert (
        result.ledgers.billed_unanswered["jumdata"] + result.ledgers.billed_unanswered["jdcloud"]
        > 0
    )
    assert result.books.usage_rows.get("local", 0) > 0, "the local fallback never answered"
    # Bursts of 3-4 photos with USER_IN_FLIGHT=2: some are paced, at no cost.
    assert result.answered_with(fragment("en", "pace.busy"), fragment("en", "pace.slow")) > 0
    assert result.mismatches() == []


async def test_fifty_users_keep_the_books_exact_on_sqlite(photos: dict[str, Path]) -> None:
    portraits = [photos[name].read_bytes() for name in PORTRAITS]
    result = await run_soak(SoakConfig(seconds=soak_seconds()), portraits)
    assert_books(result)


async def test_fifty_users_keep_the_books_exact_on_postgresql_and_redis(
    photos: dict[str, Path],
) -> None:
    """The same soak on the shared stores; shorter, as the SQLite run covers the length."""
    await redis_or_skip()
    portraits = [photos[name].read_bytes() for name in PORTRAITS]
    async with scratch_database() as database_url:
        config = SoakConfig(
            seconds=min(soak_seconds(), 30.0), database_url=database_url, redis_url=REDIS_URL
        )
        result = await run_soak(config, portraits)
    assert_books(result)
