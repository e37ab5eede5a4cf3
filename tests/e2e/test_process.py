"""``python -m bot`` as an operator runs it: settings from the environment, signals to stop."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.conftest import portrait_jpeg, tr
from tests.fakes.jumdata import FakeJumdata
from tests.fakes.telegram import FakeTelegram

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


async def start_bot(env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    base = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG"}}
    base["PYTHONPATH"] = str(ROOT)
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        cwd=cwd,
        env={**base, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_signal_stops_cleanly_after_finishing_the_request_in_flight(
    tmp_path: Path, signum: int
) -> None:
    async with FakeTelegram() as tg, FakeJumdata() as jumdata:
        jumdata.script("/id-phote/check", hang=1.5)  # slow, but within the timeout
        process = await start_bot(
            {
                "BOT_TOKEN": tg.token,
                "TELEGRAM_API_URL": tg.base_url,
                "CHECK_PROVIDER": "jumdata",
                "JUMDATA_APP_ID": jumdata.app_id,
                "JUMDATA_APP_SECRET": jumdata.app_secret,
                "JUMDATA_URL": jumdata.base_url,
                "PROVIDER_TIMEOUT": "10",
            },
            tmp_path,
        )
        try:
            await tg.wait_for_poll(timeout=60)
            tg.user_message(42, document=portrait_jpeg(), caption="/check")
            # Wait until the provider has the request, then ask the bot to stop.
            for _ in range(200):
                if jumdata.received("/id-phote/check"):
                    break
                await asyncio.sleep(0.05)
            assert jumdata.received("/id-phote/check")
            mark = len(tg.calls)
            process.send_signal(signum)
            answer = await tg.wait_for("sendphoto", chat_id=42, after=mark, timeout=20)
            assert tr("en", "check.verdict.pass") in answer.params["caption"]
            code = await asyncio.wait_for(process.wait(), 30)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        stderr = (await process.stderr.read()).decode()
        assert code == 0, stderr
        assert "Traceback" not in stderr
        assert tg.token not in stderr and jumdata.app_secret not in stderr
        # Once stopped, the bot no longer asks for updates.
        polls = len([c for c in tg.calls if c.method == "getupdates"])
        await asyncio.sleep(0.5)
        assert len([c for c in tg.calls if c.method == "getupdates"]) == polls


async def test_start_answers_with_only_a_token(tmp_path: Path) -> None:
    async with FakeTelegram() as tg:
        (tmp_path / ".env").write_text(f"BOT_TOKEN={tg.token}\nTELEGRAM_API_URL={tg.base_url}\n")
        process = await start_bot({}, tmp_path)
        try:
            await tg.wait_for_poll(timeout=60)
            mark = len(tg.calls)
            tg.user_message(7, text="/start", language_code="ru")
            answer = await tg.wait_for("sendmessage", chat_id=7, after=mark, timeout=10)
            assert tr("ru", "help.intro") in answer.params["text"]
        finally:
            process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(process.wait(), 30)
        assert code == 0


async def test_an_unreachable_redis_stops_the_bot_with_one_line(tmp_path: Path) -> None:
    """With ``REDIS_URL`` the users' choices are followed over Redis from the start: a Redis
    that cannot be reached is a start-up error, not a bot that answers in stale languages."""
    async with FakeTelegram() as tg:
        env = {
            "BOT_TOKEN": tg.token,
            "TELEGRAM_API_URL": tg.base_url,
            "REDIS_URL": "redis://127.0.0.1:1/0",  # nothing listens on port 1
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/bot.db",
        }
        process = await start_bot(env, tmp_path)
        _out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2
    stderr = err.decode()
    assert "Traceback" not in stderr
    line = stderr.strip().splitlines()[-1]
    assert line.startswith("start-up error: preferences: cannot load or follow them: ")
    assert "127.0.0.1:1" in line


async def test_metrics_and_health_on_metrics_listen(tmp_path: Path) -> None:
    """What an operator's Prometheus and load balancer see of a running bot."""
    import aiohttp

    from tests.e2e.test_scale import free_port

    port = free_port()
    async with FakeTelegram() as tg, FakeJumdata() as jumdata:
        process = await start_bot(
            {
                "BOT_TOKEN": tg.token,
                "TELEGRAM_API_URL": tg.base_url,
                "CHECK_PROVIDER": "jumdata",
                "JUMDATA_APP_ID": jumdata.app_id,
                "JUMDATA_APP_SECRET": jumdata.app_secret,
                "JUMDATA_URL": jumdata.base_url,
                "USER_DAILY_LIMIT": "5",
                "METRICS_LISTEN": f"127.0.0.1:{port}",
                "LOCAL_WORKERS": "1",
            },
            tmp_path,
        )
        try:
            await tg.wait_for_poll(timeout=60)
            mark = len(tg.calls)
            tg.user_message(42, document=portrait_jpeg(), caption="/check")
            await tg.wait_for("sendphoto", chat_id=42, after=mark, timeout=30)
            async with aiohttp.ClientSession() as client:
                async with client.get(f"http://127.0.0.1:{port}/health") as reply:
                    assert reply.status == 200
                    assert await reply.json() == {
                        "database": "ok",
                        "redis": "off",
                        "local_pool": "ok",  # /faces, /compare and /analyze are local
                    }
                async with client.get(f"http://127.0.0.1:{port}/metrics") as reply:
                    assert reply.status == 200
                    text = await reply.text()
        finally:
            process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(process.wait(), 30)
        assert code == 0
    calls = [
        line
        for line in text.splitlines()
        if line.startswith("facecheck_provider_calls_total{")
        and 'provider="jumdata"' in line
        and 'billing="charged"' in line
    ]
    assert len(calls) == 1 and calls[0].endswith(" 1.0"), calls
    assert 'facecheck_replies_total{operation="check",outcome="ok"} 1.0' in text
    assert "facecheck_updates_total" in text
