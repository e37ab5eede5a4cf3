"""The least a correct ID-photo bot does per update: the baseline ``check_roundtrip`` holds
this bot against.

``/start`` answers with a line of text. ``/check`` (as a photo's or a file's caption)
downloads the photo, fits it into jumdata's limits in a worker thread (a JPEG is decoded
with ``draft()`` straight to the size it needs; a photo within the limits is sent as it
came), posts jumdata's signed form and answers with the verdict and the reasons as text.
No database, no quota, no picture, no languages: what this project adds on top of it is
what the benchmark puts a price on.

    BOT_TOKEN=... TELEGRAM_API_URL=... JUMDATA_APP_ID=... JUMDATA_APP_SECRET=...
    JUMDATA_URL=... python -m bench.minimal_bot
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import time

import aiohttp
from aiogram import Bot, Dispatcher, F
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.filters import Command, CommandStart
from aiogram.types import Message
from PIL import Image

MAX_BYTES = 6 * 1024 * 1024 - 1  # jumdata: under 6 MB
MAX_SIDE = 2500  # and at most 2500 px a side


def fit(data: bytes) -> bytes:
    """The photo as jumdata takes it: unchanged when it fits, else reduced with a draft
    decode and saved as a JPEG."""
    with Image.open(io.BytesIO(data)) as image:
        if len(data) <= MAX_BYTES and max(image.size) <= MAX_SIDE:
            return data
        image.draft("RGB", (MAX_SIDE, MAX_SIDE))
        image.thumbnail((MAX_SIDE, MAX_SIDE))
        out = io.BytesIO()
        image.convert("RGB").save(out, "JPEG", quality=92)
        return out.getvalue()


def create(
    token: str, api: str, app_id: str, secret: str, jumdata_url: str
) -> tuple[Bot, Dispatcher, aiohttp.ClientSession]:
    """The bot, its dispatcher and the HTTP session for jumdata (closed by the caller)."""
    check_url = jumdata_url.rstrip("/") + "/id-phote/check"
    bot = Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(api)))
    dispatcher = Dispatcher()
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))

    @dispatcher.message(CommandStart())
    async def start(message: Message) -> None:
        await message.answer("Send a photo with /check in its caption.")

    @dispatcher.message(Command("check"), F.photo | F.document)
    async def check(message: Message) -> None:
        file = message.document or (message.photo or [None])[-1]
        if file is None:
            return
        file_id = file.file_id
        buffer = io.BytesIO()
        await bot.download(file_id, destination=buffer)
        photo = await asyncio.to_thread(fit, buffer.getvalue())
        stamp = str(int(time.time() * 1000))
        form = aiohttp.FormData()
        form.add_field("appId", app_id)
        form.add_field("timestamp", stamp)
        form.add_field("sign", hashlib.sha256((app_id + secret + stamp).encode()).hexdigest())
        form.add_field("file", photo, filename="photo.jpg", content_type="image/jpeg")
        async with http.post(check_url, data=form) as response:
            answer = await response.json(content_type=None)
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, dict) or str(answer.get("code")) != "200":
            await message.reply("The check could not be made; try again later.")
            return
        reasons = [r for r in data.get("reasons") or [] if isinstance(r, str)]
        verdict = "Passed" if data.get("pass") is True else "Failed"
        await message.reply("\n".join([verdict, *(f"- {r}" for r in reasons)]))

    return bot, dispatcher, http


async def main() -> None:
    bot, dispatcher, http = create(
        os.environ["BOT_TOKEN"],
        os.environ.get("TELEGRAM_API_URL", "https://api.telegram.org"),
        os.environ["JUMDATA_APP_ID"],
        os.environ["JUMDATA_APP_SECRET"],
        os.environ["JUMDATA_URL"],
    )
    try:
        await dispatcher.start_polling(bot, handle_signals=True, close_bot_session=True)
    finally:
        await http.close()


if __name__ == "__main__":
    asyncio.run(main())
