"""Two bot processes behind one webhook URL, sharing PostgreSQL and Redis.

Telegram lets one poller per token, so scaling out means webhook mode: Telegram posts
to one URL and a load balancer spreads the calls over the processes. Here a small
round-robin proxy is that load balancer. Counts must stay exact and a conversation
must carry on whichever process gets its next message.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import socket
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import ClientSession, web

from tests.conftest import fragment, portrait_jpeg, tr
from tests.db import POSTGRES_URL, REDIS_URL, unavailable
from tests.fakes.jdcloud import COMPARE_PATH, FakeJdCloud
from tests.fakes.jumdata import FakeJumdata
from tests.fakes.telegram import FakeTelegram

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
SECRET = "scale-test-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def scratch_database() -> AsyncIterator[str]:
    """A database of its own on the local PostgreSQL server, dropped afterwards."""
    import asyncpg

    name = f"facecheck_scale_{uuid.uuid4().hex[:12]}"
    dsn = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")
    try:
        admin = await asyncpg.connect(dsn, timeout=5)
    except (OSError, asyncpg.PostgresError) as error:
        unavailable(f"PostgreSQL not reachable for the scale-out test: {error}")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        base = POSTGRES_URL.rsplit("/", 1)[0]
        yield f"{base}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def redis_or_skip() -> None:
    import redis.asyncio as redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception as error:
        unavailable(f"Redis not reachable at {REDIS_URL}: {error}")
    finally:
        await client.aclose()


class RoundRobin:
    """The load balancer: each webhook call goes to the next worker."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self._next = itertools.cycle(ports)
        self.handled: Counter[int] = Counter()
        self.port = free_port()
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None

    async def _forward(self, request: web.Request) -> web.Response:
        port = next(self._next)
        assert self._session is not None
        async with self._session.post(
            f"http://127.0.0.1:{port}{request.path}",
            data=await request.read(),
            headers={k: v for k, v in request.headers.items() if k.lower() != "host"},
        ) as response:
            body = await response.read()
            if response.status == 200:
                self.handled[port] += 1
            return web.Response(
                status=response.status, body=body, content_type=response.content_type
            )

    async def __aenter__(self) -> RoundRobin:
        self._session = ClientSession()
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()


async def start_worker(env: dict[str, str], port: int, cwd: Path) -> asyncio.subprocess.Process:
    base = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG"}}
    base["PYTHONPATH"] = str(ROOT)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        cwd=cwd,
        env={**base, **env, "WEBHOOK_LISTEN": f"127.0.0.1:{port}"},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    for _ in range(600):
        with contextlib.suppress(OSError):
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return process
        if process.returncode is not None:
            raise AssertionError((await process.stderr.read()).decode())
        await asyncio.sleep(0.1)
    raise AssertionError("the worker did not start listening")


async def stop_workers(processes: list[asyncio.subprocess.Process]) -> list[str]:
    errors = []
    for process in processes:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            code = await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()
            code = await process.wait()
        stderr = (await process.stderr.read()).decode()
        if code != 0 or "Traceback" in stderr:
            errors.append(f"exit {code}: {stderr[-3000:]}")
    return errors


async def test_two_workers_keep_the_count_exact_and_share_conversations(tmp_path: Path) -> None:
    await redis_or_skip()
    limit, attempts, user = 5, 24, 777_000 + os.getpid() % 1000
    async with (
        scratch_database() as database_url,
        FakeTelegram(allow_http_webhook=True, local_files=tmp_path / "bot-api") as tg,
        FakeJumdata() as jumdata,
        FakeJdCloud() as jdcloud,
    ):
        ports = [free_port(), free_port()]
        async with RoundRobin(ports) as balancer:
            env = {
                "BOT_TOKEN": tg.token,
                "TELEGRAM_API_URL": tg.base_url,
                # A local Bot API server: the only one a plain-http webhook may be used with.
                "TELEGRAM_API_LOCAL": "true",
                "WEBHOOK_URL": f"http://127.0.0.1:{balancer.port}/telegram/hook",
                "WEBHOOK_SECRET": SECRET,
                "DATABASE_URL": database_url,
                "REDIS_URL": REDIS_URL,
                "USER_DAILY_LIMIT": str(limit),
                "CHECK_PROVIDER": "jumdata",
                "JUMDATA_APP_ID": jumdata.app_id,
                "JUMDATA_APP_SECRET": jumdata.app_secret,
                "JUMDATA_URL": jumdata.base_url,
                "COMPARE_PROVIDER": "jdcloud",
                "JDCLOUD_ACCESS_KEY": jdcloud.access_key,
                "JDCLOUD_SECRET_KEY": jdcloud.secret_key,
                "JDCLOUD_URL": jdcloud.base_url,
                "LOCAL_WORKERS": "1",
                # Counting across processes is the point here, not pacing one user.
                "USER_IN_FLIGHT": "100",
                "USER_RATE": "0",
            }
            workers = [await start_worker(env, port, tmp_path) for port in ports]
            try:
                for _ in range(100):
                    if tg.webhook_url:
                        break
                    await asyncio.sleep(0.1)
                assert tg.webhook_url == env["WEBHOOK_URL"]

                # Hammer one user from both workers at once.
                mark = len(tg.calls)
                for _ in range(attempts):
                    tg.user_message(user, document=portrait_jpeg(), caption="/check")
                replies = []
                for _ in range(attempts):
                    call = await tg.wait_for(
                        {"sendphoto", "sendmessage"}, chat_id=user, after=mark, timeout=60
                    )
                    replies.append(call)
                    mark = call.index + 1
                texts = [c.params.get("caption") or c.params.get("text") or "" for c in replies]
                passed = [t for t in texts if tr("en", "check.verdict.pass") in t]
                refused = [t for t in texts if fragment("en", "quota.exceeded") in t]
                assert len(passed) == limit and len(refused) == attempts - limit, texts
                assert jumdata.charged == limit
                assert all(balancer.handled[port] > 0 for port in ports), balancer.handled

                # A conversation goes on whichever worker gets the next message.
                friend = user + 1
                before = dict(balancer.handled)
                mark = len(tg.calls)
                tg.user_message(friend, text="/compare")
                await tg.wait_for("sendmessage", chat_id=friend, after=mark, timeout=30)
                mark = len(tg.calls)
                tg.user_message(friend, document=portrait_jpeg())
                await tg.wait_for("sendmessage", chat_id=friend, after=mark, timeout=30)
                mark = len(tg.calls)
                tg.user_message(friend, document=portrait_jpeg(background=(250, 250, 250)))
                answer = await tg.wait_for("sendphoto", chat_id=friend, after=mark, timeout=30)
                assert tr("en", "compare.verdict.same_very_high") in answer.params["caption"]
                assert len(jdcloud.received(COMPARE_PATH)) == 1
                assert all(balancer.handled[p] > before.get(p, 0) for p in ports)

                # An album's parts reach both workers; it is answered once, as one album.
                shooter = user + 2
                before = dict(balancer.handled)
                charged = jumdata.charged
                mark = len(tg.calls)
                backgrounds = [(255, 255, 255), (250, 250, 250), (245, 245, 245)]
                for index, background in enumerate(backgrounds):
                    tg.user_message(
                        shooter,
                        photo=portrait_jpeg(background=background),
                        caption="/check" if index == 0 else None,
                        media_group_id="album-across-workers",
                    )
                for _ in range(len(backgrounds)):
                    call = await tg.wait_for("sendphoto", chat_id=shooter, after=mark, timeout=60)
                    mark = call.index + 1
                await asyncio.sleep(1.0)  # a part answered on its own would come by now
                assert all(balancer.handled[p] > before.get(p, 0) for p in ports)
                assert jumdata.charged == charged + len(backgrounds)
                assert len(tg.sent(shooter, "sendphoto")) == len(backgrounds)
                menus = [c for c in tg.sent(shooter, "sendmessage") if c.params.get("reply_markup")]
                assert menus == []  # no part was taken for a photo without a command
            finally:
                errors = await stop_workers(workers)
            assert errors == []
