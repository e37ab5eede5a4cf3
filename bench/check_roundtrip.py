"""This bot against the least a correct bot does (``bench.minimal_bot``), figure by figure.

Both run as their own processes (``python -m bot`` with the jumdata check, SQLite and the
offline engine for the other operations; ``python -m bench.minimal_bot``), each polling
its own fake Telegram server over loopback, both checking with the same fake jumdata,
which answers at once. Samples alternate between the two bots, so a slow moment of the
machine falls on both. Measured from the update being offered to the reply arriving:

- a burst: ``BURST`` new users send /start at once, until the last first reply;
- /start one user at a time (median);
- /check of a 600x800 photo and of a 4000x3000 phone JPEG sent as a file (median);
- the peak memory (VmHWM) of each bot process, and of this bot's offline-engine
  workers apart.

    python -m bench.check_roundtrip [--runs 15]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import portrait_jpeg
from tests.fakes.jumdata import FakeJumdata
from tests.fakes.telegram import FakeTelegram

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"
BURST = 300
START_SAMPLES = 20  # /start takes a few ms: this many times ``--runs`` for a steady median


@dataclass
class Running:
    name: str
    tg: FakeTelegram
    process: asyncio.subprocess.Process
    next_user: int

    def user(self) -> int:
        self.next_user += 1
        return self.next_user


async def spawn(module: str, env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    base = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG"}}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", module,
        cwd=cwd, env={**base, "PYTHONPATH": str(ROOT), **env},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def round_trip(bot: Running, method: str, **message: object) -> float:
    user = bot.user()
    mark = len(bot.tg.calls)
    started = time.perf_counter()
    bot.tg.user_message(user, **message)  # type: ignore[arg-type]
    await bot.tg.wait_for(method, chat_id=user, after=mark, timeout=120)
    return time.perf_counter() - started


async def burst(bot: Running) -> float:
    mark = len(bot.tg.calls)
    users = [bot.user() for _ in range(BURST)]
    started = time.perf_counter()
    for user in users:
        bot.tg.user_message(user, text="/start")
    for user in users:
        await bot.tg.wait_for("sendmessage", chat_id=user, after=mark, timeout=300)
    return time.perf_counter() - started


def peak_kib(pid: int) -> int:
    """VmHWM: the most resident memory the process has had."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


async def alternate(
    ours: Running, minimal: Running, runs: int, sample: object
) -> tuple[list[float], list[float]]:
    a: list[float] = []
    b: list[float] = []
    for i in range(runs):
        order = (ours, minimal) if i % 2 == 0 else (minimal, ours)
        for bot in order:
            (a if bot is ours else b).append(await sample(bot))  # type: ignore[operator]
    return a, b


async def main(runs: int) -> dict[str, float]:
    small = portrait_jpeg(600, 800)
    phone = portrait_jpeg(4000, 3000, quality=90)
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as scratch:
        async with (
            FakeTelegram("111:OURS-bot") as tg_ours,
            FakeTelegram("222:MINIMAL-bot") as tg_minimal,
            FakeJumdata() as jumdata,
        ):
            jumdata_env = {
                "JUMDATA_APP_ID": jumdata.app_id,
                "JUMDATA_APP_SECRET": jumdata.app_secret,
                "JUMDATA_URL": jumdata.base_url,
            }
            ours = Running("ours", tg_ours, await spawn("bot", {
                "BOT_TOKEN": tg_ours.token, "TELEGRAM_API_URL": tg_ours.base_url,
                "CHECK_PROVIDER": "jumdata", "LOG_LEVEL": "WARNING", **jumdata_env,
            }, Path(scratch)), 100_000)  # fmt: skip
            minimal = Running("minimal", tg_minimal, await spawn("bench.minimal_bot", {
                "BOT_TOKEN": tg_minimal.token, "TELEGRAM_API_URL": tg_minimal.base_url,
                **jumdata_env,
            }, Path(scratch)), 100_000)  # fmt: skip
            try:
                for bot in (ours, minimal):
                    await bot.tg.wait_for_poll(timeout=120)
                    await round_trip(bot, "sendmessage", text="/start")  # warm-up
                    await round_trip(bot, {"sendmessage", "sendphoto"}, document=small,
                                     caption="/check")  # type: ignore[arg-type]  # fmt: skip
                for name, sample in (
                    ("start_burst", burst),
                    ("start", lambda bot: round_trip(bot, "sendmessage", text="/start")),
                    ("check_600x800", lambda bot: round_trip(
                        bot, {"sendmessage", "sendphoto"}, document=small, caption="/check")),
                    ("check_4000x3000", lambda bot: round_trip(
                        bot, {"sendmessage", "sendphoto"}, document=phone, caption="/check")),
                ):  # fmt: skip
                    count = {"start_burst": 3, "start": runs * START_SAMPLES}.get(name, runs)
                    a, b = await alternate(ours, minimal, count, sample)
                    figures[f"{name}_ours_ms"] = statistics.median(a) * 1000
                    figures[f"{name}_minimal_ms"] = statistics.median(b) * 1000
                    figures[f"{name}_ratio"] = statistics.median(a) / statistics.median(b)
                workers = children(ours.process.pid)
                figures["memory_ours_mib"] = peak_kib(ours.process.pid) / 1024
                figures["memory_minimal_mib"] = peak_kib(minimal.process.pid) / 1024
                figures["memory_ratio"] = figures["memory_ours_mib"] / figures["memory_minimal_mib"]
                figures["memory_engine_workers_mib"] = sum(peak_kib(p) for p in workers) / 1024
                figures["engine_workers"] = len(workers)
            finally:
                for bot in (ours, minimal):
                    bot.process.send_signal(signal.SIGTERM)
                    await asyncio.wait_for(bot.process.wait(), 60)
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    figures = asyncio.run(main(args.runs))
    print(
        f"median of {args.runs} alternating samples ({args.runs * START_SAMPLES} for /start,"
        " 3 for the burst), update to reply"
    )
    print(f"  {'':<30} {'this bot':>10} {'minimal':>10} {'ratio':>6}")
    for name, label in (
        ("start_burst", f"{BURST} users send /start at once"),
        ("start", "/start one at a time"),
        ("check_600x800", "/check 600x800"),
        ("check_4000x3000", "/check 4000x3000 file"),
    ):
        ours_ms, minimal_ms = figures[f"{name}_ours_ms"], figures[f"{name}_minimal_ms"]
        ratio = figures[f"{name}_ratio"]
        print(f"  {label:<30} {ours_ms:7.1f} ms {minimal_ms:7.1f} ms {ratio:6.2f}")
    print(
        f"  {'peak memory of the process':<30} {figures['memory_ours_mib']:6.0f} MiB"
        f" {figures['memory_minimal_mib']:6.0f} MiB {figures['memory_ratio']:6.2f}"
    )
    print(
        f"  this bot's {figures['engine_workers']:.0f} offline-engine workers apart:"
        f" {figures['memory_engine_workers_mib']:.0f} MiB"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "check_roundtrip.json").write_text(json.dumps(figures, indent=2))
