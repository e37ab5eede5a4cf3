"""The webhook endpoint over real HTTP: a post without Telegram's secret is no update."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram.methods import SendMessage
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from bot.webhook import SECRET_HEADER, WebhookHandler
from services.models import Operation
from tests.unit.recording import FakeProvider, RecordingSession, dispatcher_with

SECRET = "s3cret-Token_1"
ADMIN = 4242


def stats_update(update_id: int) -> dict[str, Any]:
    """What a forger posts: /stats as if from an admin, into the forger's chat."""
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 1_700_000_000,
            "chat": {"id": 666, "type": "private"},
            "from": {"id": ADMIN, "is_bot": False, "first_name": "Admin"},
            "text": "/stats",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        },
    }


@pytest.fixture
async def served() -> AsyncIterator[tuple[str, RecordingSession]]:
    dispatcher, bot, session = dispatcher_with(
        {operation: FakeProvider() for operation in Operation},
        admin_ids=[ADMIN],
        database_url="sqlite+aiosqlite:///:memory:",
    )
    app = web.Application()
    # Answered before the handler returns, so a test sees its effect at once.
    WebhookHandler(dispatcher, bot, secret_token=SECRET, handle_in_background=False).register(
        app, path="/hook"
    )
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("/hook")), session
    finally:
        await server.close()


async def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    async with ClientSession() as client, client.post(url, data=body, headers=headers) as reply:
        return reply.status


def sent_texts(session: RecordingSession) -> list[str]:
    return [r.text for r in session.requests if isinstance(r, SendMessage)]


async def test_a_forged_post_is_refused_and_telegrams_is_handled(
    served: tuple[str, RecordingSession],
) -> None:
    url, session = served
    body = json.dumps(stats_update(1)).encode()
    plain = {"Content-Type": "application/json"}
    assert await post(url, body, plain) == 401
    assert await post(url, body, {**plain, SECRET_HEADER: "guess"}) == 401
    # Non-ASCII in the header: a wrong secret, not a server error.
    latin = {**plain, SECRET_HEADER: "s3cret-Töken_1"}
    assert await post(url, body, latin) == 401
    assert sent_texts(session) == []  # nothing reached the handlers

    assert await post(url, body, {**plain, SECRET_HEADER: SECRET}) == 200
    assert len(sent_texts(session)) == 1  # Telegram's own post: the admin's statistics


async def test_a_body_that_is_no_update_is_a_bad_request(
    served: tuple[str, RecordingSession],
) -> None:
    url, session = served
    headers = {"Content-Type": "application/json", SECRET_HEADER: SECRET}
    assert await post(url, b"{not json", headers) == 400
    assert await post(url, b"[1, 2]", headers) == 400
    assert await post(url, b"\xff\xfe", headers) == 400
    assert sent_texts(session) == []
