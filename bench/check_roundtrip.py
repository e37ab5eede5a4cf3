"""The bot's own time from update to reply, against a bare aiogram echo.

Everything runs in this process against the same fake Telegram server over loopback
HTTP; the fake providers answer at once, so what is measured is the bot: download,
image pipeline, the provider round trip on loopback, drawing, upload. Reported as
medians and as ratios to the echo round trip measured in the same run.

- /check of a 600x800 photo and of a 4000x3000 phone JPEG (sent as files);
- /compare of two 600x800 photos: from the second photo's update to the reply.

    python -m bench.check_roundtrip [--runs 15]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

from aiogram import Dispatcher, F
from aiogram.types import Message

from bot.app import create_bot
from bot.config import Settings
from tests.conftest import portrait_jpeg
from tests.e2e.conftest import run_bot
from tests.fakes.jdcloud import FakeJdCloud
from tests.fakes.jumdata import FakeJumdata
from tests.fakes.telegram import FakeTelegram

RESULTS = Path(__file__).parent / "results"


async def round_trip(tg: FakeTelegram, user: int, method: str, **message: object) -> float:
    mark = len(tg.calls)
    started = time.perf_counter()
    tg.user_message(user, **message)  # type: ignore[arg-type]
    await tg.wait_for(method, chat_id=user, after=mark, timeout=60)
    return time.perf_counter() - started


async def echo_times(tg: FakeTelegram, runs: int) -> list[float]:
    settings = Settings(_env_file=None, bot_token=tg.token, telegram_api_url=tg.base_url)
    bot = create_bot(settings)
    dispatcher = Dispatcher()

    @dispatcher.message(F.text)
    async def echo(message: Message) -> None:
        await message.answer(message.text or "")

    task = asyncio.create_task(
        dispatcher.start_polling(bot, handle_signals=False, polling_timeout=1)
    )
    await tg.wait_for_poll(timeout=30)
    times = [await round_trip(tg, 9000 + i, "sendmessage", text=f"ping {i}") for i in range(runs)]
    await dispatcher.stop_polling()
    await task
    return times


async def check_times(
    tg: FakeTelegram, jumdata: FakeJumdata, photo: bytes, runs: int, first_user: int
) -> list[float]:
    async with run_bot(
        tg,
        check_provider="jumdata",
        jumdata_app_id=jumdata.app_id,
        jumdata_app_secret=jumdata.app_secret,
        jumdata_url=jumdata.base_url,
    ):
        await round_trip(tg, first_user - 1, "sendphoto", document=photo, caption="/check")
        return [
            await round_trip(tg, first_user + i, "sendphoto", document=photo, caption="/check")
            for i in range(runs)
        ]


async def compare_times(tg: FakeTelegram, photo: bytes, runs: int) -> list[float]:
    async with FakeJdCloud(daily_limit=10_000) as jdcloud, run_bot(
        tg,
        compare_provider="jdcloud",
        jdcloud_access_key=jdcloud.access_key,
        jdcloud_secret_key=jdcloud.secret_key,
        jdcloud_url=jdcloud.base_url,
    ):
        times = []
        for i in range(runs + 1):
            user = 30_000 + i
            await round_trip(tg, user, "sendmessage", text="/compare")
            await round_trip(tg, user, "sendmessage", document=photo)
            times.append(await round_trip(tg, user, "sendphoto", document=photo))
        return times[1:]  # the first one warms up the sessions


async def main(runs: int) -> dict[str, float]:
    small = portrait_jpeg(600, 800)
    phone = portrait_jpeg(4000, 3000, quality=90)
    async with FakeTelegram() as tg, FakeJumdata() as jumdata:
        echo = await echo_times(tg, runs)
        check_small = await check_times(tg, jumdata, small, runs, 10_000)
        check_phone = await check_times(tg, jumdata, phone, runs, 20_000)
        compare = await compare_times(tg, small, runs)
    medians = {
        "echo_ms": statistics.median(echo) * 1000,
        "check_600x800_ms": statistics.median(check_small) * 1000,
        "check_4000x3000_ms": statistics.median(check_phone) * 1000,
        "compare_600x800_ms": statistics.median(compare) * 1000,
    }
    medians["check_600x800_vs_echo"] = medians["check_600x800_ms"] / medians["echo_ms"]
    medians["check_4000x3000_vs_echo"] = medians["check_4000x3000_ms"] / medians["echo_ms"]
    medians["compare_600x800_vs_echo"] = medians["compare_600x800_ms"] / medians["echo_ms"]
    return medians


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    figures = asyncio.run(main(args.runs))
    print(f"median of {args.runs} runs, update pushed -> reply received by the fake server")
    print(f"  bare aiogram echo        {figures['echo_ms']:8.1f} ms   1.0x")
    for name in ("check_600x800", "check_4000x3000", "compare_600x800"):
        ms, ratio = figures[f"{name}_ms"], figures[f"{name}_vs_echo"]
        label = "/" + name.replace("_", " ", 1)
        print(f"  {label:<24} {ms:8.1f} ms  {ratio:5.1f}x")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "check_roundtrip.json").write_text(json.dumps(figures, indent=2))
