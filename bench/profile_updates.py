"""Where this bot's time goes per update: cProfile over the steady state, by area.

The bot runs in this process against the fake Telegram and fake jumdata (as in
``bench.check_roundtrip``: jumdata checks, SQLite, the offline engine for the rest).
After a warm-up, each scenario is sent ``--updates`` times one after another under
cProfile; the report gives the CPU time per update by area (this bot's code, aiogram,
SQLAlchemy, Pillow, ...; the fakes' own share is shown and left out of the rest) and
the functions that cost most by their own time.

    python -m bench.profile_updates [--updates 200] [--top 15] [--dump PREFIX] [--minimal]

``--minimal`` profiles ``bench.minimal_bot`` the same way, for the same table side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench import minimal_bot
from tests.conftest import portrait_jpeg
from tests.fakes.jumdata import FakeJumdata
from tests.fakes.telegram import FakeTelegram

BURST = 300
TAGS = ("burst", "start", "check_small", "check_large")

AREAS = (
    ("tests/fakes", "the fakes"),
    ("/bot/", "bot/"),
    ("/services/", "services/"),
    ("/aiogram/", "aiogram"),
    ("/pydantic", "pydantic"),
    ("/sqlalchemy/", "SQLAlchemy"),
    ("aiosqlite", "aiosqlite"),
    ("/PIL/", "Pillow"),
    ("/aiohttp/", "aiohttp"),
    ("/multidict/", "aiohttp"),
    ("/yarl/", "aiohttp"),
    ("/asyncio/", "asyncio"),
    ("/babel/", "Babel/gettext"),
    ("gettext", "Babel/gettext"),
)


def area(filename: str, function: str) -> str:
    for needle, name in AREAS:
        if needle in filename:
            return name
    if filename == "~":
        if "sqlite3" in function:
            return "aiosqlite"
        if "epoll" in function:
            return "waiting (epoll)"
        return "built-ins"
    return "other"


def report(profile: cProfile.Profile, updates: int, top: int) -> None:
    stats = pstats.Stats(profile)
    by_area: dict[str, float] = defaultdict(float)
    rows = []
    for (filename, line, function), (_cc, calls, tottime, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        name = area(filename, function)
        by_area[name] += tottime
        if name not in {"the fakes", "waiting (epoll)"}:
            rows.append((tottime, calls, f"{Path(filename).name}:{line}({function})", name))
    mine = sum(t for a, t in by_area.items() if a not in {"the fakes", "waiting (epoll)"})
    print(f"  CPU time per update, the fakes and the wait apart: {mine / updates * 1000:.2f} ms")
    for name, seconds in sorted(by_area.items(), key=lambda item: -item[1]):
        print(f"    {name:<18} {seconds / updates * 1000:7.3f} ms")
    print("  by own time:")
    for tottime, calls, where, name in sorted(rows, reverse=True)[:top]:
        print(f"    {tottime / updates * 1000:7.3f} ms {calls / updates:7.1f}x  {where} [{name}]")


async def main(updates: int, top: int, dump: str, minimal: bool) -> None:
    small = portrait_jpeg(600, 800)
    phone = portrait_jpeg(4000, 3000, quality=90)
    async with FakeTelegram("111:PROFILE-bot") as tg, FakeJumdata() as jumdata:
        with tempfile.TemporaryDirectory() as scratch:
            os.environ.update({
                "BOT_TOKEN": tg.token, "TELEGRAM_API_URL": tg.base_url,
                "CHECK_PROVIDER": "jumdata", "LOG_LEVEL": "WARNING",
                "JUMDATA_APP_ID": jumdata.app_id, "JUMDATA_APP_SECRET": jumdata.app_secret,
                "JUMDATA_URL": jumdata.base_url,
                "DATABASE_URL": f"sqlite+aiosqlite:///{scratch}/bot.db",
            })  # fmt: skip
            from bot.app import create_bot, create_dispatcher, create_storage, open_services
            from bot.config import load_settings
            from bot.logs import setup_logging

            settings = load_settings()
            setup_logging(settings.log_level)
            if minimal:
                bot, dispatcher, http = minimal_bot.create(
                    tg.token, tg.base_url, jumdata.app_id, jumdata.app_secret, jumdata.base_url
                )
                close: Callable[[], Awaitable[None]] = http.close
            else:
                services = await open_services(settings)
                bot = create_bot(settings)
                storage = create_storage(settings)
                dispatcher = create_dispatcher(settings, services, storage=storage)
                close = services.close
            polling = asyncio.create_task(dispatcher.start_polling(bot, handle_signals=False))
            user = 500_000

            async def send(method: object, **message: object) -> None:
                nonlocal user
                user += 1
                mark = len(tg.calls)
                tg.user_message(user, **message)  # type: ignore[arg-type]
                await tg.wait_for(method, chat_id=user, after=mark, timeout=120)  # type: ignore[arg-type]

            async def burst() -> None:
                nonlocal user
                mark = len(tg.calls)
                users = range(user + 1, user + 1 + BURST)
                user += BURST
                for each in users:
                    tg.user_message(each, text="/start")
                for each in users:
                    await tg.wait_for("sendmessage", chat_id=each, after=mark, timeout=120)

            scenarios: list[tuple[str, int, Callable[[], Awaitable[None]]]] = [
                (f"{BURST} users send /start at once", 1, burst),
                ("/start", updates, lambda: send("sendmessage", text="/start")),
                ("/check 600x800", max(1, updates // 4), lambda: send(
                    {"sendmessage", "sendphoto"}, document=small, caption="/check")),
                ("/check 4000x3000 file", max(1, updates // 20), lambda: send(
                    {"sendmessage", "sendphoto"}, document=phone, caption="/check")),
            ]  # fmt: skip
            try:
                await tg.wait_for_poll(timeout=60)
                for _name, _count, scenario in scenarios:
                    await scenario()  # warm-up
                for tag, (name, count, scenario) in zip(TAGS, scenarios, strict=True):
                    profile = cProfile.Profile()
                    started = time.perf_counter()
                    profile.enable()
                    for _ in range(count):
                        await scenario()
                    profile.disable()
                    wall = (time.perf_counter() - started) / count * 1000
                    print(f"{name}: {count} time(s), {wall:.2f} ms each, update to reply")
                    report(profile, count * (BURST if count == 1 else 1), top)
                    if dump:
                        profile.dump_stats(f"{dump}.{tag}")
            finally:
                await dispatcher.stop_polling()
                await polling
                await close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=200)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--dump", default="", help="also write pstats files, PREFIX.<scenario>")
    parser.add_argument("--minimal", action="store_true", help="profile bench.minimal_bot")
    args = parser.parse_args()
    asyncio.run(main(args.updates, args.top, args.dump, args.minimal))
