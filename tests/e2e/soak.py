"""The soak: many users for a while against ``python -m bot`` over loopback, then the books.

Shared by ``tests/e2e/test_soak.py`` (which asserts the books) and ``bench/soak.py``
(which reports the waits and the peak memory as well). The bot runs as operators run
it, a process polling a fake Telegram, with the jumdata check and JD Cloud's analysis
behind it (fakes that verify signatures), the local fallback, and faults injected on
every side: a share of provider calls answered 503, billed and then never answered
until the client's timeout, or answered with the vendor's "slow down" code; a share of
the bot's sendPhoto/sendMessage calls answered 429 with a short retry_after.

Each user sends a mix (ID photos as files and as compressed photos for /check, photos
for /analyze, files that are no image, damaged JPEGs, a JPEG with thousands of
progressive scans), mostly one at a time with a pause, sometimes a few at once, and
waits for the replies. Every photo is made unique (a pattern in a corner), so a fake
provider tells the calls apart by photo and the retries of one call share its fault.

After the sending stops and every message is answered, the bot is stopped and the books
are read from its database and set against the fakes' ledgers and the replies
(``SoakResult.mismatches``).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from services.storage import tables
from tests.fakes.faults import Faults, photo_key
from tests.fakes.jdcloud import PROP_PATH, FakeJdCloud
from tests.fakes.jumdata import CHECK_PATH, FakeJumdata
from tests.fakes.telegram import Call, FakeTelegram

ROOT = Path(__file__).resolve().parents[2]
PROVIDER_TIMEOUT = 2.0
REPLY_TIMEOUT = 90.0  # a reply later than this is lost
FIRST_USER = 910_000
REPLIES = frozenset({"sendmessage", "sendphoto", "senddocument", "sendmediagroup"})
LIMIT = 1000  # a daily limit no user reaches: counted, never refused


# What users send, with its share of the messages.
KINDS: tuple[tuple[str, float], ...] = (
    ("check_file", 0.34),
    ("check_photo", 0.12),
    ("analyze_file", 0.26),
    ("not_image", 0.10),
    ("damaged", 0.08),
    ("scan_bomb", 0.10),
)
SCAN_BOMB_SCANS = 5000


@dataclass(frozen=True, slots=True)
class SoakConfig:
    users: int = 50
    seconds: float = 30.0
    seed: int = 12
    database_url: str = ""  # empty: a SQLite file in the soak's folder
    redis_url: str = ""
    provider_unavailable: float = 0.06
    provider_bill_then_hang: float = 0.06
    provider_rate_limited: float = 0.04
    rate_limit_every: float = 20.0
    telegram_429_every: float = 2.0  # seconds between two injected 429s (each method)
    think: tuple[float, float] = (1.0, 6.0)  # seconds a user waits between sends
    burst_share: float = 0.12  # sends that are several messages at once


@dataclass
class Sent:
    """One user message and what came of it."""

    user: int
    message_id: int
    kind: str
    at: float
    replies: list[tuple[float, Call]] = field(default_factory=list)

    @property
    def wait(self) -> float | None:
        return self.replies[0][0] - self.at if self.replies else None


@dataclass(frozen=True, slots=True)
class Books:
    """What the bot's database says after it stopped."""

    usage_rows: dict[str, int]  # by provider
    charged: dict[str, int]
    unknown: dict[str, int]
    units: dict[int, int]  # quota counters summed per user
    open_reservations: int
    remain: dict[str, tuple[int | None, int | None]]  # provider -> (remain, remain_times)


@dataclass(frozen=True, slots=True)
class Ledgers:
    """What the fakes saw and billed."""

    calls: dict[str, int]  # distinct photos per provider
    billed_answered: dict[str, int]
    billed_unanswered: dict[str, int]
    jdcloud_remain: int
    photos_seen: frozenset[str]
    unauthenticated: int
    telegram_429s: int
    telegram_errors: list[str]


@dataclass(frozen=True, slots=True)
class SoakResult:
    sent: list[Sent]
    books: Books
    ledgers: Ledgers
    bomb_photos: frozenset[str]
    peak_rss_kib: int | None
    exit_code: int | None
    stderr_tail: str
    seconds: float

    @property
    def waits(self) -> list[float]:
        return sorted(s.wait for s in self.sent if s.wait is not None)

    def expected_units(self) -> dict[int, int]:
        """Units by the rules: one for each request answered with a report (a provider's or
        the local engine's); errors, refusals, pacing and bad files cost nothing."""
        units: Counter[int] = Counter()
        for sent in self.sent:
            if any(call.method == "sendphoto" for _, call in sent.replies):
                units[sent.user] += 1
        return dict(units)

    def kinds(self) -> Counter[str]:
        return Counter(sent.kind for sent in self.sent)

    def replies_by_method(self) -> Counter[str]:
        return Counter(call.method for sent in self.sent for _, call in sent.replies[:1])

    def text_replies(self) -> Counter[str]:
        """Messages answered with text (an error, a refusal, pacing), by what was sent."""
        return Counter(
            sent.kind
            for sent in self.sent
            if sent.replies and sent.replies[0][1].method == "sendmessage"
        )

    def answered_with(self, *fragments: str) -> int:
        """Messages whose reply is a text holding one of ``fragments`` (pacing: ``pace.*``)."""
        return sum(
            1
            for sent in self.sent
            if sent.replies
            and any(f in str(sent.replies[0][1].params.get("text", "")) for f in fragments)
        )

    def mismatches(self) -> list[str]:
        """Every way the books disagree, one line each; empty when they agree exactly."""
        problems: list[str] = []
        books, ledgers = self.books, self.ledgers
        for provider in ("jumdata", "jdcloud"):
            rows, calls = books.usage_rows.get(provider, 0), ledgers.calls.get(provider, 0)
            if rows != calls:
                problems.append(f"(a) {provider}: {rows} usage rows for {calls} calls received")
            charged, billed = books.charged.get(provider, 0), ledgers.billed_answered[provider]
            if charged != billed:
                problems.append(
                    f"(b) {provider}: {charged} usage rows charged, {billed} calls billed "
                    "and answered"
                )
            unknown, hung = books.unknown.get(provider, 0), ledgers.billed_unanswered[provider]
            if unknown != hung:
                problems.append(
                    f"(b) {provider}: {unknown} usage rows unknown, {hung} calls billed "
                    "and never answered"
                )
        expected = self.expected_units()
        for user in sorted(set(expected) | set(books.units)):
            if books.units.get(user, 0) != expected.get(user, 0):
                problems.append(
                    f"(c) user {user}: {books.units.get(user, 0)} units counted, "
                    f"{expected.get(user, 0)} requests answered"
                )
        charged_rows = sum(books.charged.values())
        if sum(books.units.values()) != charged_rows:
            problems.append(
                f"(c) {sum(books.units.values())} units counted, {charged_rows} usage rows charged"
            )
        if books.open_reservations:
            problems.append(f"(c) {books.open_reservations} reservations still open")
        truth = ledgers.jdcloud_remain
        hung = ledgers.billed_unanswered["jdcloud"]
        figures = books.remain.get("jdcloud", (None, None))
        for name, known in zip(("remain", "remainTimes"), figures, strict=True):
            if known is None or known > truth or known < truth - hung:
                problems.append(
                    f"(d) jdcloud {name}: the books say {known}, the provider {truth} "
                    f"({hung} calls billed unanswered)"
                )
        for sent in self.sent:
            if len(sent.replies) != 1:
                problems.append(
                    f"(e) user {sent.user} message {sent.message_id} ({sent.kind}): "
                    f"{len(sent.replies)} replies"
                )
        reached = self.bomb_photos & ledgers.photos_seen
        if reached:
            problems.append(f"(f) {len(reached)} scan bombs reached a provider")
        if ledgers.unauthenticated:
            problems.append(f"{ledgers.unauthenticated} provider requests failed authentication")
        if ledgers.telegram_errors:
            problems.append(f"fake Telegram errors: {ledgers.telegram_errors[:5]}")
        if self.exit_code != 0 or "Traceback" in self.stderr_tail:
            problems.append(f"the bot exited with {self.exit_code}: {self.stderr_tail[-2000:]}")
        return problems

    def summary(self) -> str:
        waits = self.waits
        lines = [
            f"{len(self.sent)} messages from {len({s.user for s in self.sent})} users "
            f"in {self.seconds:.0f} s: {dict(sorted(self.kinds().items()))}",
            f"first replies: {dict(sorted(self.replies_by_method().items()))}; "
            f"Telegram 429s: {self.ledgers.telegram_429s}; answered with text, by what was "
            f"sent: {dict(sorted(self.text_replies().items()))}",
            f"provider calls: {self.ledgers.calls}, billed and answered "
            f"{self.ledgers.billed_answered}, billed and never answered "
            f"{self.ledgers.billed_unanswered}",
            f"usage rows: {self.books.usage_rows}, charged {self.books.charged}, "
            f"unknown {self.books.unknown}; units {sum(self.books.units.values())}",
            f"jdcloud remain: books {self.books.remain.get('jdcloud')}, "
            f"provider {self.ledgers.jdcloud_remain}",
        ]
        if waits:
            p99 = waits[min(len(waits) - 1, round(0.99 * (len(waits) - 1)))]
            lines.append(
                f"wait from update to reply: median {statistics.median(waits) * 1000:.0f} ms, "
                f"p99 {p99 * 1000:.0f} ms, longest {waits[-1] * 1000:.0f} ms"
            )
        if self.peak_rss_kib is not None:
            lines.append(f"bot process peak RSS (VmHWM): {self.peak_rss_kib / 1024:.0f} MiB")
        return "\n".join(lines)


# ------------------------------------------------------------------------------ photos


class Photos:
    """Unique photos made from real portraits: each carries its number in a corner."""

    def __init__(self, portraits: list[bytes], seed: int) -> None:
        self._bases: list[Image.Image] = []
        for data in portraits:
            image = Image.open(io.BytesIO(data)).convert("RGB")
            image.thumbnail((640, 800))
            self._bases.append(image)
        self._rng = random.Random(seed)
        self._count = 0
        self.bombs: set[str] = set()

    def _marked(self, size: tuple[int, int] | None = None) -> Image.Image:
        self._count += 1
        image = self._rng.choice(self._bases).copy()
        if size is not None:
            image.thumbnail(size)
        draw = ImageDraw.Draw(image)
        for bit in range(24):
            colour = (255, 255, 255) if self._count >> bit & 1 else (0, 0, 0)
            x, y = 4 + (bit % 12) * 6, 4 + (bit // 12) * 6
            draw.rectangle((x, y, x + 5, y + 5), fill=colour)
        return image

    def jpeg(self) -> bytes:
        buffer = io.BytesIO()
        self._marked().save(buffer, "JPEG", quality=90, dpi=(300, 300))
        return buffer.getvalue()

    def damaged(self) -> bytes:
        data = self.jpeg()
        return data[: len(data) // 3]

    def scan_bomb(self) -> bytes:
        """A small progressive JPEG followed by thousands of (cheap, valid-looking) scans:
        a DC refinement of the luma, one bit a block, again and again."""
        image = self._marked((300, 375))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=85, progressive=True)
        data = buffer.getvalue()
        blocks = -(-image.width // 8) * -(-image.height // 8)
        scan = b"\xff\xda\x00\x08\x01\x01\x00\x00\x00\x10" + bytes(-(-blocks // 8))
        bomb = data[:-2] + scan * SCAN_BOMB_SCANS + data[-2:]
        self.bombs.add(photo_key(bomb))
        return bomb


# ------------------------------------------------------------------------------ driving


class Replies:
    """Each bot message that replies to a user's message, timed as it is answered."""

    def __init__(self, tg: FakeTelegram) -> None:
        self.sent: dict[tuple[int, int], Sent] = {}
        self.flood_waits = 0
        self.changed = asyncio.Event()
        tg.call_listeners.append(self._on_call)

    def _on_call(self, call: Call) -> None:
        if call.method not in REPLIES:
            return
        if call.error is not None:
            if call.error.get("error_code") == 429:
                self.flood_waits += 1
            return
        results = call.result if isinstance(call.result, list) else [call.result]
        for result in results[:1]:  # an album's first message carries the reply
            if not isinstance(result, dict):
                continue
            chat = int(result.get("chat", {}).get("id", 0))
            replied = int((result.get("reply_to_message") or {}).get("message_id", 0))
            sent = self.sent.get((chat, replied))
            if sent is not None:
                sent.replies.append((time.monotonic(), call))
        self.changed.set()

    async def answered(self, items: list[Sent], timeout: float) -> None:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while any(not s.replies for s in items) and time.monotonic() < deadline:
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), max(0.0, deadline - time.monotonic()))


def send(tg: FakeTelegram, replies: Replies, photos: Photos, user: int, kind: str) -> Sent:
    if kind == "check_file":
        message = tg.user_message(user, document=photos.jpeg(), caption="/check")
    elif kind == "check_photo":
        message = tg.user_message(user, photo=photos.jpeg(), caption="/check")
    elif kind == "analyze_file":
        message = tg.user_message(user, document=photos.jpeg(), caption="/analyze")
    elif kind == "not_image":
        message = tg.user_message(
            user,
            document=b"name,photo\nalice,yes\n" * 40,
            file_name="photos.csv",
            mime_type="text/csv",
            caption="/check",
        )
    elif kind == "damaged":
        message = tg.user_message(user, document=photos.damaged(), caption="/check")
    elif kind == "scan_bomb":
        message = tg.user_message(user, document=photos.scan_bomb(), caption="/check")
    else:
        raise ValueError(kind)
    sent = Sent(user, message["message_id"], kind, time.monotonic())
    replies.sent[(user, sent.message_id)] = sent
    return sent


async def user_loop(
    config: SoakConfig,
    tg: FakeTelegram,
    replies: Replies,
    photos: Photos,
    user: int,
    until: float,
) -> None:
    rng = random.Random(config.seed * 100_003 + user)
    names, shares = zip(*KINDS, strict=True)
    await asyncio.sleep(rng.uniform(0, config.think[1]))
    while time.monotonic() < until:
        count = rng.randint(3, 4) if rng.random() < config.burst_share else 1
        kinds = rng.choices(names, shares, k=count)
        batch = [send(tg, replies, photos, user, kind) for kind in kinds]
        await replies.answered(batch, REPLY_TIMEOUT)
        await asyncio.sleep(rng.uniform(*config.think))


async def flood_control(tg: FakeTelegram, replies: Replies, every: float) -> None:
    """One 429 at a time on sendPhoto and on sendMessage, the next once it was met."""
    injected = 0
    while True:
        await asyncio.sleep(every)
        if replies.flood_waits >= injected:
            for method in ("sendphoto", "sendmessage"):
                tg.fail_next(method, retry_after=1)
            injected += 2


def peak_rss_kib(pid: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


async def read_books(database_url: str) -> Books:
    engine = create_async_engine(database_url)
    usage = tables.UsageRecord.__table__
    counters = tables.QuotaCounter.__table__
    reservations = tables.Reservation.__table__
    budgets = tables.ProviderBudget.__table__
    try:
        async with engine.connect() as connection:
            rows = (
                await connection.execute(
                    select(
                        usage.c.provider, usage.c.charged, usage.c.unknown, func.count()
                    ).group_by(usage.c.provider, usage.c.charged, usage.c.unknown)
                )
            ).all()
            units = (
                await connection.execute(
                    select(counters.c.user_id, func.sum(counters.c.used)).group_by(
                        counters.c.user_id
                    )
                )
            ).all()
            open_reservations = (
                await connection.execute(select(func.count()).select_from(reservations))
            ).scalar_one()
            remain = (
                await connection.execute(
                    select(budgets.c.provider, budgets.c.remain, budgets.c.remain_times)
                )
            ).all()
    finally:
        await engine.dispose()
    usage_rows: Counter[str] = Counter()
    charged: Counter[str] = Counter()
    unknown: Counter[str] = Counter()
    for provider, was_charged, was_unknown, count in rows:
        usage_rows[provider] += count
        if was_charged:
            charged[provider] += count
        if was_unknown:
            unknown[provider] += count
    return Books(
        usage_rows=dict(usage_rows),
        charged=dict(charged),
        unknown=dict(unknown),
        units={int(user): int(used) for user, used in units},
        open_reservations=int(open_reservations),
        remain={provider: (r, rt) for provider, r, rt in remain},
    )


@contextlib.asynccontextmanager
async def bot_process(
    env: dict[str, str], folder: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``python -m bot`` in ``folder``, its log in ``stderr.log`` there (a pipe left unread
    would fill and stop the bot); killed if still running at the end."""
    base = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG"}}
    with (folder / "stderr.log").open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            cwd=folder,
            env={**base, "PYTHONPATH": str(ROOT), **env},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            yield process
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()


async def run_soak(config: SoakConfig, portraits: list[bytes]) -> SoakResult:
    """Run the soak and read the books; raises only when the bot cannot be started."""
    photos = Photos(portraits, config.seed)
    faults = {
        name: Faults(
            unavailable=config.provider_unavailable,
            bill_then_hang=config.provider_bill_then_hang,
            rate_limited=config.provider_rate_limited,
            rate_limit_every=config.rate_limit_every,
            hang_limit=PROVIDER_TIMEOUT * 5,
            seed=config.seed + index,
        )
        for index, name in enumerate(("jumdata", "jdcloud"))
    }
    with tempfile.TemporaryDirectory(prefix="facecheck-soak-") as scratch:
        folder = Path(scratch)
        database_url = config.database_url or f"sqlite+aiosqlite:///{folder}/bot.db"
        async with (
            FakeTelegram() as tg,
            FakeJumdata() as jumdata,
            FakeJdCloud(daily_limit=100_000) as jdcloud,
        ):
            jumdata.faults, jdcloud.faults = faults["jumdata"], faults["jdcloud"]
            env = {
                "BOT_TOKEN": tg.token,
                "TELEGRAM_API_URL": tg.base_url,
                "DATABASE_URL": database_url,
                "CHECK_PROVIDER": "jumdata",
                "JUMDATA_APP_ID": jumdata.app_id,
                "JUMDATA_APP_SECRET": jumdata.app_secret,
                "JUMDATA_URL": jumdata.base_url,
                "ANALYZE_PROVIDER": "jdcloud",
                "JDCLOUD_ACCESS_KEY": jdcloud.access_key,
                "JDCLOUD_SECRET_KEY": jdcloud.secret_key,
                "JDCLOUD_URL": jdcloud.base_url,
                "PROVIDER_TIMEOUT": str(PROVIDER_TIMEOUT),
                "FALLBACK_TO_LOCAL": "true",
                "LOCAL_WORKERS": "1",
                "USER_DAILY_LIMIT": str(LIMIT),
                "LOG_LEVEL": "WARNING",
            }
            if config.redis_url:
                env["REDIS_URL"] = config.redis_url
            replies = Replies(tg)
            async with bot_process(env, folder) as process:
                await tg.wait_for_poll(timeout=120)
                started = time.monotonic()
                until = started + config.seconds
                flood = asyncio.create_task(flood_control(tg, replies, config.telegram_429_every))
                try:
                    await asyncio.gather(
                        *(
                            user_loop(config, tg, replies, photos, FIRST_USER + n, until)
                            for n in range(config.users)
                        )
                    )
                finally:
                    flood.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await flood
                elapsed = time.monotonic() - started
                # Hanging calls end when their client gives up; let the ledgers settle.
                await asyncio.sleep(PROVIDER_TIMEOUT + 1)
                peak = peak_rss_kib(process.pid)
                process.send_signal(signal.SIGTERM)
                try:
                    exit_code: int | None = await asyncio.wait_for(process.wait(), 60)
                except TimeoutError:
                    exit_code = None
            stderr_tail = (folder / "stderr.log").read_text(errors="replace")[-5000:]
            calls = {
                "jumdata": faults["jumdata"].calls(CHECK_PATH),
                "jdcloud": faults["jdcloud"].calls(PROP_PATH),
            }
            paths = {"jumdata": CHECK_PATH, "jdcloud": PROP_PATH}
            ledgers = Ledgers(
                calls=calls,
                billed_answered={n: faults[n].billed(p, answered=True) for n, p in paths.items()},
                billed_unanswered={
                    n: faults[n].billed(p, answered=False) for n, p in paths.items()
                },
                jdcloud_remain=jdcloud.remain,
                photos_seen=frozenset(photo for f in faults.values() for _, photo in f.requests),
                unauthenticated=sum(not r.auth_ok for r in jumdata.requests)
                + sum(not r.auth_ok for r in jdcloud.requests),
                telegram_429s=replies.flood_waits,
                telegram_errors=tg.internal_errors + tg.unknown_methods,
            )
        books = await read_books(database_url)
    sent = sorted(replies.sent.values(), key=lambda s: s.at)
    return SoakResult(
        sent=sent,
        books=books,
        ledgers=ledgers,
        bomb_photos=frozenset(photos.bombs),
        peak_rss_kib=peak,
        exit_code=exit_code,
        stderr_tail=stderr_tail,
        seconds=elapsed,
    )


def soak_seconds(default_ci: float = 120.0, default: float = 30.0) -> float:
    """``SOAK_SECONDS``, else two minutes under CI and half a minute elsewhere."""
    raw = os.environ.get("SOAK_SECONDS", "").strip()
    if raw:
        return float(raw)
    ci = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}
    return default_ci if ci else default
