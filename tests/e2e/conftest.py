"""The real bot, polling a fake Telegram server, with fake providers behind it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from bot.app import create_bot, create_dispatcher, create_storage
from bot.config import Settings
from services.wiring import Services
from tests.fakes.huawei import FakeHuaweiCheck
from tests.fakes.jumdata import FakeJumdata
from tests.fakes.telegram import FakeTelegram


@dataclass
class RunningBot:
    settings: Settings
    services: Services


@contextlib.asynccontextmanager
async def run_bot(tg: FakeTelegram, **settings: Any) -> AsyncIterator[RunningBot]:
    """Start polling exactly as ``python -m bot`` does, minus signal handling.

    Each run gets its own SQLite database unless ``database_url`` says otherwise. Users and
    chats are not paced unless a test asks (``user_rate``, ``pace_chats=True``): tests that
    send every documented code as one user would be refused or slowed; pacing has its own
    tests (``tests/unit/test_pacing.py``, ``test_session_pacing.py``, the soak).
    """
    folder: str | None = None
    if "database_url" not in settings:
        folder = tempfile.mkdtemp(prefix="facecheck-test-")
        settings["database_url"] = f"sqlite+aiosqlite:///{folder}/bot.db"
    settings.setdefault("local_workers", 1)
    settings.setdefault("user_rate", 0)
    settings.setdefault("user_in_flight", 100)
    pace_chats = bool(settings.pop("pace_chats", False))
    config = Settings(
        _env_file=None,
        bot_token=tg.token,
        telegram_api_url=tg.base_url,
        **settings,
    )
    services = await Services.open(config)
    storage = create_storage(config)
    bot = create_bot(config, pace_chats=pace_chats)
    dispatcher = create_dispatcher(config, services, storage=storage)
    task = asyncio.create_task(
        dispatcher.start_polling(bot, handle_signals=False, polling_timeout=1)
    )
    try:
        await tg.wait_for_poll(timeout=30)
        yield RunningBot(config, services)
    finally:
        with contextlib.suppress(RuntimeError):
            await dispatcher.stop_polling()
        await asyncio.wait_for(task, 15)
        await storage.close()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


@pytest.fixture
async def jumdata() -> AsyncIterator[FakeJumdata]:
    async with FakeJumdata() as server:
        yield server


@pytest.fixture
async def huawei() -> AsyncIterator[FakeHuaweiCheck]:
    async with FakeHuaweiCheck() as server:
        yield server


@pytest.fixture
async def jumdata_bot(tg: FakeTelegram, jumdata: FakeJumdata) -> AsyncIterator[RunningBot]:
    async with run_bot(
        tg,
        check_provider="jumdata",
        jumdata_app_id=jumdata.app_id,
        jumdata_app_secret=jumdata.app_secret,
        jumdata_url=jumdata.base_url,
        provider_timeout=2,
    ) as running:
        yield running


@pytest.fixture(autouse=True)
def _capture_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
