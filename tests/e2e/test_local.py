"""With only BOT_TOKEN set, all four operations answer from the local engine."""

from __future__ import annotations

import asyncio

import pytest

from bot.i18n import LOCALES
from tests.conftest import fragment, portrait_jpeg, tr
from tests.e2e.conftest import run_bot
from tests.e2e.test_check import LANGUAGE_CODES, reply, text_of
from tests.fakes.telegram import Call, FakeTelegram

pytestmark = pytest.mark.e2e


async def full_reply(tg: FakeTelegram, user: int, after: int) -> str:
    """The photo's caption and the text that follows it, up to the engine's name."""
    first = await reply(tg, user, after=after)
    texts = [text_of(first)]
    if first.method == "sendphoto" and "local" not in texts[0]:
        last: Call = await tg.wait_for(
            "sendmessage",
            chat_id=user,
            after=first.index,
            predicate=lambda c: "local" in text_of(c),
        )
        texts.append(text_of(last))
    return "\n".join(texts)


@pytest.mark.parametrize("locale", LOCALES)
async def test_check_compare_faces_analyze_with_no_cloud_account(
    tg, photo_bytes, locale: str
) -> None:
    language = LANGUAGE_CODES[locale]
    async with run_bot(tg, local_workers=2):
        user = 100 + LOCALES.index(locale)
        mark = len(tg.calls)
        tg.user_message(
            user, document=photo_bytes["obama.jpg"], caption="/check", language_code=language
        )
        check = await full_reply(tg, user, mark)
        assert (
            tr(locale, "check.verdict.pass") in check or tr(locale, "check.verdict.fail") in check
        )
        assert fragment(locale, "check.not_checked") in check
        assert tr(locale, "check.provider").format(provider="local") in check

        mark = len(tg.calls)
        tg.user_message(
            user,
            photo=photo_bytes["obama.jpg"],
            caption="/compare",
            media_group_id=f"same-{locale}",
            language_code=language,
        )
        tg.user_message(
            user,
            photo=photo_bytes["obama2.jpg"],
            media_group_id=f"same-{locale}",
            language_code=language,
        )
        same = await full_reply(tg, user, mark)
        assert fragment(locale, "compare.explain_local") in same
        assert any(
            tr(locale, f"compare.verdict.{v}") in same
            for v in ("same_very_high", "same_high", "probably_same")
        )

        mark = len(tg.calls)
        tg.user_message(
            user,
            photo=photo_bytes["obama.jpg"],
            caption="/compare",
            media_group_id=f"other-{locale}",
            language_code=language,
        )
        tg.user_message(
            user,
            photo=photo_bytes["biden.jpg"],
            media_group_id=f"other-{locale}",
            language_code=language,
        )
        other = await full_reply(tg, user, mark)
        assert tr(locale, "compare.verdict.different") in other

        mark = len(tg.calls)
        tg.user_message(
            user, photo=photo_bytes["obama.jpg"], caption="/faces", language_code=language
        )
        faces = await full_reply(tg, user, mark)
        assert tr(locale, "faces.count").format(count=1) in faces

        mark = len(tg.calls)
        tg.user_message(
            user, photo=photo_bytes["obama.jpg"], caption="/analyze", language_code=language
        )
        analyze = await full_reply(tg, user, mark)
        assert tr(locale, "analyze.count").format(count=1) in analyze
        assert fragment(locale, "analyze.local_note") in analyze


async def test_a_photo_without_a_face(tg) -> None:
    async with run_bot(tg):
        mark = len(tg.calls)
        tg.user_message(200, document=portrait_jpeg(), caption="/faces")
        answer = await reply(tg, 200, after=mark)
        assert fragment("en", "local.no_face") in text_of(answer)


async def test_a_burst_of_users_is_served_or_asked_to_wait(tg, photo_bytes) -> None:
    """More photos than the queue holds: everyone gets an answer, nobody is charged for
    being turned away, and the bot keeps serving."""
    users = list(range(300, 312))
    async with run_bot(tg, local_workers=2, local_queue_limit=3, user_daily_limit=1):
        mark = len(tg.calls)
        for user in users:
            tg.user_message(user, document=photo_bytes["obama.jpg"], caption="/faces")
        answers = await asyncio.gather(*(reply(tg, u, after=mark) for u in users))
        served = [a for a in answers if a.method == "sendphoto"]
        busy = [a for a in answers if fragment("en", "local.busy") in text_of(a)]
        assert len(served) + len(busy) == len(users)
        assert served and busy
        # A user turned away still has their allowance for the day.
        retry_user = int(busy[0].chat_id or 0)
        mark = len(tg.calls)
        tg.user_message(retry_user, document=photo_bytes["obama.jpg"], caption="/faces")
        assert (await reply(tg, retry_user, after=mark)).method == "sendphoto"
