"""Quotas, provider budgets, persistence, /quota, /stats, /forget and the local fallback."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tests.conftest import fragment, portrait_jpeg, tr
from tests.e2e.conftest import run_bot
from tests.e2e.test_check import CHECK_PATH, check_requests, reply, text_of
from tests.fakes.jumdata import FakeJumdata
from tests.fakes.telegram import FakeTelegram

pytestmark = pytest.mark.e2e
ADMIN = 4242


def jumdata_settings(jumdata: FakeJumdata, **extra: object) -> dict:
    return {
        "check_provider": "jumdata",
        "jumdata_app_id": jumdata.app_id,
        "jumdata_app_secret": jumdata.app_secret,
        "jumdata_url": jumdata.base_url,
        "provider_timeout": 2,
        "admin_ids": [ADMIN],
        **extra,
    }


async def check(tg: FakeTelegram, user: int, *, language: str = "en"):
    mark = len(tg.calls)
    tg.user_message(user, document=portrait_jpeg(), caption="/check", language_code=language)
    return await reply(tg, user, after=mark)


async def command(tg: FakeTelegram, user: int, text: str, *, language: str = "en"):
    mark = len(tg.calls)
    tg.user_message(user, text=text, language_code=language)
    return await reply(tg, user, after=mark)


async def test_the_daily_limit_is_enforced_and_explained(tg, jumdata) -> None:
    async with run_bot(tg, **jumdata_settings(jumdata, user_daily_limit=2)):
        for _ in range(2):
            assert tr("en", "check.verdict.pass") in text_of(await check(tg, 10))
        refused = text_of(await check(tg, 10, language="ru"))
        assert fragment("ru", "quota.exceeded") in refused
        assert tr("ru", "operation.check") in refused and "UTC" in refused
        assert len(check_requests(jumdata)) == 2  # the refused one never reached the provider
        # Another user and another operation have their own allowance; admins have none.
        assert tr("en", "check.verdict.pass") in text_of(await check(tg, 11))
        for _ in range(3):
            assert tr("en", "check.verdict.pass") in text_of(await check(tg, ADMIN))
        quota = text_of(await command(tg, 10, "/quota"))
        assert tr("en", "quota.left").format(remaining=0, limit=2) in quota
        assert tr("en", "quota.left").format(remaining=2, limit=2) in quota  # the others


async def test_an_answer_the_provider_did_not_charge_costs_nothing(tg, jumdata) -> None:
    async with run_bot(tg, **jumdata_settings(jumdata, user_daily_limit=1)):
        jumdata.script(CHECK_PATH, code=205)  # charge: false
        assert fragment("en", "jumdata.no_face") in text_of(await check(tg, 20))
        jumdata.script(CHECK_PATH, hang=4)  # a timeout: the provider's charge is unknown
        assert fragment("en", "provider.unavailable") in text_of(await check(tg, 20))
        assert tr("en", "check.verdict.pass") in text_of(await check(tg, 20))
        assert fragment("en", "quota.exceeded") in text_of(await check(tg, 20))


async def test_a_spent_provider_is_not_called_until_cleared(tg, jumdata) -> None:
    async with run_bot(tg, **jumdata_settings(jumdata)):
        jumdata.script(CHECK_PATH, code=603)
        assert fragment("en", "jumdata.balance") in text_of(await check(tg, 30))
        refused = text_of(await check(tg, 31))
        assert fragment("en", "budget.spent_until_cleared") in refused
        assert len(check_requests(jumdata)) == 1
        quota = text_of(await command(tg, 31, "/quota"))
        assert fragment("en", "quota.provider_spent") in quota
        # Only an admin may clear it; for anyone else the command does not exist.
        assert text_of(await command(tg, 31, "/clearbudget jumdata")) == tr(
            "en", "fallback.unknown_command"
        )
        cleared = text_of(await command(tg, ADMIN, "/clearbudget jumdata"))
        assert cleared == tr("en", "budget.cleared").format(provider="jumdata")
        assert tr("en", "check.verdict.pass") in text_of(await check(tg, 31))


async def test_backing_off_after_too_many_requests(tg, jumdata) -> None:
    async with run_bot(tg, **jumdata_settings(jumdata)):
        jumdata.script(CHECK_PATH, code=606)
        assert fragment("en", "jumdata.over_limit") in text_of(await check(tg, 40))
        assert fragment("en", "budget.backing_off") in text_of(await check(tg, 41))
        assert len(check_requests(jumdata)) == 1


async def test_fallback_to_local_answers_and_says_so(tg, jumdata, photo_bytes) -> None:
    settings = jumdata_settings(jumdata, fallback_to_local=True, user_daily_limit=2)
    async with run_bot(tg, **settings):
        jumdata.script(CHECK_PATH, code=603)
        mark = len(tg.calls)
        tg.user_message(50, document=photo_bytes["obama.jpg"], caption="/check")
        answer = await reply(tg, 50, after=mark, method="sendphoto")
        # The report is long: its last section (which engine answered) may follow the photo.
        last = await tg.wait_for(
            {"sendphoto", "sendmessage"},
            chat_id=50,
            after=answer.index,
            predicate=lambda c: "local" in text_of(c),
        )
        text = text_of(answer) + "\n" + text_of(last)
        assert tr("en", "fallback.used").format(provider="jumdata") in text
        assert tr("en", "check.provider").format(provider="local") in text
        quota = text_of(await command(tg, 50, "/quota"))
        # The local answer counts against the user's allowance like any other.
        assert tr("en", "quota.left").format(remaining=1, limit=2) in quota


async def test_usage_and_language_survive_a_restart(tg, jumdata) -> None:
    folder = tempfile.mkdtemp(prefix="facecheck-restart-")
    url = f"sqlite+aiosqlite:///{Path(folder) / 'bot.db'}"
    settings = jumdata_settings(jumdata, user_daily_limit=3, database_url=url)
    async with run_bot(tg, **settings):
        await command(tg, 60, "/lang ru")
        await check(tg, 60)
    async with run_bot(tg, **settings):
        quota = text_of(await command(tg, 60, "/quota", language="en"))
        assert tr("ru", "quota.title") in quota
        assert tr("ru", "quota.left").format(remaining=2, limit=3) in quota


async def test_forget_deletes_settings_but_not_todays_count(tg, jumdata) -> None:
    async with run_bot(tg, **jumdata_settings(jumdata, user_daily_limit=1)):
        await command(tg, 70, "/lang zh")
        await check(tg, 70)
        confirm = await command(tg, 70, "/forget")
        assert text_of(confirm) == tr("zh_Hans", "forget.confirm")
        yes = next(
            b
            for row in confirm.params["reply_markup"]["inline_keyboard"]
            for b in row
            if b["text"] == tr("zh_Hans", "forget.yes")
        )
        mark = len(tg.calls)
        tg.press_button(70, confirm.result, yes["callback_data"])
        edited = await tg.wait_for("editmessagetext", chat_id=70, after=mark)
        assert edited.params["text"] == tr("zh_Hans", "forget.done")
        # The language choice is gone (Telegram's "en" applies again)...
        assert tr("en", "help.intro") in text_of(await command(tg, 70, "/help"))
        # ...but the daily count is not: forgetting is no way around the limit.
        assert fragment("en", "quota.exceeded") in text_of(await check(tg, 70))


async def test_stats_for_admins_only(tg, jumdata) -> None:
    async with run_bot(tg, **jumdata_settings(jumdata)):
        await check(tg, 80)
        jumdata.script(CHECK_PATH, code=205)
        await check(tg, 81)
        refused = text_of(await command(tg, 80, "/stats"))
        assert refused == tr("en", "fallback.unknown_command")
        mark = len(tg.calls)
        tg.user_message(ADMIN, text="/stats")
        stats = text_of(await reply(tg, ADMIN, after=mark))
        assert tr("en", "stats.total").format(calls=2, charged=1, free=1) in stats
        assert "jumdata 205: 1" in stats
