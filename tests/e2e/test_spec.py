"""/spec end to end: the real bot, a fake Telegram server, fake jumdata, a real database."""

from __future__ import annotations

import io
import shutil
import tempfile
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import fragment, portrait_jpeg, tr
from tests.e2e.conftest import run_bot
from tests.e2e.test_check import check_requests, reply, text_of
from tests.e2e.test_quota import command, jumdata_settings
from tests.fakes.jumdata import FakeJumdata
from tests.fakes.telegram import FakeTelegram

pytestmark = pytest.mark.e2e


async def test_spec_applies_to_a_check_survives_a_restart_and_forget_removes_it(
    tg, jumdata
) -> None:
    folder = tempfile.mkdtemp(prefix="facecheck-spec-")
    url = f"sqlite+aiosqlite:///{Path(folder) / 'bot.db'}"
    settings = jumdata_settings(jumdata, database_url=url)
    try:
        async with run_bot(tg, **settings):
            assert fragment("en", "spec.set") in text_of(await command(tg, 90, "/spec usa"))
            mark = len(tg.calls)
            tg.user_message(90, document=portrait_jpeg(600, 600), caption="/check")
            answer = text_of(await reply(tg, 90, after=mark))
            assert fragment("en", "check.spec.title") in answer
            assert "<b>US passport</b>" in answer
            assert len(check_requests(jumdata)) == 1

        async with run_bot(tg, **settings):
            shown = text_of(await command(tg, 90, "/spec"))
            assert fragment("en", "spec.current") in shown and "US passport" in shown
            confirm = await command(tg, 90, "/forget")
            yes = next(
                b
                for row in confirm.params["reply_markup"]["inline_keyboard"]
                for b in row
                if b["text"] == tr("en", "forget.yes")
            )
            mark = len(tg.calls)
            tg.press_button(90, confirm.result, yes["callback_data"])
            await tg.wait_for("editmessagetext", chat_id=90, after=mark)
            assert tr("en", "spec.none") in text_of(await command(tg, 90, "/spec"))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def test_country_names_in_three_languages(tg, jumdata, jumdata_bot) -> None:
    german = text_of(await command(tg, 91, "/spec Германия", language="ru"))
    assert fragment("ru", "spec.office.named") in german
    assert "Паспорт и ID-карта Германии" in german

    chinese = text_of(await command(tg, 92, "/spec 中国", language="zh-hans"))
    assert fragment("zh_Hans", "spec.set") in chinese

    english = text_of(await command(tg, 93, "/spec United Kingdom"))
    assert fragment("en", "spec.set") in english and "UK passport" in english

    unknown = text_of(await command(tg, 93, "/spec narnia"))
    assert fragment("en", "spec.unknown") in unknown
    assert check_requests(jumdata) == []


async def test_make_the_file_from_a_checked_photo(tg: FakeTelegram, jumdata: FakeJumdata) -> None:
    """/check us-passport, then "Make a US passport photo": the original downloaded again,
    the file sent as a document at the document's exact size, then checked again."""
    # Where the head is in a square photo: fits the US passport's bands once cropped.
    jumdata.profile.update(head_top=0.15, head_chin_y=0.70, eyes_y_center=0.40, face_x_center=0.50)
    async with run_bot(tg, **jumdata_settings(jumdata)):
        mark = len(tg.calls)
        tg.user_message(94, document=portrait_jpeg(1000, 1000), caption="/check us-passport")
        edit = await tg.wait_for("editmessagereplymarkup", chat_id=94, after=mark, timeout=15)
        assert edit.ok, edit.summary()
        shown = [b for row in edit.result["reply_markup"]["inline_keyboard"] for b in row]
        assert [b["text"] for b in shown] == ["Make a US passport photo", "Print sheet (10×15 cm)"]
        assert len(check_requests(jumdata)) == 1

        mark = len(tg.calls)
        tg.press_button(94, edit.result, shown[0]["callback_data"])
        document = await tg.wait_for("senddocument", chat_id=94, after=mark, timeout=30)
        assert document.ok, document.summary()
        assert document.filenames["document"] == "us-passport.jpg"
        with Image.open(io.BytesIO(document.files["document"])) as made:
            assert made.size == (602, 602)
            assert tuple(round(d) for d in made.info["dpi"]) == (300, 300)
        assert "51×51" in text_of(document)
        recheck = await reply(tg, 94, after=document.index, method="sendphoto")
        assert fragment("en", "check.spec.title") in text_of(recheck)
        assert "<b>US passport</b>" in text_of(recheck)
        assert len(check_requests(jumdata)) == 2
        answers = [c for c in tg.calls[mark:] if c.method == "answercallbackquery"]
        assert len(answers) == 1 and answers[0].ok
