"""``Metering.run``'s ``then``: the answer's picture is drawn while the call is recorded,
and the call is recorded however the picture fares."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from services.budget import ProviderBudgets
from services.ledger import Ledger
from services.metering import Caller, Metering
from services.models import Operation, Usage
from services.providers.base import Provider

if TYPE_CHECKING:
    from services.storage.db import Database

pytest_plugins = ["tests.db"]

USER = Caller(1001)


@dataclass(frozen=True)
class Answer:
    provider: str
    usage: Usage


class Cloud(Provider):
    name = "jumdata"

    async def close(self) -> None:
        pass


class WaitingLedger(Ledger):
    """A ledger whose commit waits until the picture has started: run one after the
    other, the two would never meet."""

    def __init__(self, database: Database, started: asyncio.Event) -> None:
        super().__init__(database, daily_limit=10)
        self.started = started

    async def commit(self, *args: object, **kwargs: object) -> bool:
        await asyncio.wait_for(self.started.wait(), 5)
        return await super().commit(*args, **kwargs)  # type: ignore[arg-type]


async def prepared(_provider: Provider) -> str:
    return "photo"


async def charged(_provider: Provider, _photo: str) -> Answer:
    return Answer("jumdata", Usage(charged=True))


async def test_the_picture_is_drawn_while_the_call_is_recorded(database: Database) -> None:
    started, drawn = asyncio.Event(), asyncio.Event()
    ledger = WaitingLedger(database, started)
    metering = Metering(ledger, ProviderBudgets(database))

    async def draw(_provider: Provider, photo: str, answer: Answer) -> None:
        assert (photo, answer.usage.charged) == ("photo", True)
        started.set()
        await asyncio.sleep(0)
        drawn.set()

    answered = await metering.run(Operation.CHECK, USER, [Cloud()], prepared, charged, then=draw)
    assert drawn.is_set() and answered.result.usage.charged
    status = await ledger.remaining(USER.user_id)
    assert status[Operation.CHECK].used == 1


async def test_a_failed_picture_still_leaves_the_call_recorded(database: Database) -> None:
    ledger = Ledger(database, daily_limit=10)
    metering = Metering(ledger, ProviderBudgets(database))

    async def broken(_provider: Provider, _photo: str, _answer: Answer) -> None:
        raise OSError("the picture could not be drawn")

    with pytest.raises(OSError, match="could not be drawn"):
        await metering.run(Operation.CHECK, USER, [Cloud()], prepared, charged, then=broken)
    status = await ledger.remaining(USER.user_id)
    assert status[Operation.CHECK].used == 1  # the provider charged: so does the ledger
    stats = await ledger.stats()
    assert sum(count.charged for count in stats.calls.values()) == 1


async def test_the_books_failure_is_raised_before_the_pictures(database: Database) -> None:
    class BrokenLedger(Ledger):
        async def commit(self, *args: object, **kwargs: object) -> bool:
            raise RuntimeError("the ledger is down")

    finished = asyncio.Event()

    async def draw(_provider: Provider, _photo: str, _answer: Answer) -> None:
        await asyncio.sleep(0)
        finished.set()
        raise OSError("the picture could not be drawn")

    metering = Metering(BrokenLedger(database, daily_limit=10), ProviderBudgets(database))
    with pytest.raises(RuntimeError, match="ledger is down"):
        await metering.run(Operation.CHECK, USER, [Cloud()], prepared, charged, then=draw)
    assert finished.is_set()  # both ran to their end before the error was raised
