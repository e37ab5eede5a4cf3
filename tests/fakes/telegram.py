"""A fake Telegram Bot API server for tests, speaking the real HTTP protocol.

The bot under test talks to it exactly as in production: aiogram's ``AiohttpSession``
pointed at ``TelegramAPIServer.from_base(fake.base_url)``, multipart requests, long
polling, file downloads. The fake is strict on purpose: it rejects what Telegram
rejects, with Telegram's status codes and wording (taken from tdlib/telegram-bot-api's
``Client.cpp`` and TDLib's entity parsers), so a test that passes against it proves
the bot would be accepted by the real server. A fake that accepts anything proves
nothing.

Only private chats are modelled: a user becomes a known chat when the test makes
them send something (:meth:`FakeTelegram.user_message`), just as a real user has to
start a bot before the bot can write to them.

Typical use::

    async with FakeTelegram() as tg:
        bot = Bot(tg.token, session=AiohttpSession(api=TelegramAPIServer.from_base(tg.base_url)))
        tg.user_message(42, text="/start")
        call = await tg.wait_for("sendMessage", chat_id=42)
        assert "Hello" in call.params["text"]

Webhooks work too: after ``setWebhook`` the fake POSTs each pending update to the URL as
Telegram does (one update per request, the secret token header, up to ``max_connections``
requests at once, retries with back-off, errors in ``getWebhookInfo``, a Bot API call in a
2xx answer executed). Like the official server, it refuses plain HTTP and loopback/reserved
addresses, so a test serving its webhook on 127.0.0.1 builds the fake with
``FakeTelegram(allow_http_webhook=True)``, which treats loopback hosts the way the server's
``--local`` mode does. The fake never leaves the machine: a webhook on any other host is
accepted and shown by ``getWebhookInfo`` but not called, its updates just stay pending::

    async with FakeTelegram(allow_http_webhook=True) as tg:
        await bot.set_webhook(f"http://127.0.0.1:{port}/hook", secret_token="s3cret")
        tg.user_message(42, text="/start")
        delivery = await tg.wait_for_delivery(tg.last_update_id)
"""

from __future__ import annotations

import asyncio
import base64
import copy
import errno
import hashlib
import inspect
import io
import ipaddress
import json
import logging
import mimetypes
import os
import re
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import BodyPartReader, MultipartReader, web
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["Call", "Delivery", "FakeTelegram"]

log = logging.getLogger(__name__)

# Limits of the public Bot API server (https://core.telegram.org/bots/api).
MAX_DOWNLOAD_SIZE = 20 * 1024 * 1024  # getFile refuses bigger files
MAX_UPLOAD_SIZE = 50 * 1024 * 1024  # whole multipart request
MAX_PHOTO_SIZE = 10 * 1024 * 1024  # TDLib's MAX_PHOTO_SIZE
MAX_TEXT_LENGTH = 4096  # after entity parsing, in UTF-16 code units
MAX_CAPTION_LENGTH = 1024
MAX_RAW_TEXT_BYTES = 1 << 15  # Client::get_formatted_text refuses longer raw strings
MAX_CALLBACK_DATA_BYTES = 64
MAX_LONG_POLL_TIMEOUT = 50
PHOTO_SIDES = (90, 320, 800, 1280)  # Telegram's s/m/x/y boxes

# Webhooks (telegram-bot-api's Client.cpp and WebhookActor.cpp).
DEFAULT_MAX_WEBHOOK_CONNECTIONS = 40
MAX_WEBHOOK_CONNECTIONS = 100
MAX_SECRET_TOKEN_LENGTH = 256
SET_WEBHOOK_INTERVAL = 1.0  # setWebhook with a URL: at most one per second, else 429
WEBHOOK_ALLOWED_PORTS = (443, 80, 88, 8443)
WEBHOOK_MAX_RESEND_TIMEOUT = 60  # the back-off doubles (0, 2, 4, 8... s) up to this
WEBHOOK_MAX_RETRY_AFTER = 3600  # a Retry-After header is honoured up to this
WEBHOOK_ACTIVE_WINDOW = 10.0  # one connection at a time unless a delivery succeeded this recently
WEBHOOK_TIMEOUT = 60.0  # per request; FakeTelegram.webhook_timeout overrides it
# A 2xx answer may carry a Bot API call, executed unless it is one of these (or get*).
WEBHOOK_REPLY_REFUSED = frozenset({"deletewebhook", "setwebhook", "close", "logout"})

CONFLICT_GET_UPDATES = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)
QUERY_INVALID = "Bad Request: query is too old and response timeout expired or query ID is invalid"

# Client::get_chat_action: the documented actions plus the legacy aliases the server accepts.
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
        "cancel",
        "record_audio",
        "upload_audio",
        "pick_up_location",
    }
)

UPDATE_TYPES = (
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "inline_query",
    "chosen_inline_result",
    "callback_query",
    "shipping_query",
    "pre_checkout_query",
    "purchased_paid_media",
    "poll",
    "poll_answer",
    "my_chat_member",
    "chat_member",
    "chat_join_request",
    "chat_boost",
    "removed_chat_boost",
    "message_reaction",
    "message_reaction_count",
    "business_connection",
    "business_message",
    "edited_business_message",
    "deleted_business_messages",
)
# Without allowed_updates Telegram delivers everything except these three.
DEFAULT_ALLOWED_UPDATES = frozenset(UPDATE_TYPES) - {
    "chat_member",
    "message_reaction",
    "message_reaction_count",
}

# How Call.params decodes the string fields Telegram receives.
_JSON_PARAMS = frozenset(
    {
        "reply_markup",
        "reply_parameters",
        "entities",
        "caption_entities",
        "media",
        "allowed_updates",
        "commands",
        "scope",
        "link_preview_options",
        "message_ids",
        "reaction",
        "menu_button",
        "rights",
        "permissions",
        "results",
    }
)
_INT_PARAMS = frozenset(
    {
        "chat_id",
        "from_chat_id",
        "message_id",
        "message_thread_id",
        "reply_to_message_id",
        "offset",
        "limit",
        "timeout",
        "cache_time",
        "user_id",
        "duration",
        "width",
        "height",
        "max_connections",
    }
)
_BOOL_PARAMS = frozenset(
    {
        "disable_notification",
        "protect_content",
        "allow_paid_broadcast",
        "allow_sending_without_reply",
        "show_alert",
        "drop_pending_updates",
        "has_spoiler",
        "show_caption_above_media",
        "disable_web_page_preview",
        "disable_content_type_detection",
        "supports_streaming",
    }
)


# --------------------------------------------------------------------------- errors


class _ApiError(Exception):
    """A Bot API error answer: HTTP status == error_code, Telegram's description."""

    def __init__(self, code: int, description: str, *, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.code,
            "description": self.description,
        }
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def _bad(description: str) -> _ApiError:
    """400 with Telegram's ``Bad Request: `` prefix and lower-cased first letter."""
    if len(description) >= 2 and not (description[1] == "_" or description[1].isupper()):
        description = description[0].lower() + description[1:]
    return _ApiError(400, f"Bad Request: {description}")


class _ParseError(Exception):
    """An entity parsing failure, reported as ``can't parse entities: ...``."""


# --------------------------------------------------------------------------- records


@dataclass
class Call:
    """One request the fake received, with what it answered."""

    index: int
    method: str
    """Lower-cased method name, as Telegram matches it."""
    params: dict[str, Any]
    """Decoded parameters: ints, bools and JSON fields (reply_markup, media...) as objects."""
    files: dict[str, bytes]
    """Uploaded parts by parameter name (``attach://`` resolved); ``media[i]`` for albums."""
    result: Any = None
    error: dict[str, Any] | None = None
    filenames: dict[str, str] = field(default_factory=dict)
    """Upload file names, keyed like ``files``."""
    raw: dict[str, str] = field(default_factory=dict, repr=False)
    """Parameters exactly as received (strings)."""
    done: bool = field(default=False, repr=False)
    """False while the request is still being answered (a pending long poll)."""
    via_webhook_reply: bool = False
    """True for a Bot API call the bot made in its answer to a webhook request."""

    @property
    def chat_id(self) -> int | None:
        value = self.params.get("chat_id")
        return value if isinstance(value, int) else None

    @property
    def ok(self) -> bool:
        return self.done and self.error is None

    def summary(self) -> str:
        """One line for assertion messages."""
        state = "pending" if not self.done else ("ok" if self.error is None else "ERR")
        detail = ""
        if self.error is not None:
            detail = f" {self.error.get('error_code')} {self.error.get('description')!r}"
        shown = {
            k: v
            for k, v in self.params.items()
            if k in {"chat_id", "text", "caption", "message_id", "action", "callback_query_id"}
        }
        for name in self.files:
            shown[name] = f"<{len(self.files[name])} bytes>"
        text = json.dumps(shown, ensure_ascii=False, default=str)
        if len(text) > 160:
            text = text[:157] + "..."
        via = " (webhook reply)" if self.via_webhook_reply else ""
        return f"#{self.index} {self.method}{via} {text} -> {state}{detail}"


@dataclass
class Delivery:
    """One POST of an update to the webhook, with how it ended."""

    update_id: int
    status: int | None
    """The webhook's HTTP status; None when no answer came (refused, timed out, closed)."""
    error: str | None
    """What getWebhookInfo reports for a failed attempt (None when the webhook took it)."""
    at: float
    """time.time() when the attempt ended."""
    reply: Call | None = None
    """The Bot API call the webhook answered with, if it did (a webhook reply)."""

    @property
    def ok(self) -> bool:
        return self.error is None

    def summary(self) -> str:
        outcome = "ok" if self.ok else f"ERR {self.error!r}"
        status = "-" if self.status is None else str(self.status)
        reply = f" reply={self.reply.method}" if self.reply is not None else ""
        return f"update {self.update_id}: {status} {outcome}{reply}"


@dataclass
class _Upload:
    data: bytes
    filename: str
    content_type: str | None


@dataclass
class _StoredFile:
    file_id: str
    file_unique_id: str
    data: bytes
    size: int
    path: str
    kind: str  # "photo" | "document" | "video" | "audio"
    file_name: str | None = None
    mime_type: str | None = None
    photo: list[dict[str, Any]] | None = None  # all sizes of the photo this size belongs to


class _Request:
    """Parameters of one API request, read the way telegram-bot-api reads them."""

    def __init__(self, args: dict[str, str], uploads: dict[str, _Upload]) -> None:
        self.args = args
        self.uploads = uploads

    def has(self, name: str) -> bool:
        return name in self.args

    def arg(self, name: str) -> str:
        return self.args.get(name, "")

    def int_arg(self, name: str, default: int = 0, lo: int = -(2**31), hi: int = 2**31 - 1) -> int:
        """Like Client::get_integer_arg: empty -> default, garbage -> 0, then clamped."""
        raw = self.arg(name)
        value = default if not raw else _to_integer(raw)
        return max(lo, min(hi, value))

    def bool_arg(self, name: str) -> bool:
        return self.arg(name).strip().lower() in {"true", "yes", "1"}

    def message_id(self, name: str = "message_id") -> int:
        value = _to_integer(self.arg(name)) if self.arg(name) else 0
        return max(value, 0)


def _to_integer(raw: str) -> int:
    """td::to_integer: optional sign and leading digits; anything else parses as 0."""
    match = re.match(r"\s*([+-]?)(\d+)", raw)
    if not match:
        return 0
    value = int(match.group(2))
    return -value if match.group(1) == "-" else value


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _json_field_error(name: str, value: Any, kind: type, type_name: str) -> str:
    """td::JsonObject's wording for a missing or mistyped required field ("" when fine)."""
    if value is None:
        return f'Can\'t find field "{name}"'
    wrong_bool = isinstance(value, bool) and kind is not bool
    if wrong_bool or not isinstance(value, kind):
        return f'Field "{name}" must be of type {type_name}'
    return ""


# --------------------------------------------------------------------------- entity parsing

_HTML_TAGS = frozenset(
    {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "s",
        "strike",
        "del",
        "u",
        "ins",
        "tg-spoiler",
        "tg-emoji",
        "span",
        "pre",
        "code",
        "blockquote",
    }
)
_HTML_ENTITY_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "u": "underline",
    "ins": "underline",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "code": "code",
    "pre": "pre",
}
_NAMED_HTML_ENTITIES = {b"lt": 0x3C, b"gt": 0x3E, b"amp": 0x26, b"quot": 0x22}


def _is_space(c: int) -> bool:
    return c in (0x20, 0x09, 0x0A, 0x0D, 0x0B, 0x0C, 0x00)


def _is_alnum(c: int) -> bool:
    return 0x30 <= c <= 0x39 or 0x41 <= c <= 0x5A or 0x61 <= c <= 0x7A


def _u16_step(c: int) -> int:
    """UTF-16 units contributed by a UTF-8 byte (counted on first bytes only)."""
    if (c & 0xC0) == 0x80:
        return 0
    return 2 if c >= 0xF0 else 1


def _decode_html_entity(b: bytes, i: int) -> tuple[int, int]:
    """Decode ``&...;`` at b[i]; returns (code point, index after ';') or (0, i)."""
    j = i + 1
    code = 0
    if b[j] == 0x23:  # '#'
        j += 1
        digits_start = j
        if b[j] in (0x78, 0x58):  # x / X
            j += 1
            digits_start = j
            while chr(b[j]) in "0123456789abcdefABCDEF" and b[j] != 0:
                j += 1
            if j == digits_start or j - digits_start > 7:
                return 0, i
            code = int(b[digits_start:j], 16)
        else:
            while 0x30 <= b[j] <= 0x39:
                j += 1
            if j == digits_start or j - digits_start > 8:
                return 0, i
            code = int(b[digits_start:j])
    else:
        name_start = j
        while 0x61 <= b[j] <= 0x7A or 0x41 <= b[j] <= 0x5A:
            j += 1
        code = _NAMED_HTML_ENTITIES.get(bytes(b[name_start:j]), 0)
    if b[j] != 0x3B or code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return 0, i
    return code, j + 1


def _parse_html(text: str) -> tuple[str, list[dict[str, Any]]]:
    """TDLib's parse_html: supported tags only, balanced, byte offsets in errors."""
    b = text.encode("utf-8") + b"\0"
    size = len(b) - 1
    out = bytearray()
    entities: list[dict[str, Any]] = []
    # (tag name, argument, utf16 offset, is_expandable, where its text starts in `out`)
    stack: list[tuple[str, str, int, bool, int]] = []
    u16 = 0
    i = 0
    while i < size:
        c = b[i]
        if c == 0x26:  # '&'
            code, nxt = _decode_html_entity(b, i)
            if code:
                out += chr(code).encode("utf-8")
                u16 += 2 if code > 0xFFFF else 1
                i = nxt
                continue
        if c != 0x3C:  # '<'
            # Plain text up to the next tag or entity, at once: it splits no character.
            end = min(k for k in (b.find(b"<", i + 1), b.find(b"&", i + 1), size) if k >= 0)
            out += b[i:end]
            u16 += _utf16_len(b[i:end].decode("utf-8"))
            i = end
            continue
        begin = i
        i += 1
        if b[i] != 0x2F:  # start tag
            while not _is_space(b[i]) and b[i] != 0x3E:
                i += 1
            if b[i] == 0:
                raise _ParseError(f"Unclosed start tag at byte offset {begin}")
            tag = b[begin + 1 : i].decode("utf-8", "replace").lower()
            if tag not in _HTML_TAGS:
                raise _ParseError(f'Unsupported start tag "{tag}" at byte offset {begin}')
            argument = ""
            expandable = False
            while b[i] != 0x3E:
                while b[i] != 0 and _is_space(b[i]):
                    i += 1
                if b[i] == 0x3E:
                    break
                attr_begin = i
                while not _is_space(b[i]) and b[i] not in (0x3D, 0x3E):
                    i += 1
                attr = b[attr_begin:i].decode("utf-8", "replace").lower()
                if not attr:
                    raise _ParseError(
                        f'Empty attribute name in the tag "{tag}" at byte offset {begin}'
                    )
                while b[i] != 0 and _is_space(b[i]):
                    i += 1
                if b[i] != 0x3D:
                    if tag == "blockquote" and attr == "expandable":
                        expandable = True
                        continue
                    raise _ParseError(
                        "Expected equal sign in declaration of an attribute of the tag "
                        f'"{tag}" at byte offset {begin}'
                    )
                i += 1
                while b[i] != 0 and _is_space(b[i]):
                    i += 1
                if b[i] == 0:
                    raise _ParseError(f'Unclosed start tag "{tag}" at byte offset {begin}')
                if b[i] not in (0x22, 0x27):
                    token_begin = i
                    while _is_alnum(b[i]) or b[i] in (0x2E, 0x2D):
                        i += 1
                    value = b[token_begin:i].decode("ascii").lower()
                    if not _is_space(b[i]) and b[i] != 0x3E:
                        raise _ParseError(
                            f"Unexpected end of name token at byte offset {token_begin}"
                        )
                else:
                    quote = b[i]
                    i += 1
                    raw_value = bytearray()
                    while b[i] != quote and b[i] != 0:
                        if b[i] == 0x26:
                            code, nxt = _decode_html_entity(b, i)
                            if code:
                                raw_value += chr(code).encode("utf-8")
                                i = nxt
                                continue
                        raw_value.append(b[i])
                        i += 1
                    if b[i] == quote:
                        i += 1
                    value = raw_value.decode("utf-8", "replace")
                if b[i] == 0:
                    raise _ParseError(f"Unclosed start tag at byte offset {begin}")
                if tag == "a" and attr == "href":
                    argument = value
                elif tag == "code" and attr == "class" and value.startswith("language-"):
                    argument = value[len("language-") :]
                elif tag == "span" and attr == "class" and value.startswith("tg-"):
                    argument = value[len("tg-") :]
                elif tag == "tg-emoji" and attr == "emoji-id":
                    argument = value
            if tag == "span" and argument != "spoiler":
                raise _ParseError(f'Tag "span" must have class "tg-spoiler" at byte offset {begin}')
            stack.append((tag, argument, u16, expandable, len(out)))
        else:  # end tag
            if not stack:
                raise _ParseError(f"Unexpected end tag at byte offset {begin}")
            while not _is_space(b[i]) and b[i] != 0x3E:
                i += 1
            end_name = b[begin + 2 : i].decode("utf-8", "replace").lower()
            while _is_space(b[i]) and b[i] != 0:
                i += 1
            if b[i] != 0x3E:
                raise _ParseError(f"Unclosed end tag at byte offset {begin}")
            tag, argument, offset, expandable, text_start = stack.pop()
            if end_name and end_name != tag:
                raise _ParseError(
                    f'Unmatched end tag at byte offset {begin}, expected "</{tag}>", '
                    f'found "</{end_name}>"'
                )
            length = u16 - offset
            if length > 0:
                entity = _html_entity(tag, argument, offset, length, expandable, out, text_start)
                if entity is not None:
                    if (
                        tag == "pre"
                        and entities
                        and entities[-1]["type"] == "code"
                        and entities[-1]["offset"] == offset
                        and entities[-1]["length"] == length
                        and "language" in entities[-1]
                    ):
                        entity["language"] = entities.pop()["language"]
                    entities.append(entity)
        i += 1
    if stack:
        raise _ParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    return out.decode("utf-8", "replace"), entities


def _html_entity(
    tag: str,
    argument: str,
    offset: int,
    length: int,
    expandable: bool,
    out: bytearray,
    text_start: int,
) -> dict[str, Any] | None:
    entity: dict[str, Any] = {"offset": offset, "length": length}
    if tag in _HTML_ENTITY_TYPES:
        entity["type"] = _HTML_ENTITY_TYPES[tag]
        if tag == "code" and argument:
            entity["language"] = argument
    elif tag == "blockquote":
        entity["type"] = "expandable_blockquote" if expandable else "blockquote"
    elif tag == "tg-emoji":
        if not re.fullmatch(r"\d{1,19}", argument):
            raise _ParseError("Invalid custom emoji identifier specified")
        entity.update(type="custom_emoji", custom_emoji_id=argument)
    elif tag == "a":
        url = argument or out[text_start:].decode("utf-8", "replace")
        url = _check_url(url)
        if url is None:
            return None  # TDLib silently drops links with a bad URL
        entity.update(type="text_link", url=url)
    else:  # pragma: no cover - every tag in _HTML_TAGS is handled above
        return None
    return entity


def _check_url(url: str) -> str | None:
    """A loose td::check_url: a scheme-less host gets http://, junk is refused."""
    url = url.strip()
    if not url or any(ch.isspace() for ch in url):
        return None
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", url):
        scheme = url.split(":", 1)[0].lower()
        if scheme in {"http", "https", "ftp"}:
            return (
                url
                if re.match(r"^[a-zA-Z]+://[^/\s]+\.[^/\s]+|^[a-zA-Z]+://localhost", url)
                else None
            )
        return url if scheme in {"tg", "ton", "tonsite"} else None
    if re.match(r"^[^/\s]+\.[a-zA-Z]{2,}", url):
        return "http://" + url
    return None


_MDV2_RESERVED = "_*[]()~`>#+-=|{}.!"
_MDV2_TYPE_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "code": "Code",
    "pre": "Pre",
    "pre_code": "PreCode",
    "text_link": "TextUrl",
    "custom_emoji": "CustomEmoji",
}


def _parse_markdown_v2(text: str) -> tuple[str, list[dict[str, Any]]]:
    """TDLib's parse_markdown_v2, including the famous reserved-character rule."""
    b = text.encode("utf-8") + b"\0\0\0"
    size = len(b) - 3
    out = bytearray()
    entities: list[dict[str, Any]] = []
    # (type, argument, utf16 offset, byte offset in the source, start in out)
    stack: list[list[Any]] = []
    quote: list[int] | None = None  # [utf16 start] of an open blockquote
    u16 = 0
    i = 0
    while i < size:
        c = b[i]
        if c == 0x5C and 0 < b[i + 1] <= 126:  # backslash escape
            i += 1
            u16 += 1
            out.append(b[i])
            i += 1
            continue
        at_line_start = i == 0 or b[i - 1] == 0x0A
        if c == 0x3E and at_line_start and not stack:  # '>' starts a quoted line
            if quote is None:
                quote = [u16]
            i += 1
            continue
        if c == 0x0A and quote is not None and b[i + 1] != 0x3E:
            entities.append({"offset": quote[0], "length": u16 - quote[0], "type": "blockquote"})
            quote = None
        reserved = _MDV2_RESERVED
        if stack and stack[-1][0] in ("code", "pre", "pre_code"):
            reserved = "`"
        if chr(c) not in reserved or c == 0:
            u16 += _u16_step(c)
            out.append(c)
            i += 1
            continue
        top_type = stack[-1][0] if stack else None
        is_end = False
        if top_type == "bold":
            is_end = c == 0x2A
        elif top_type == "italic":
            is_end = c == 0x5F and b[i + 1] != 0x5F
        elif top_type == "code":
            is_end = c == 0x60
        elif top_type in ("pre", "pre_code"):
            is_end = c == 0x60 and b[i + 1] == 0x60 and b[i + 2] == 0x60
        elif top_type in ("text_link", "custom_emoji"):
            is_end = c == 0x5D
        elif top_type == "underline":
            is_end = c == 0x5F and b[i + 1] == 0x5F
        elif top_type == "strikethrough":
            is_end = c == 0x7E
        elif top_type == "spoiler":
            is_end = c == 0x7C and b[i + 1] == 0x7C
        if not is_end:
            entity_byte_offset = i
            argument = ""
            if c == 0x5F:
                if b[i + 1] == 0x5F:
                    kind = "underline"
                    i += 1
                else:
                    kind = "italic"
            elif c == 0x2A:
                kind = "bold"
            elif c == 0x7E:
                kind = "strikethrough"
            elif c == 0x7C and b[i + 1] == 0x7C:
                kind = "spoiler"
                i += 1
            elif c == 0x5B:
                kind = "text_link"
            elif c == 0x60:
                if b[i + 1] == 0x60 and b[i + 2] == 0x60:
                    i += 3
                    kind = "pre"
                    lang_end = i
                    while not _is_space(b[lang_end]) and b[lang_end] != 0x60:
                        lang_end += 1
                    if i != lang_end and lang_end < size and b[lang_end] != 0x60:
                        kind = "pre_code"
                        argument = b[i:lang_end].decode("utf-8", "replace")
                        i = lang_end
                    if b[i] in (0x0A, 0x0D):
                        if b[i + 1] in (0x0A, 0x0D) and b[i] != b[i + 1]:
                            i += 2
                        else:
                            i += 1
                    i -= 1
                else:
                    kind = "code"
            elif c == 0x21 and b[i + 1] == 0x5B:
                kind = "custom_emoji"
                i += 1
            else:
                raise _ParseError(
                    f"Character '{chr(c)}' is reserved and must be escaped with the preceding '\\'"
                )
            stack.append([kind, argument, u16, entity_byte_offset, len(out)])
            i += 1
            continue
        kind, argument, offset, _byte_offset, out_start = stack.pop()
        skip = u16 == offset
        if kind in ("underline", "spoiler"):
            i += 1
        elif kind in ("pre", "pre_code"):
            i += 2
        elif kind in ("text_link", "custom_emoji"):
            if b[i + 1] != 0x28:
                if kind == "custom_emoji":
                    raise _ParseError("Custom emoji entity must contain a tg://emoji URL")
                url = out[out_start:].decode("utf-8", "replace")
            else:
                i += 2
                url_begin = i
                url_bytes = bytearray()
                while i < size and b[i] != 0x29:
                    if b[i] == 0x5C and 0 < b[i + 1] <= 126:
                        url_bytes.append(b[i + 1])
                        i += 2
                        continue
                    url_bytes.append(b[i])
                    i += 1
                if b[i] != 0x29:
                    raise _ParseError(f"Can't find end of a URL at byte offset {url_begin}")
                url = url_bytes.decode("utf-8", "replace")
            if kind == "custom_emoji":
                match = re.fullmatch(r"tg://emoji\?id=(\d{1,19})", url)
                if not match:
                    raise _ParseError("Custom emoji URL must have an emoji identifier")
                argument = match.group(1)
            else:
                checked = _check_url(url)
                if checked is None:
                    skip = True
                argument = checked or ""
        if not skip:
            entity: dict[str, Any] = {"offset": offset, "length": u16 - offset}
            if kind == "pre_code":
                entity.update(type="pre", language=argument)
            elif kind == "text_link":
                entity.update(type="text_link", url=argument)
            elif kind == "custom_emoji":
                entity.update(type="custom_emoji", custom_emoji_id=argument)
            else:
                entity["type"] = kind
            entities.append(entity)
        i += 1
    if stack:
        kind, _argument, _offset, byte_offset, _out_start = stack[-1]
        raise _ParseError(
            f"Can't find end of {_MDV2_TYPE_NAMES[kind]} entity at byte offset {byte_offset}"
        )
    if quote is not None:
        entities.append({"offset": quote[0], "length": u16 - quote[0], "type": "blockquote"})
    return out.decode("utf-8", "replace"), entities


def _parse_markdown_legacy(text: str) -> tuple[str, list[dict[str, Any]]]:
    """TDLib's parse_markdown (parse_mode "Markdown"): *bold* _italic_ `code` ```pre``` [a](url)."""
    b = text.encode("utf-8") + b"\0\0\0"
    size = len(b) - 3
    out = bytearray()
    entities: list[dict[str, Any]] = []
    u16 = 0
    i = 0
    while i < size:
        c = b[i]
        if c == 0x5C and b[i + 1] in (0x5F, 0x2A, 0x60, 0x5B):
            i += 1
            out.append(b[i])
            u16 += 1
            i += 1
            continue
        if c not in (0x5F, 0x2A, 0x60, 0x5B):
            u16 += _u16_step(c)
            out.append(c)
            i += 1
            continue
        begin = i
        end_char = 0x5D if c == 0x5B else c
        is_pre = False
        language = ""
        i += 1
        if c == 0x60 and b[i] == 0x60 and b[i + 1] == 0x60:
            i += 2
            is_pre = True
            lang_end = i
            while not _is_space(b[lang_end]) and b[lang_end] != 0x60:
                lang_end += 1
            if i != lang_end and lang_end < size and b[lang_end] != 0x60:
                language = b[i:lang_end].decode("utf-8", "replace")
                i = lang_end
            if b[i] in (0x0A, 0x0D):
                if b[i + 1] in (0x0A, 0x0D) and b[i] != b[i + 1]:
                    i += 2
                else:
                    i += 1
        offset = u16
        out_start = len(out)
        while i < size and (
            b[i] != end_char or (is_pre and not (b[i + 1] == 0x60 and b[i + 2] == 0x60))
        ):
            u16 += _u16_step(b[i])
            out.append(b[i])
            i += 1
        if i >= size:
            raise _ParseError(f"Can't find end of the entity starting at byte offset {begin}")
        entity: dict[str, Any] | None = None
        if u16 != offset:
            if c == 0x5F:
                entity = {"type": "italic"}
            elif c == 0x2A:
                entity = {"type": "bold"}
            elif c == 0x60 and is_pre:
                entity = {"type": "pre"}
                if language:
                    entity["language"] = language
            elif c == 0x60:
                entity = {"type": "code"}
        if c == 0x5B:
            url = ""
            if b[i + 1] == 0x28:
                i += 2
                url_bytes = bytearray()
                while i < size and b[i] != 0x29:
                    url_bytes.append(b[i])
                    i += 1
                url = url_bytes.decode("utf-8", "replace")
            else:
                url = out[out_start:].decode("utf-8", "replace")
            checked = _check_url(url) if u16 != offset else None
            if checked is not None:
                entity = {"type": "text_link", "url": checked}
        if entity is not None:
            entities.append({"offset": offset, "length": u16 - offset, **entity})
        if is_pre:
            i += 2
        i += 1
    return out.decode("utf-8", "replace"), entities


_ENTITY_TYPES = frozenset(
    {
        "bold",
        "italic",
        "underline",
        "strikethrough",
        "spoiler",
        "code",
        "pre",
        "text_link",
        "text_mention",
        "custom_emoji",
        "blockquote",
        "expandable_blockquote",
    }
)
_AUTO_ENTITY_TYPES = frozenset(
    {
        "mention",
        "hashtag",
        "cashtag",
        "bot_command",
        "url",
        "email",
        "phone_number",
        "bank_card_number",
    }
)


def _explicit_entities(raw: str) -> list[dict[str, Any]]:
    """Client::get_formatted_text for a JSON ``entities`` array (ignored when invalid JSON)."""
    if not raw:
        return []
    try:
        value = json.loads(raw)
    except ValueError:
        return []
    return _entities_from_json(value)


def _entities_from_json(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        return []
    result: list[dict[str, Any]] = []
    for item in value:
        if not isinstance(item, dict):
            raise _bad("Can't parse MessageEntity: expected an Object")
        for name in ("offset", "length"):
            problem = _json_field_error(name, item.get(name), int, "Number")
            if problem:
                raise _bad(f"Can't parse MessageEntity: {problem}")
        kind = item.get("type")
        problem = _json_field_error("type", kind, str, "String")
        if problem:
            raise _bad(f"Can't parse MessageEntity: {problem}")
        if kind in _AUTO_ENTITY_TYPES:
            continue
        if kind not in _ENTITY_TYPES:
            raise _bad("Can't parse MessageEntity: Unsupported type specified")
        entity = {"offset": item["offset"], "length": item["length"], "type": kind}
        for extra in ("url", "language", "custom_emoji_id", "user"):
            if extra in item:
                entity[extra] = item[extra]
        result.append(entity)
    return result


def _format_text(text: str, parse_mode: str, entities_raw: str) -> tuple[str, list[dict[str, Any]]]:
    """Client::get_formatted_text + TDLib's trimming: returns Telegram's (text, entities)."""
    if len(text.encode("utf-8")) > MAX_RAW_TEXT_BYTES:
        raise _bad("Text is too long")
    mode = parse_mode.lower()
    if text and mode and mode != "none":
        parsers: dict[str, Callable[[str], tuple[str, list[dict[str, Any]]]]] = {
            "html": _parse_html,
            "markdownv2": _parse_markdown_v2,
            "markdown": _parse_markdown_legacy,
        }
        parser = parsers.get(mode)
        if parser is None:
            raise _bad("Unsupported parse_mode")
        try:
            plain, entities = parser(text)
        except _ParseError as exc:
            raise _ApiError(400, f"Bad Request: can't parse entities: {exc}") from None
    else:
        plain, entities = text, _explicit_entities(entities_raw)
    return _trim(plain, entities)


def _trim(text: str, entities: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """TDLib strips leading/trailing whitespace of sent texts and clips entities to match."""
    stripped = text.strip()
    if not stripped:
        return "", []
    lead = _utf16_len(text[: len(text) - len(text.lstrip())])
    total = _utf16_len(stripped)
    result: list[dict[str, Any]] = []
    for entity in entities:
        start = max(entity["offset"] - lead, 0)
        end = min(entity["offset"] + entity["length"] - lead, total)
        if end > start:
            result.append({**entity, "offset": start, "length": end - start})
    result.sort(key=lambda e: (e["offset"], -e["length"]))
    return stripped, result


_COMMAND_RE = re.compile(r"(?<![\w/])/[a-zA-Z0-9_]{1,64}(?:@[a-zA-Z0-9_]{3,32})?(?![\w/])")


def _command_entities(text: str) -> list[dict[str, Any]]:
    """bot_command entities as Telegram marks them in incoming texts and captions."""
    entities = []
    for match in _COMMAND_RE.finditer(text):
        entities.append(
            {
                "offset": _utf16_len(text[: match.start()]),
                "length": _utf16_len(match.group(0)),
                "type": "bot_command",
            }
        )
    return entities


# --------------------------------------------------------------------------- reply markup


def _parse_reply_markup(raw: str) -> tuple[str | None, dict[str, Any] | None]:
    """Client::get_reply_markup: returns (kind, normalized markup) or raises 400."""
    if not raw:
        return None, None
    try:
        value = json.loads(raw)
    except ValueError:
        raise _bad("Can't parse reply keyboard markup JSON object") from None
    if not isinstance(value, dict):
        raise _bad("Object expected as reply markup")
    rows: list[list[dict[str, Any]]] = []
    keyboard = value.get("keyboard")
    if keyboard is not None:
        if not isinstance(keyboard, list):
            raise _bad('Field "keyboard" must be of type Array')
        for row in keyboard:
            if not isinstance(row, list):
                raise _bad('Field "keyboard" must be an Array of Arrays')
            rows.append([_keyboard_button(button) for button in row])
    inline_rows: list[list[dict[str, Any]]] = []
    inline = value.get("inline_keyboard")
    if inline is not None:
        if not isinstance(inline, list):
            raise _bad('Field "inline_keyboard" must be of type Array')
        for row in inline:
            if not isinstance(row, list):
                raise _bad(
                    'Field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays'
                )
            inline_rows.append([_inline_button(button) for button in row])
    if rows:
        markup: dict[str, Any] = {"keyboard": rows}
        for key in (
            "resize_keyboard",
            "one_time_keyboard",
            "is_persistent",
            "selective",
            "input_field_placeholder",
        ):
            if key in value:
                markup[key] = value[key]
        return "keyboard", markup
    if inline_rows:
        return "inline", {"inline_keyboard": inline_rows}
    if value.get("remove_keyboard") or value.get("hide_keyboard"):
        return "remove", {"remove_keyboard": True}
    if value.get("force_reply") or value.get("force_reply_keyboard"):
        return "force_reply", {"force_reply": True}
    return None, None


def _keyboard_button(button: Any) -> dict[str, Any]:
    if isinstance(button, str):
        return {"text": button}
    if not isinstance(button, dict):
        raise _bad("Can't parse keyboard button: KeyboardButton must be a String or an Object")
    problem = _json_field_error("text", button.get("text"), str, "String")
    if problem:
        raise _bad(f"Can't parse keyboard button: {problem}")
    return dict(button)


_INLINE_ACTIONS = (
    "url",
    "callback_data",
    "callback_game",
    "pay",
    "switch_inline_query",
    "switch_inline_query_chosen_chat",
    "switch_inline_query_current_chat",
    "login_url",
    "web_app",
    "copy_text",
)


def _inline_button(button: Any) -> dict[str, Any]:
    """Client::get_inline_keyboard_button: exactly the first usable action is kept."""
    prefix = "Can't parse inline keyboard button: "
    if not isinstance(button, dict):
        raise _bad(prefix + "InlineKeyboardButton must be an Object")
    text = button.get("text")
    problem = _json_field_error("text", text, str, "String")
    if problem:
        raise _bad(prefix + problem)
    for action in _INLINE_ACTIONS:
        if action not in button:
            continue
        value = button[action]
        if action in ("url", "callback_data"):
            if isinstance(value, int | float) and not isinstance(value, bool):
                value = str(value)
            if not isinstance(value, str):
                raise _bad(prefix + f'Field "{action}" must be of type String')
            if not value:
                continue  # an empty url/callback_data counts as absent
        if action == "callback_data" and len(value.encode("utf-8")) > MAX_CALLBACK_DATA_BYTES:
            raise _bad("BUTTON_DATA_INVALID")
        if action == "url" and _check_url(value) is None:
            raise _bad(f"Inline keyboard button URL '{value}' is invalid: Wrong HTTP URL")
        return {"text": text, action: value}
    raise _bad(prefix + "Text buttons are unallowed in the inline keyboard")


# --------------------------------------------------------------------------- webhooks


@dataclass
class _Backoff:
    """WebhookActor's per-update retry state."""

    fails: int = 0
    delay: int = 1
    wakeup_at: float = 0.0


@dataclass(eq=False)
class _Webhook:
    """One webhook as set by setWebhook, with its delivery state (a WebhookActor)."""

    url: str
    """As given to setWebhook (what getWebhookInfo shows)."""
    target: str | None
    """Where the fake POSTs; None for a host that isn't this machine (never called)."""
    secret: str
    max_connections: int
    ip_address: str
    ip_param: str
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False
    last_error_date: int = 0
    last_error_message: str = ""
    last_success: float = float("-inf")
    inflight: dict[int, asyncio.Task[None]] = field(default_factory=dict)
    backoff: dict[int, _Backoff] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None


def _parse_webhook_url(raw: str) -> urllib.parse.SplitResult | None:
    """A loose td::parse_url: http or https (the default), a sane host, a valid port."""
    text = raw.strip()
    if not text or any(ch.isspace() for ch in text):
        return None
    if "://" not in text:
        text = "https://" + text
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or port == 0:
        return None
    host = parts.hostname or ""
    if not host:
        return None
    if "[" in parts.netloc:  # an IPv6 literal
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
    elif not all(ch.isalnum() or ch in "-._~%" or ord(ch) > 127 for ch in host):
        return None
    return parts


def _loopback_ip(host: str) -> str | None:
    """The loopback address a webhook host stands for, or None for any other host."""
    if host.lower() in ("localhost", "localhost."):
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    return str(address) if address.is_loopback else None


def _queue_key(update: dict[str, Any]) -> tuple[str, int]:
    """telegram-bot-api's webhook queue: one update at a time per chat (per user for
    callback queries); updates of different queues are sent in parallel."""
    for kind, payload in update.items():
        if kind == "update_id" or not isinstance(payload, dict):
            continue
        chat = payload.get("chat")
        if isinstance(chat, dict) and isinstance(chat.get("id"), int):
            return ("chat", chat["id"])
        sender = payload.get("from")
        if isinstance(sender, dict) and isinstance(sender.get("id"), int):
            return (kind, sender["id"])
    return ("update", int(update["update_id"]))


def _connection_error_text(exc: OSError) -> str:
    """How a failed connection reads in getWebhookInfo ("Connection refused", ...)."""
    code = exc.errno
    if code is None and isinstance(exc.__cause__, OSError):
        code = exc.__cause__.errno
    if code == errno.ECONNREFUSED or isinstance(exc, ConnectionRefusedError):
        return "Connection refused"
    if code:
        return os.strerror(code)
    return str(exc) or type(exc).__name__


def _retry_after(response: aiohttp.ClientResponse) -> int:
    raw = response.headers.get("Retry-After", "")
    return max(0, min(WEBHOOK_MAX_RETRY_AFTER, _to_integer(raw))) if raw else 0


# --------------------------------------------------------------------------- the server


class FakeTelegram:
    """An in-process Bot API server for one bot token; see the module docstring."""

    def __init__(
        self,
        token: str = "123456:TEST-token",
        *,
        bot_id: int = 123456,
        bot_username: str = "facecheck_test_bot",
        allow_http_webhook: bool = False,
        local_files: Path | None = None,
    ) -> None:
        self.token = token
        self.allow_http_webhook = allow_http_webhook
        """Treat loopback webhook hosts like the official server's ``--local`` mode does:
        http:// or https://, any port. Without it loopback webhooks are refused, as by
        api.telegram.org ("IP address 127.0.0.1 is reserved"; HTTP is always refused)."""
        self.local_files = local_files
        """The official server's ``--local`` mode for files: ``getFile`` puts the file in
        this folder and answers with its absolute path, which the bot (``is_local``)
        reads from disk; no 20 MB download limit."""
        self.bot_id = bot_id
        self.bot_username = bot_username
        self.base_url = ""
        self.calls: list[Call] = []
        self.downloads: list[str] = []
        """file_path of every successful file download, in order."""
        self.dropped_updates: list[dict[str, Any]] = []
        """Updates Telegram would not deliver because of the bot's allowed_updates."""
        self.unknown_methods: list[str] = []
        """Method names answered with 404 (typos, or methods this fake doesn't implement)."""
        self.internal_errors: list[str] = []
        """Bugs in the fake itself (answered with 500); tests may assert it stays empty."""
        self.commands: dict[tuple[str, str], list[dict[str, str]]] = {}
        """setMyCommands state by (scope JSON, language_code)."""
        self.webhook_url = ""
        """The webhook URL as set (empty when none), like getWebhookInfo's ``url``."""
        self.webhook_deliveries: list[Delivery] = []
        """Every POST of an update to a webhook, in the order they ended."""
        self.webhook_timeout = WEBHOOK_TIMEOUT
        """Seconds a webhook request may take before it counts as "Read timeout expired"."""

        self._runner: web.AppRunner | None = None
        self._closing = False
        self._users: dict[int, dict[str, Any]] = {}
        self._blocked: set[int] = set()
        self._messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._last_message_id: dict[int, int] = {}
        self._files: dict[str, _StoredFile] = {}
        self._paths: dict[str, str] = {}
        self._file_counter = 0
        self._updates: list[dict[str, Any]] = []
        self._next_update_id = 100_000_001
        self._allowed_updates: frozenset[str] = DEFAULT_ALLOWED_UPDATES
        self._poll: asyncio.Future[str] | None = None
        self._callbacks: dict[str, tuple[int, int]] = {}
        self._callback_counter = 0
        self._failures: dict[str, list[_ApiError]] = {}
        self._media_group_counter = 0
        self._changed = asyncio.Event()
        self._webhook: _Webhook | None = None
        self._http: aiohttp.ClientSession | None = None
        self._delivery_tasks: set[asyncio.Task[None]] = set()
        self._inflight_updates: set[int] = set()
        self.call_listeners: list[Callable[[Call], None]] = []
        """Called with each Bot API call as it is answered (a soak times replies so)."""
        self._next_set_webhook_at = 0.0
        self._methods: dict[str, Callable[[_Request], Any]] = {
            "getme": self._get_me,
            "logout": self._true,
            "close": self._true,
            "deletewebhook": self._delete_webhook,
            "setwebhook": self._set_webhook,
            "getwebhookinfo": self._get_webhook_info,
            "getupdates": self._get_updates,
            "setmycommands": self._set_my_commands,
            "getmycommands": self._get_my_commands,
            "deletemycommands": self._delete_my_commands,
            "getfile": self._get_file,
            "sendmessage": self._send_message,
            "sendphoto": self._send_photo,
            "senddocument": self._send_document,
            "sendmediagroup": self._send_media_group,
            "sendchataction": self._send_chat_action,
            "editmessagetext": self._edit_message_text,
            "editmessagecaption": self._edit_message_caption,
            "editmessagereplymarkup": self._edit_message_reply_markup,
            "deletemessage": self._delete_message,
            "answercallbackquery": self._answer_callback_query,
        }

    # ------------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on host:port (0 picks a free port) and set ``base_url``."""
        app = web.Application(client_max_size=MAX_UPLOAD_SIZE + 1024 * 1024)
        app.router.add_route("*", r"/bot{token:[^/]*}/{method:[^/]+}", self._handle_api)
        app.router.add_get(r"/file/bot{token:[^/]*}/{path:.+}", self._handle_file)
        app.router.add_route("*", r"/{tail:.*}", self._handle_not_found)
        # handler_cancellation: a poller that hangs up stops holding the long-poll slot
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_port = self._runner.addresses[0][1]
        self.base_url = f"http://{host}:{bound_port}"
        self._closing = False
        if self._webhook is not None:
            self._start_delivery(self._webhook)

    async def stop(self) -> None:
        """Release a pending long poll (as an empty answer), stop webhook deliveries
        (requests in flight are abandoned, their updates stay pending) and shut down."""
        self._closing = True
        if self._poll is not None and not self._poll.done():
            self._poll.set_result("closing")
        await self._stop_deliveries()
        if self._runner is not None:
            try:
                await self._runner.cleanup()
            except Exception:  # stopping must never fail a test
                log.exception("FakeTelegram: error while stopping")
            self._runner = None

    async def __aenter__(self) -> FakeTelegram:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ test-side helpers

    def store_file(
        self, data: bytes, *, file_size: int | None = None, kind: str = "document"
    ) -> dict[str, Any]:
        """Store a file as if someone had uploaded it; ``file_size`` fakes a bigger file.

        Returns ``{"file_id", "file_unique_id", "file_size"}``. getFile judges the reported
        size (so 25 MB is refused without allocating it); downloads serve ``data``. The
        ``kind`` matters like the type baked into real file ids: a document id can't be
        sent as a photo.
        """
        stored = self._store(data, kind=kind, size=file_size)
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.size,
        }

    def photo_sizes(self, data: bytes, *, order: str = "ascending") -> list[dict[str, Any]]:
        """PhotoSizes as Telegram makes them for a sent photo: JPEG copies in 90/320/800/1280 boxes.

        Like Telegram (and the clients that re-encode before upload), EXIF orientation is
        applied and metadata is dropped. A box larger than the picture is filled by the
        picture at its own size, once, so the largest size keeps the original resolution
        up to 1280 px. ``order="shuffled"`` returns a deterministic non-ascending order so
        a test proves the bot picks the largest size by size, not by position.
        """
        if order not in ("ascending", "shuffled"):
            raise ValueError(f"order must be 'ascending' or 'shuffled', not {order!r}")
        sizes = self._make_photo(data)
        if isinstance(sizes, str):
            raise ValueError(f"photo_sizes: Telegram would refuse this photo: {sizes}")
        return _shuffle(sizes) if order == "shuffled" else sizes

    def user_message(
        self,
        user_id: int,
        *,
        text: str | None = None,
        photo: bytes | None = None,
        document: bytes | None = None,
        file_name: str = "photo.jpg",
        mime_type: str | None = "image/jpeg",
        caption: str | None = None,
        reply_to: dict[str, Any] | None = None,
        media_group_id: str | None = None,
        language_code: str | None = "en",
        first_name: str = "Test",
        photo_order: str = "ascending",
        document_size: int | None = None,
    ) -> dict[str, Any]:
        """A user writes to the bot (private chat): pushes the Update, returns the Message.

        Like Telegram, commands (``/start``, ``/check@bot``) in the text or caption get
        ``bot_command`` entities; other auto-detected entities (urls, mentions) are not made.
        A ``reply_to`` message must exist in the chat; ``document_size`` fakes a bigger file.
        """
        if sum(part is not None for part in (text, photo, document)) != 1:
            raise ValueError("user_message needs exactly one of text, photo or document")
        if text is not None and caption is not None:
            raise ValueError("a text message has no caption")
        if text == "":
            raise ValueError("Telegram clients can't send an empty text")
        replied: dict[str, Any] | None = None
        if reply_to is not None:
            key = (user_id, int(reply_to["message_id"]))
            if reply_to.get("chat", {}).get("id", user_id) != user_id or key not in self._messages:
                raise ValueError(f"reply_to: no message {key[1]} in chat {user_id}")
            replied = self._reply_snapshot(self._messages[key])
        content: dict[str, Any] = {}
        if text is not None:
            content["text"] = text
            if entities := _command_entities(text):
                content["entities"] = entities
        elif photo is not None:
            content["photo"] = self.photo_sizes(photo, order=photo_order)
        elif document is not None:
            content["document"] = self._user_document(
                document, file_name=file_name, mime_type=mime_type, size=document_size
            )
        if caption:
            content["caption"] = caption
            if entities := _command_entities(caption):
                content["caption_entities"] = entities
        if media_group_id is not None:
            content["media_group_id"] = media_group_id
        if replied is not None:
            content["reply_to_message"] = replied
        user = self._register_user(user_id, first_name=first_name, language_code=language_code)
        message: dict[str, Any] = {
            "message_id": self._next_message_id(user_id),
            "from": dict(user),
            "chat": self._chat(user_id),
            "date": int(time.time()),
            **content,
        }
        self._messages[(user_id, message["message_id"])] = message
        self._push("message", copy.deepcopy(message))
        return copy.deepcopy(message)

    def press_button(
        self,
        user_id: int,
        message: dict[str, Any],
        data: str,
        *,
        language_code: str | None = "en",
    ) -> str:
        """The user taps an inline button with this callback_data on a bot message.

        Refuses (AssertionError) to press a button that the message, as it currently is
        on the fake server, doesn't show: a user can only tap what the bot rendered.
        """
        chat_id = int(message["chat"]["id"])
        message_id = int(message["message_id"])
        if chat_id != user_id:
            raise AssertionError(f"user {user_id} can't press buttons in chat {chat_id}")
        current = self._messages.get((chat_id, message_id))
        if current is None:
            raise AssertionError(f"message {message_id} in chat {chat_id} doesn't exist (deleted?)")
        if current.get("from", {}).get("id") != self.bot_id:
            raise AssertionError("only bot messages carry inline keyboards")
        buttons = [
            button
            for row in current.get("reply_markup", {}).get("inline_keyboard", [])
            for button in row
        ]
        if not any(button.get("callback_data") == data for button in buttons):
            shown = [button.get("callback_data") for button in buttons]
            raise AssertionError(
                f"message {message_id} has no button with callback_data={data!r}; it shows {shown}"
            )
        user = dict(self._users.get(user_id) or self._register_user(user_id))
        if language_code is None:
            user.pop("language_code", None)
        else:
            user["language_code"] = language_code
        self._callback_counter += 1
        query_id = str(4_611_686_018_427_387_904 + user_id * 1000 + self._callback_counter)
        self._callbacks[query_id] = (chat_id, message_id)
        digest = hashlib.sha256(f"{self.bot_id}:{chat_id}".encode()).hexdigest()
        query = {
            "id": query_id,
            "from": user,
            "message": copy.deepcopy(current),
            "chat_instance": str(-(int(digest[:15], 16))),
            "data": data,
        }
        self._push("callback_query", query)
        return query_id

    def set_blocked(self, user_id: int, blocked: bool = True) -> None:
        """The user blocks (or unblocks) the bot: sends then fail with 403 like Telegram."""
        if blocked:
            self._blocked.add(user_id)
        else:
            self._blocked.discard(user_id)

    def message(self, chat_id: int, message_id: int) -> dict[str, Any] | None:
        """The current state of a stored message (after edits), or None if deleted/unknown."""
        found = self._messages.get((chat_id, message_id))
        return copy.deepcopy(found) if found is not None else None

    def bot_messages(self, chat_id: int) -> list[dict[str, Any]]:
        """The bot's messages still present in the chat, oldest first, as they look now."""
        return [
            copy.deepcopy(msg)
            for (cid, _mid), msg in sorted(self._messages.items())
            if cid == chat_id and msg["from"]["id"] == self.bot_id
        ]

    def file_bytes(self, file_id: str) -> bytes:
        """Bytes of any stored file (e.g. the largest PhotoSize of a photo the bot sent)."""
        return self._files[file_id].data

    @property
    def pending_updates(self) -> int:
        """Updates not yet confirmed (by a getUpdates offset or a webhook's 2xx answer)."""
        return len(self._updates)

    @property
    def last_update_id(self) -> int | None:
        """update_id of the most recently queued update (None before the first one)."""
        last = self._next_update_id - 1
        return last if last >= 100_000_001 else None

    def fail_next(
        self,
        method: str,
        *,
        error_code: int = 400,
        description: str = "Bad Request: ...",
        retry_after: int | None = None,
    ) -> None:
        """Make the next call of ``method`` fail; with retry_after it is a 429 flood wait.

        Several calls queue up failures for as many consecutive calls.
        """
        if retry_after is not None:
            if error_code == 400:
                error_code = 429
            if description == "Bad Request: ...":
                description = f"Too Many Requests: retry after {retry_after}"
        self._failures.setdefault(method.lower(), []).append(
            _ApiError(error_code, description, retry_after=retry_after)
        )

    def sent(self, chat_id: int, method: str | set[str] | None = None) -> list[Call]:
        """Calls addressed to a chat (all of them, failed ones included), optionally by method."""
        methods = _method_set(method)
        return [
            call
            for call in self.calls
            if call.chat_id == chat_id and (methods is None or call.method in methods)
        ]

    async def wait_for(
        self,
        method: str | set[str],
        *,
        chat_id: int | None = None,
        predicate: Callable[[Call], bool] | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109 - part of the documented test API
        after: int = 0,
    ) -> Call:
        """The first answered call (index >= after) matching; AssertionError on timeout.

        Failed calls match too (check ``call.ok``), so a refused send shows up at once
        instead of as a timeout. Exceptions raised by ``predicate`` propagate.
        """
        methods = _method_set(method)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for call in self.calls[after:]:
                if not call.done or (methods is not None and call.method not in methods):
                    continue
                if chat_id is not None and call.chat_id != chat_id:
                    continue
                if predicate is not None and not predicate(call):
                    continue
                return call
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(
                    f"no {sorted(methods or [])} call"
                    f"{f' to chat {chat_id}' if chat_id is not None else ''}"
                    f"{' matching the predicate' if predicate else ''} from index {after} "
                    f"within {timeout:g}s\n{self.describe()}"
                )
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                pass

    async def wait_for_delivery(
        self,
        update_id: int,
        timeout: float = 10.0,  # noqa: ASYNC109 - part of the documented test API
        *,
        ok: bool | None = True,
        after: int = 0,
    ) -> Delivery:
        """The first webhook delivery of ``update_id`` (from ``webhook_deliveries[after:]``)
        that the webhook accepted; ``ok=False`` waits for a failed attempt instead, ``None``
        for any. AssertionError on timeout, listing the attempts made.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for delivery in self.webhook_deliveries[after:]:
                if delivery.update_id == update_id and (ok is None or delivery.ok == ok):
                    return delivery
            remaining = deadline - loop.time()
            if remaining <= 0:
                wanted = {True: "accepted ", False: "failed ", None: ""}[ok]
                raise AssertionError(
                    f"no {wanted}webhook delivery of update {update_id} from index {after} "
                    f"within {timeout:g}s\n{self.describe()}"
                )
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                pass

    async def wait_for_poll(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until a getUpdates long poll is parked on the server (to test wake-ups)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._poll is None or self._poll.done():
            if loop.time() > deadline:
                raise AssertionError(
                    f"no getUpdates long poll within {timeout:g}s\n{self.describe()}"
                )
            await asyncio.sleep(0.01)

    def describe(self, last: int = 20) -> str:
        """Recent calls and anomalies, for assertion messages."""
        lines = ["recent calls:"]
        interesting = [c for c in self.calls if c.method != "getupdates" or c.error or c.result]
        polls = len(self.calls) - len(interesting)
        lines += [f"  {call.summary()}" for call in interesting[-last:]]
        if not interesting:
            lines.append("  (none)")
        lines.append(f"  (+{polls} empty getUpdates)")
        if self.dropped_updates:
            lines.append(f"dropped by allowed_updates: {self.dropped_updates[-5:]}")
        if self.unknown_methods:
            lines.append(f"unknown methods: {self.unknown_methods}")
        hook = self._webhook
        if hook is not None:
            lines.append(
                f"webhook: {hook.url} (pending {len(self._updates)}, in flight "
                f"{len(hook.inflight)}, last error {hook.last_error_message or None!r}"
                f"{'' if hook.target else ', not on this machine: never called'})"
            )
        if self.webhook_deliveries:
            lines.append("recent webhook deliveries:")
            lines += [f"  {d.summary()}" for d in self.webhook_deliveries[-last:]]
        if self.internal_errors:
            lines.append(f"FAKE INTERNAL ERRORS: {self.internal_errors}")
        return "\n".join(lines)

    # ------------------------------------------------------------------ HTTP layer

    async def _handle_not_found(self, request: web.Request) -> web.Response:
        return _json_response(_ApiError(404, "Not Found").payload(), 404)

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return _json_response(_ApiError(401, "Unauthorized").payload(), 401)
        path = request.match_info["path"]
        file_id = self._paths.get(path)
        if file_id is None:
            return _json_response(_ApiError(404, "Not Found").payload(), 404)
        self.downloads.append(path)
        stored = self._files[file_id]
        return web.Response(
            body=stored.data, content_type=stored.mime_type or "application/octet-stream"
        )

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"].lower()
        call = Call(index=len(self.calls), method=method, params={}, files={})
        self.calls.append(call)

        async def prepare() -> _Request:
            req = await self._read_request(request, call)
            if request.match_info["token"] != self.token:
                raise _ApiError(401, "Unauthorized")
            return req

        status, body = await self._execute(call, prepare, request.match_info["method"])
        headers = {}
        if status == 429 and "parameters" in body:
            headers["Retry-After"] = str(body["parameters"]["retry_after"])
        return _json_response(body, status, headers)

    async def _execute(
        self, call: Call, prepare: Callable[[], Awaitable[_Request]], raw_method: str
    ) -> tuple[int, dict[str, Any]]:
        """Run one Bot API call (an HTTP request or a webhook reply); fills in ``call``."""
        status = 200
        body: dict[str, Any]
        try:
            try:
                req = await prepare()
                handler = self._methods.get(call.method)
                if handler is None:
                    self.unknown_methods.append(raw_method)
                    raise _ApiError(404, "Not Found")
                if queued := self._failures.get(call.method):
                    raise queued.pop(0)
                result = handler(req)
                if inspect.isawaitable(result):
                    result = await result
                description = None
                if isinstance(result, _WithDescription):
                    result, description = result.value, result.description
                call.result = result
                body = {"ok": True, "result": result}
                if description:
                    body["description"] = description
            except _ApiError as exc:
                status = exc.code
                body = exc.payload()
                call.error = body
            except asyncio.CancelledError:
                call.error = {"ok": False, "error_code": 0, "description": "client went away"}
                raise
            except Exception as exc:  # the fake must answer, never crash the test
                log.exception("FakeTelegram: internal error in %s", call.method)
                self.internal_errors.append(f"{call.method}: {type(exc).__name__}: {exc}")
                status = 500
                body = _ApiError(500, f"Internal Server Error: fake: {exc}").payload()
                call.error = body
        finally:
            call.done = True
            self._notify()
            for listener in self.call_listeners:
                listener(call)
        return status, body

    async def _read_request(self, request: web.Request, call: Call) -> _Request:
        """Query string + urlencoded/multipart/JSON body, like telegram-bot-api's HttpQuery."""
        uploads: dict[str, _Upload] = {}
        content_type = request.content_type
        try:
            args = _parse_urlencoded(request.rel_url.raw_query_string)
            if content_type == "multipart/form-data":
                await _read_multipart(await request.multipart(), args, uploads)
            elif content_type == "application/x-www-form-urlencoded":
                args.update(_parse_urlencoded((await request.read()).decode("latin-1")))
            elif content_type == "application/json":
                args.update(_json_args(await request.read()))
        except web.HTTPRequestEntityTooLarge:
            raise _ApiError(413, "Request Entity Too Large") from None
        except UnicodeDecodeError:
            raise _bad("Strings must be encoded in UTF-8") from None
        call.raw = dict(args)
        call.params = _decode_params(args)
        call.files, call.filenames = _resolve_uploads(args, uploads)
        return _Request(args, uploads)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # ------------------------------------------------------------------ webhook delivery

    def _start_delivery(self, hook: _Webhook) -> None:
        if hook.target is None or hook.task is not None or hook.closed or self._runner is None:
            return
        hook.task = asyncio.get_running_loop().create_task(
            self._delivery_loop(hook), name=f"FakeTelegram webhook {hook.url}"
        )
        self._delivery_tasks.add(hook.task)
        hook.task.add_done_callback(self._delivery_tasks.discard)

    def _close_webhook(self) -> None:
        """Stop sending new requests; those in flight finish and count."""
        hook = self._webhook
        if hook is None:
            return
        hook.closed = True
        hook.wakeup.set()
        self._webhook = None
        self.webhook_url = ""

    async def _stop_deliveries(self) -> None:
        hook = self._webhook
        tasks = set(self._delivery_tasks)
        if hook is not None:
            hook.task = None
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if hook is not None:
            hook.inflight.clear()
        self._inflight_updates.clear()
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _delivery_loop(self, hook: _Webhook) -> None:
        """WebhookActor::loop: start requests for ready queue heads, up to the allowed
        number of connections; sleep until an update arrives, a request ends or a retry
        is due."""
        loop = asyncio.get_running_loop()
        try:
            while not hook.closed and not self._closing:
                hook.wakeup.clear()
                now = loop.time()
                active = now - hook.last_success <= WEBHOOK_ACTIVE_WINDOW
                limit = hook.max_connections if active else 1
                heads: set[tuple[str, int]] = set()
                next_at: float | None = None
                for update in self._updates:
                    key = _queue_key(update)
                    if key in heads:
                        continue  # waits for the update before it in its queue
                    heads.add(key)
                    update_id = update["update_id"]
                    if update_id in self._inflight_updates:
                        continue
                    backoff = hook.backoff.get(update_id)
                    if backoff is not None and backoff.wakeup_at > now:
                        if next_at is None or backoff.wakeup_at < next_at:
                            next_at = backoff.wakeup_at
                        continue
                    if len(hook.inflight) >= limit:
                        break
                    task = loop.create_task(self._deliver(hook, copy.deepcopy(update)))
                    hook.inflight[update_id] = task
                    self._inflight_updates.add(update_id)
                    self._delivery_tasks.add(task)
                    task.add_done_callback(self._delivery_tasks.discard)
                timeout = None if next_at is None else max(next_at - now, 0.0)
                try:
                    await asyncio.wait_for(hook.wakeup.wait(), timeout)
                except TimeoutError:
                    pass
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in the fake must show, not hang the test
            log.exception("FakeTelegram: webhook delivery loop failed")
            self.internal_errors.append(f"webhook delivery: {type(exc).__name__}: {exc}")
        finally:
            if hook.task is asyncio.current_task():
                hook.task = None

    async def _deliver(self, hook: _Webhook, update: dict[str, Any]) -> None:
        """One POST of one update; a 2xx answer confirms it, anything else reschedules it."""
        loop = asyncio.get_running_loop()
        update_id = update["update_id"]
        try:
            status, error, retry_after, reply = await self._post_update(hook, update)
        finally:
            hook.inflight.pop(update_id, None)
            self._inflight_updates.discard(update_id)
        now = loop.time()
        if error is None:
            hook.last_success = now
            hook.backoff.pop(update_id, None)
            self._updates = [u for u in self._updates if u["update_id"] != update_id]
        else:
            # WebhookActor::on_update_error: the first retry is immediate, then 2, 4, 8...
            # seconds; a Retry-After header sets the delay instead.
            backoff = hook.backoff.setdefault(update_id, _Backoff())
            delay, effective = backoff.delay, retry_after
            if retry_after == 0 and backoff.fails > 0:
                delay = min(WEBHOOK_MAX_RESEND_TIMEOUT, backoff.delay * 2)
                effective = delay
            backoff.delay = delay
            backoff.wakeup_at = now + effective
            backoff.fails += 1
            if not hook.closed:
                hook.last_error_date = int(time.time())
                hook.last_error_message = error
        self.webhook_deliveries.append(Delivery(update_id, status, error, time.time(), reply))
        self._notify()
        hook.wakeup.set()
        if self._webhook is not None:
            self._webhook.wakeup.set()

    async def _post_update(
        self, hook: _Webhook, update: dict[str, Any]
    ) -> tuple[int | None, str | None, int, Call | None]:
        """(status, error for getWebhookInfo or None, Retry-After, the reply call)."""
        assert hook.target is not None
        headers = {"Content-Type": "application/json", "Accept-Encoding": "gzip, deflate"}
        if hook.secret:
            headers["X-Telegram-Bot-Api-Secret-Token"] = hook.secret
        body = json.dumps(update, ensure_ascii=False).encode("utf-8")
        if self._http is None:
            self._http = aiohttp.ClientSession()
        reply_args: tuple[dict[str, str], dict[str, _Upload]] | None = None
        try:
            async with self._http.post(
                hook.target,
                data=body,
                headers=headers,
                allow_redirects=False,  # Telegram doesn't follow redirects either
                timeout=aiohttp.ClientTimeout(total=self.webhook_timeout),
            ) as response:
                status = response.status
                if not 200 <= status <= 299:
                    reason = response.reason or ""
                    error = f"Wrong response from the webhook: {status} {reason}".rstrip()
                    return status, error, _retry_after(response), None
                reply_args = await _read_webhook_reply(response)
        except TimeoutError:
            return None, "Read timeout expired", 0, None
        except aiohttp.ClientConnectorError as exc:
            return None, _connection_error_text(exc.os_error), 0, None
        except aiohttp.ServerDisconnectedError:
            return None, "Webhook connection closed", 0, None
        except aiohttp.ClientError as exc:
            return None, f"Webhook connection error: {exc}", 0, None
        except OSError as exc:
            return None, _connection_error_text(exc), 0, None
        reply = None
        if reply_args is not None:
            reply = await self._webhook_reply(*reply_args)
        return status, None, 0, reply

    async def _webhook_reply(
        self, args: dict[str, str], uploads: dict[str, _Upload]
    ) -> Call | None:
        """A Bot API call in the webhook's 2xx answer, run as if the bot had sent it
        (WebhookActor::handle: not get*, setWebhook, deleteWebhook, close or logOut)."""
        raw_method = args.pop("method", "")
        method = raw_method.lower()
        if not method or method in WEBHOOK_REPLY_REFUSED or method.startswith("get"):
            return None
        call = Call(
            index=len(self.calls), method=method, params={}, files={}, via_webhook_reply=True
        )
        self.calls.append(call)

        async def prepare() -> _Request:
            call.raw = dict(args)
            call.params = _decode_params(args)
            call.files, call.filenames = _resolve_uploads(args, uploads)
            return _Request(args, uploads)

        await self._execute(call, prepare, raw_method)
        return call

    # ------------------------------------------------------------------ state helpers

    def _bot_user(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "FaceCheck Test Bot",
            "username": self.bot_username,
        }

    def _register_user(
        self, user_id: int, *, first_name: str = "Test", language_code: str | None = "en"
    ) -> dict[str, Any]:
        if user_id <= 0 or user_id == self.bot_id:
            raise ValueError(f"{user_id} is not a valid user id for a private chat")
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        if language_code is not None:
            user["language_code"] = language_code
        self._users[user_id] = user
        return user

    def _chat(self, chat_id: int) -> dict[str, Any]:
        user = self._users[chat_id]
        return {"id": chat_id, "first_name": user["first_name"], "type": "private"}

    def _next_message_id(self, chat_id: int) -> int:
        self._last_message_id[chat_id] = self._last_message_id.get(chat_id, 0) + 1
        return self._last_message_id[chat_id]

    @staticmethod
    def _reply_snapshot(message: dict[str, Any]) -> dict[str, Any]:
        snapshot = copy.deepcopy(message)
        snapshot.pop("reply_to_message", None)
        return snapshot

    def _push(self, kind: str, payload: dict[str, Any]) -> int | None:
        """Queue an update of a type the bot asked for; wake the parked long poll."""
        if kind not in self._allowed_updates:
            self.dropped_updates.append({kind: payload})
            return None
        update_id = self._next_update_id
        self._next_update_id += 1
        self._updates.append({"update_id": update_id, kind: payload})
        if self._poll is not None and not self._poll.done():
            self._poll.set_result("update")
        if self._webhook is not None:
            self._webhook.wakeup.set()
        return update_id

    def _store(
        self,
        data: bytes,
        *,
        kind: str,
        size: int | None = None,
        file_name: str | None = None,
        mime_type: str | None = None,
        extension: str = "",
    ) -> _StoredFile:
        self._file_counter += 1
        n = self._file_counter
        prefix = {"photo": "AgACAgIAAxkBAAI", "document": "BQACAgIAAxkBAAI"}.get(
            kind, "BAACAgIAAxkBAAI"
        )
        seed = hashlib.sha256(f"{self.bot_id}:{kind}:{n}:{len(data)}".encode()).digest()
        tail = base64.urlsafe_b64encode(seed).decode().rstrip("=")
        file_id = f"{prefix}{n:05d}{tail[:50]}"
        unique = "AQAD" + base64.urlsafe_b64encode(seed[::-1][:12]).decode().rstrip("=")
        folder = {"photo": "photos", "document": "documents", "video": "videos", "audio": "music"}
        if not extension and file_name and "." in file_name:
            extension = "." + file_name.rsplit(".", 1)[1].lower()
        path = f"{folder.get(kind, 'documents')}/file_{n}{extension}"
        stored = _StoredFile(
            file_id=file_id,
            file_unique_id=unique,
            data=data,
            size=len(data) if size is None else size,
            path=path,
            kind=kind,
            file_name=file_name,
            mime_type=mime_type,
        )
        self._files[file_id] = stored
        self._paths[path] = file_id
        return stored

    def _make_photo(self, data: bytes) -> list[dict[str, Any]] | str:
        """Telegram's photo processing: PhotoSizes, or the error description it would give."""
        if len(data) > MAX_PHOTO_SIZE:
            return (
                f"file of size {len(data)} bytes is too big for a photo; "
                f"the maximum size is {MAX_PHOTO_SIZE} bytes"
            )
        if not data:
            return "file must be non-empty"
        image = _open_image(data)
        if image is None:
            return "IMAGE_PROCESS_FAILED"
        width, height = image.size
        if width + height > 10000 or max(width, height) > 20 * min(width, height):
            return "PHOTO_INVALID_DIMENSIONS"
        if image.mode != "RGB":
            image = image.convert("RGB")
        long_side = max(width, height)
        # Largest first, each copy from the one before: a smaller source costs less to resample.
        # Bilinear after a box reduction: what the sizes look like is no part of the protocol,
        # and the fake's time is counted in every round trip a test or a benchmark measures.
        copies: dict[int, Image.Image] = {}
        source = image
        for box in reversed(PHOTO_SIDES):
            if long_side > box:
                scale = box / long_side
                target = (max(1, round(width * scale)), max(1, round(height * scale)))
                source = source.resize(target, Image.Resampling.BILINEAR, reducing_gap=1.0)
                copies[box] = source
            else:
                copies[box] = image
        sizes: list[dict[str, Any]] = []
        for box in PHOTO_SIDES:
            copy_ = copies[box]
            buffer = io.BytesIO()
            copy_.save(buffer, format="JPEG", quality=87)
            jpeg = buffer.getvalue()
            stored = self._store(jpeg, kind="photo", mime_type="image/jpeg", extension=".jpg")
            sizes.append(
                {
                    "file_id": stored.file_id,
                    "file_unique_id": stored.file_unique_id,
                    "file_size": len(jpeg),
                    "width": copy_.width,
                    "height": copy_.height,
                }
            )
            if long_side <= box:
                break
        for size in sizes:
            self._files[size["file_id"]].photo = sizes
        return sizes

    def _user_document(
        self, data: bytes, *, file_name: str, mime_type: str | None, size: int | None
    ) -> dict[str, Any]:
        stored = self._store(
            data, kind="document", size=size, file_name=file_name, mime_type=mime_type
        )
        return self._document_json(stored)

    def _document_json(self, stored: _StoredFile) -> dict[str, Any]:
        document: dict[str, Any] = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.size,
        }
        if stored.file_name:
            document["file_name"] = stored.file_name
        if stored.mime_type:
            document["mime_type"] = stored.mime_type
        thumbnail = self._thumbnail(stored.data) if stored.size <= MAX_PHOTO_SIZE else None
        if thumbnail is not None:
            document["thumbnail"] = thumbnail
            document["thumb"] = thumbnail
        return document

    def _thumbnail(self, data: bytes) -> dict[str, Any] | None:
        """Telegram attaches a 320px JPEG thumbnail to documents that are pictures."""
        image: Image.Image | None = None
        try:
            with Image.open(io.BytesIO(data)) as raw:
                orientation = raw.getexif().get(Image.ExifTags.Base.Orientation, 1)
                if raw.format in ("JPEG", "MPO") and orientation == 1:
                    raw.thumbnail((320, 320))  # still undecoded: libjpeg decodes it scaled down
                    image = raw.convert("RGB")
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
            image = None  # _open_image decides, as for any other picture
        if image is None:
            image = _open_image(data)
            if image is None:
                return None
            image = image.convert("RGB")
            image.thumbnail((320, 320))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=80)
        jpeg = buffer.getvalue()
        stored = self._store(jpeg, kind="photo", mime_type="image/jpeg", extension=".jpg")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(jpeg),
            "width": image.width,
            "height": image.height,
        }

    # ------------------------------------------------------------------ shared request parts

    def _chat_id(self, req: _Request, *, empty_error: str = "chat_id is empty") -> int:
        """Client::check_chat for private chats the bot knows about."""
        raw = req.arg("chat_id").strip()
        if not raw:
            raise _bad(empty_error)
        try:
            chat_id = int(raw)
        except ValueError:
            raise _bad("chat not found") from None
        if chat_id not in self._users:
            raise _bad("chat not found")
        if chat_id in self._blocked:
            raise _ApiError(403, "Forbidden: bot was blocked by the user")
        return chat_id

    def _input_text(self, req: _Request) -> tuple[str, list[dict[str, Any]]]:
        """Client::get_input_message_text (link preview options, empty text, entities)."""
        if req.arg("link_preview_options"):
            try:
                options = json.loads(req.arg("link_preview_options"))
            except ValueError:
                raise _bad("Can't parse link preview options JSON object") from None
            if not isinstance(options, dict):
                raise _bad("Object expected as link preview options")
        text = req.arg("text")
        if not text:
            raise _bad("Message text is empty")
        return _format_text(text, req.arg("parse_mode"), req.arg("entities"))

    def _caption(self, req: _Request) -> tuple[str, list[dict[str, Any]]]:
        return _format_text(req.arg("caption"), req.arg("parse_mode"), req.arg("caption_entities"))

    def _reply_parameters(self, req: _Request) -> tuple[int, bool, str]:
        """Client::get_reply_parameters -> (message id, allow_sending_without_reply, chat)."""
        if not req.has("reply_parameters"):
            return (
                req.message_id("reply_to_message_id"),
                req.bool_arg("allow_sending_without_reply"),
                "",
            )
        raw = req.arg("reply_parameters")
        if not raw:
            return 0, False, ""
        try:
            value = json.loads(raw)
        except ValueError:
            raise _bad("Can't parse reply parameters JSON object") from None
        if not isinstance(value, dict):
            raise _bad("Object expected as reply parameters")
        if not value:
            return 0, False, ""
        message_id = value.get("message_id")
        if isinstance(message_id, str) and re.fullmatch(r"-?\d+", message_id):
            message_id = int(message_id)
        problem = _json_field_error("message_id", message_id, int, "Number")
        if problem:
            raise _bad(problem)
        chat = value.get("chat_id", "")
        return max(int(message_id), 0), bool(value.get("allow_sending_without_reply")), str(chat)

    def _check_reply(self, chat_id: int, reply: tuple[int, bool, str]) -> dict[str, Any] | None:
        """Client::check_reply_parameters: the replied message must exist in this chat."""
        message_id, allow_without, reply_chat = reply
        if message_id <= 0:
            return None
        same_chat = not reply_chat or reply_chat.strip() == str(chat_id)
        found = self._messages.get((chat_id, message_id)) if same_chat else None
        if found is None:
            if allow_without:
                return None
            raise _bad("message to be replied not found")
        return self._reply_snapshot(found)

    def _reply_markup(self, req: _Request) -> tuple[str | None, dict[str, Any] | None]:
        return _parse_reply_markup(req.arg("reply_markup"))

    def _input_file(
        self, req: _Request, name: str, value: str | None = None
    ) -> _Upload | str | None:
        """Client::get_input_file: attach://part, a file_id/URL string, or a part named ``name``."""
        value = req.arg(name) if value is None else value
        if value:
            if value.startswith("attach://"):
                return req.uploads.get(value[len("attach://") :])
            return value
        return req.uploads.get(name) if name else None

    def _remote_file(self, value: str, kind: str) -> _StoredFile:
        """A file sent by file_id (or URL, which this offline fake can't fetch)."""
        if re.match(r"^https?://", value, re.IGNORECASE):
            raise _bad("Failed to get HTTP URL content")
        stored = self._files.get(value.strip())
        if stored is None:
            raise _bad("wrong file identifier/HTTP URL specified")
        if stored.kind != kind:
            raise _bad(f"can't use file of type {stored.kind.title()} as {kind.title()}")
        return stored

    def _photo_content(self, source: _Upload | str) -> list[dict[str, Any]]:
        if isinstance(source, str):
            stored = self._remote_file(source, "photo")
            return copy.deepcopy(stored.photo or [])
        sizes = self._make_photo(source.data)
        if isinstance(sizes, str):
            raise _bad(sizes)
        return sizes

    def _document_content(self, source: _Upload | str) -> dict[str, Any]:
        if isinstance(source, str):
            return self._document_json(self._remote_file(source, "document"))
        if not source.data:
            raise _bad("file must be non-empty")
        mime = mimetypes.guess_type(source.filename)[0]
        stored = self._store(
            source.data, kind="document", file_name=source.filename, mime_type=mime
        )
        return self._document_json(stored)

    def _new_bot_message(
        self,
        chat_id: int,
        content: dict[str, Any],
        *,
        reply_to: dict[str, Any] | None,
        markup: tuple[str | None, dict[str, Any] | None],
        req: _Request,
    ) -> dict[str, Any]:
        message: dict[str, Any] = {
            "message_id": self._next_message_id(chat_id),
            "from": self._bot_user(),
            "chat": self._chat(chat_id),
            "date": int(time.time()),
            **content,
        }
        if reply_to is not None:
            message["reply_to_message"] = reply_to
        kind, normalized = markup
        if kind == "inline" and normalized is not None:
            message["reply_markup"] = normalized  # Message.reply_markup is inline-only
        if req.bool_arg("protect_content"):
            message["has_protected_content"] = True
        self._messages[(chat_id, message["message_id"])] = message
        return copy.deepcopy(message)

    @staticmethod
    def _put_text(
        target: dict[str, Any], key: str, text: str, entities: list[dict[str, Any]]
    ) -> None:
        entities_key = "entities" if key == "text" else "caption_entities"
        target.pop(key, None)
        target.pop(entities_key, None)
        if text:
            target[key] = text
        if entities:
            target[entities_key] = entities

    # ------------------------------------------------------------------ methods

    def _true(self, req: _Request) -> bool:
        return True

    def _get_me(self, req: _Request) -> dict[str, Any]:
        return {
            **self._bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _delete_webhook(self, req: _Request) -> _WithDescription:
        return self._change_webhook(req, "")

    def _set_webhook(self, req: _Request) -> _WithDescription:
        return self._change_webhook(req, req.arg("url"))

    def _change_webhook(self, req: _Request, new_url: str) -> _WithDescription:
        """Client::process_set_webhook_query + do_set_webhook + WebhookActor's checks."""
        now = time.monotonic()
        if new_url:
            if now < self._next_set_webhook_at:
                raise _ApiError(429, "Too Many Requests: retry after 1", retry_after=1)
            self._next_set_webhook_at = now + SET_WEBHOOK_INTERVAL
        drop = req.bool_arg("drop_pending_updates")
        max_connections = (
            req.int_arg(
                "max_connections", DEFAULT_MAX_WEBHOOK_CONNECTIONS, 1, MAX_WEBHOOK_CONNECTIONS
            )
            if new_url
            else 0
        )
        secret = req.arg("secret_token") if new_url else ""
        ip_param = req.arg("ip_address") if new_url else ""
        hook = self._webhook
        current = (hook.url, hook.max_connections, hook.secret, hook.ip_param) if hook else None
        if current == (new_url, max_connections, secret, ip_param) or (
            hook is None and not new_url
        ):
            if not drop:
                self._set_allowed_updates(req.arg("allowed_updates"))
                return _WithDescription(
                    True, "Webhook is already set" if new_url else "Webhook is already deleted"
                )
        if new_url and self._poll is not None and not self._poll.done():
            self._poll.set_result("webhook")
        was_set = hook is not None
        self._close_webhook()  # even when the new URL turns out to be refused, as on Telegram
        if drop:
            self._updates.clear()
        if not new_url:
            return _WithDescription(
                True, "Webhook was deleted" if was_set else "Webhook is already deleted"
            )
        parts = _parse_webhook_url(new_url)
        if parts is None:
            raise _bad("invalid webhook URL specified")
        if len(secret) > MAX_SECRET_TOKEN_LENGTH:
            raise _bad("secret token is too long")
        if not re.fullmatch(r"[A-Za-z0-9_-]*", secret):
            raise _bad("secret token contains unallowed characters")
        self._set_allowed_updates(req.arg("allowed_updates"))
        target, ip_address, problem = self._webhook_target(parts)
        if problem:
            raise _bad(f"bad webhook: {problem}")
        hook = _Webhook(
            url=new_url,
            target=target,
            secret=secret,
            max_connections=max_connections,
            ip_address=ip_param or ip_address,
            ip_param=ip_param,
        )
        self._webhook = hook
        self.webhook_url = new_url
        self._start_delivery(hook)
        return _WithDescription(True, "Webhook was set")

    def _webhook_target(self, parts: urllib.parse.SplitResult) -> tuple[str | None, str, str]:
        """(URL to POST to or None, IP address, refusal) as WebhookActor::start_up and
        check_ip_address judge it. Only loopback hosts are ever called."""
        scheme = parts.scheme.lower()
        host = parts.hostname or ""
        loopback = _loopback_ip(host)
        target = urllib.parse.urlunsplit((scheme, *parts[1:]))
        if loopback is not None and self.allow_http_webhook:
            return target, loopback, ""  # --local: any protocol, port and address
        if scheme != "https":
            return None, "", "An HTTPS URL must be provided for webhook"
        if (parts.port or 443) not in WEBHOOK_ALLOWED_PORTS:
            return None, "", "Webhook can be set up only on ports 80, 88, 443 or 8443"
        try:
            address = ipaddress.ip_address(loopback or host)
        except ValueError:
            return None, "", ""  # a host name: accepted, but the fake doesn't leave the machine
        if address.version == 6:
            return None, "", "IPv6-only addresses are not allowed"
        if not address.is_global:
            return None, "", f"IP address {address} is reserved"
        return None, str(address), ""

    def _get_webhook_info(self, req: _Request) -> dict[str, Any]:
        info: dict[str, Any] = {
            "url": self.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        hook = self._webhook
        if hook is not None:
            if hook.last_error_date:
                info["last_error_date"] = hook.last_error_date
                info["last_error_message"] = hook.last_error_message
            info["max_connections"] = hook.max_connections
            if hook.ip_address:
                info["ip_address"] = hook.ip_address
        if self._allowed_updates != DEFAULT_ALLOWED_UPDATES:
            info["allowed_updates"] = [k for k in UPDATE_TYPES if k in self._allowed_updates]
        return info

    async def _get_updates(self, req: _Request) -> list[dict[str, Any]]:
        """Client::process_get_updates_query + do_get_updates, long poll included."""
        if self.webhook_url:
            raise _ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = req.int_arg("offset", 0)
        limit = req.int_arg("limit", 100, 1, 100)
        timeout = req.int_arg("timeout", 0, 0, MAX_LONG_POLL_TIMEOUT)
        self._set_allowed_updates(req.arg("allowed_updates"))
        self._confirm(offset)
        batch = self._batch(offset, limit)
        if batch or timeout == 0 or self._closing:
            return batch
        if self._poll is not None and not self._poll.done():
            self._poll.set_result("conflict")  # the older poller is the one terminated
        poll: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._poll = poll
        try:
            reason = await asyncio.wait_for(asyncio.shield(poll), timeout)
        except TimeoutError:
            reason = "timeout"
        finally:
            if self._poll is poll:
                self._poll = None
        if reason == "conflict":
            raise _ApiError(409, CONFLICT_GET_UPDATES)
        if reason == "webhook":
            raise _ApiError(409, "Conflict: terminated by setWebhook request")
        return self._batch(offset, limit)

    def _set_allowed_updates(self, raw: str) -> None:
        """Client::get_allowed_update_types: bad input keeps the previous setting."""
        if not raw:
            return
        try:
            value = json.loads(raw)
        except ValueError:
            return
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return
        chosen = frozenset(v.lower() for v in value) & frozenset(UPDATE_TYPES)
        self._allowed_updates = chosen or DEFAULT_ALLOWED_UPDATES

    def _confirm(self, offset: int) -> None:
        """Forget confirmed updates; an offset far "in the future" is ignored (TQueue::get)."""
        if offset < 0:
            self._updates = self._updates[offset:]
        elif 0 < offset <= self._next_update_id + 10:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]

    def _batch(self, offset: int, limit: int) -> list[dict[str, Any]]:
        return copy.deepcopy(self._updates[:limit])

    def _set_my_commands(self, req: _Request) -> bool:
        commands = self._parse_commands(req.arg("commands"))
        key = (self._command_scope(req), req.arg("language_code"))
        if commands:
            self.commands[key] = commands
        else:
            self.commands.pop(key, None)
        return True

    def _get_my_commands(self, req: _Request) -> list[dict[str, str]]:
        key = (self._command_scope(req), req.arg("language_code"))
        return copy.deepcopy(self.commands.get(key, []))

    def _delete_my_commands(self, req: _Request) -> bool:
        self.commands.pop((self._command_scope(req), req.arg("language_code")), None)
        return True

    def _parse_commands(self, raw: str) -> list[dict[str, str]]:
        if not raw:
            return []
        try:
            value = json.loads(raw)
        except ValueError:
            raise _bad("Can't parse commands JSON object") from None
        if not isinstance(value, list):
            raise _bad("Expected an Array of BotCommand")
        commands = []
        for item in value:
            if not isinstance(item, dict):
                raise _bad("Can't parse BotCommand: expected an Object")
            for name in ("command", "description"):
                problem = _json_field_error(name, item.get(name), str, "String")
                if problem:
                    raise _bad(f"Can't parse BotCommand: {problem}")
            command = item["command"].removeprefix("/")
            if not re.fullmatch(r"[a-z0-9_]{1,32}", command):
                raise _bad("BOT_COMMAND_INVALID")
            description = item["description"].strip()
            if not 1 <= len(description) <= 256:
                raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")
            commands.append({"command": command, "description": description})
        if len(commands) > 100:
            raise _bad("BOT_COMMANDS_TOO_MUCH")
        return commands

    def _command_scope(self, req: _Request) -> str:
        raw = req.arg("scope")
        if not raw:
            return json.dumps({"type": "default"})
        try:
            value = json.loads(raw)
        except ValueError:
            raise _bad("Can't parse BotCommandScope JSON object") from None
        if not isinstance(value, dict):
            raise _bad("Can't parse BotCommandScope: BotCommandScope must be an Object")
        kind = value.get("type")
        problem = _json_field_error("type", kind, str, "String")
        if problem:
            raise _bad(f"Can't parse BotCommandScope: {problem}")
        simple = {"default", "all_private_chats", "all_group_chats", "all_chat_administrators"}
        if kind in simple:
            return json.dumps({"type": kind})
        if kind not in {"chat", "chat_administrators", "chat_member"}:
            raise _bad("Can't parse BotCommandScope: Unsupported type specified")
        chat = value.get("chat_id")
        if chat is None or str(chat) == "":
            raise _bad("Can't parse BotCommandScope: Empty chat_id specified")
        if _to_integer(str(chat)) not in self._users:
            raise _bad("chat not found")
        return json.dumps({"type": kind, "chat_id": int(chat), "user_id": value.get("user_id")})

    def _get_file(self, req: _Request) -> dict[str, Any]:
        file_id = req.arg("file_id").strip()
        stored = self._files.get(file_id)
        if stored is None:
            if re.fullmatch(r"[A-Za-z0-9_-]{20,}", file_id):
                raise _bad("wrong file_id or the file is temporarily unavailable")
            raise _bad("invalid file_id")
        path = stored.path
        if self.local_files is not None:
            local = self.local_files / self.token.replace(":", "_") / stored.path
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(stored.data)
            self.downloads.append(stored.path)
            path = str(local.resolve())
        elif stored.size > MAX_DOWNLOAD_SIZE:
            raise _bad("file is too big")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.size,
            "file_path": path,
        }

    def _send_message(self, req: _Request) -> dict[str, Any]:
        text, entities = self._input_text(req)
        reply = self._reply_parameters(req)
        markup = self._reply_markup(req)
        chat_id = self._chat_id(req)
        reply_to = self._check_reply(chat_id, reply)
        if not text:
            raise _bad("message must be non-empty")
        if _utf16_len(text) > MAX_TEXT_LENGTH:
            raise _bad("message is too long")
        content: dict[str, Any] = {}
        self._put_text(content, "text", text, entities)
        return self._new_bot_message(chat_id, content, reply_to=reply_to, markup=markup, req=req)

    def _media_message(self, req: _Request, field_name: str) -> dict[str, Any]:
        source = self._input_file(req, field_name)
        if source is None:
            raise _bad(f"there is no {field_name} in the request")
        caption, caption_entities = self._caption(req)
        reply = self._reply_parameters(req)
        markup = self._reply_markup(req)
        chat_id = self._chat_id(req)
        reply_to = self._check_reply(chat_id, reply)
        if _utf16_len(caption) > MAX_CAPTION_LENGTH:
            raise _bad("message caption is too long")
        content: dict[str, Any] = {}
        if field_name == "photo":
            content["photo"] = self._photo_content(source)
        else:
            content["document"] = self._document_content(source)
        self._put_text(content, "caption", caption, caption_entities)
        if req.bool_arg("has_spoiler"):
            content["has_media_spoiler"] = True
        if req.bool_arg("show_caption_above_media"):
            content["show_caption_above_media"] = True
        return self._new_bot_message(chat_id, content, reply_to=reply_to, markup=markup, req=req)

    def _send_photo(self, req: _Request) -> dict[str, Any]:
        return self._media_message(req, "photo")

    def _send_document(self, req: _Request) -> dict[str, Any]:
        return self._media_message(req, "document")

    def _send_media_group(self, req: _Request) -> list[dict[str, Any]]:
        """Client::process_send_media_group_query: 1-10 items, documents only with documents."""
        reply = self._reply_parameters(req)
        raw = req.arg("media")
        if not raw:
            raise _bad('Parameter "media" is required')
        try:
            value = json.loads(raw)
        except ValueError:
            raise _bad("Can't parse media JSON object") from None
        if not isinstance(value, list):
            raise _bad("Expected an Array of InputMedia")
        items: list[tuple[str, _Upload | str, str, list[dict[str, Any]], dict[str, Any]]] = []
        for item in value:
            prefix = "Can't parse InputMedia: "
            if not isinstance(item, dict):
                raise _bad(prefix + "expected an Object")
            try:
                caption, entities = _format_text(
                    str(item.get("caption") or ""),
                    str(item.get("parse_mode") or ""),
                    json.dumps(item["caption_entities"]) if "caption_entities" in item else "",
                )
            except _ApiError as exc:
                raise _bad(prefix + exc.description.removeprefix("Bad Request: ")) from None
            media = item.get("media")
            source = self._input_file(req, "", str(media)) if isinstance(media, str) else None
            if source is None:
                raise _bad(prefix + "media not found")
            kind = item.get("type")
            problem = _json_field_error("type", kind, str, "String")
            if problem:
                raise _bad(prefix + problem)
            if kind == "animation":
                raise _bad(prefix + 'type "animation" can\'t be used in sendMediaGroup')
            if kind not in {"photo", "video", "document", "audio"}:
                raise _bad(prefix + f'type "{kind}" is unsupported')
            items.append((str(kind), source, caption, entities, item))
        if not items:
            raise _bad("there are no messages to send")
        if len(items) > 10:
            raise _bad("too many messages to send as an album")
        kinds = {kind for kind, *_ in items}
        if len(kinds) > 1 and ("document" in kinds or "audio" in kinds):
            raise _bad("Can't use the media of the specified type in the album")
        chat_id = self._chat_id(req)
        reply_to = self._check_reply(chat_id, reply)
        self._media_group_counter += 1
        group_id = str(13_900_000_000_000_000 + self._media_group_counter)
        contents = []
        for position, (kind, source, caption, entities, item) in enumerate(items, start=1):
            try:
                if _utf16_len(caption) > MAX_CAPTION_LENGTH:
                    raise _bad("message caption is too long")
                content: dict[str, Any] = {"media_group_id": group_id}
                if kind == "photo":
                    content["photo"] = self._photo_content(source)
                elif kind == "document":
                    content["document"] = self._document_content(source)
                else:
                    content[kind] = self._other_media(kind, source, item)
            except _ApiError as exc:
                detail = exc.description.removeprefix("Bad Request: ")
                raise _bad(
                    f'failed to send message #{position} with the error message "{detail}"'
                ) from None
            self._put_text(content, "caption", caption, entities)
            contents.append(content)
        return [
            self._new_bot_message(chat_id, content, reply_to=reply_to, markup=(None, None), req=req)
            for content in contents
        ]

    def _other_media(
        self, kind: str, source: _Upload | str, item: dict[str, Any]
    ) -> dict[str, Any]:
        """Videos/audio in albums: stored as-is (this fake doesn't decode them)."""
        if isinstance(source, str):
            stored = self._remote_file(source, kind)
        else:
            if not source.data:
                raise _bad("file must be non-empty")
            stored = self._store(
                source.data,
                kind=kind,
                file_name=source.filename,
                mime_type=mimetypes.guess_type(source.filename)[0],
            )
        result: dict[str, Any] = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.size,
            "duration": int(item.get("duration") or 0),
        }
        if kind == "video":
            result.update(width=int(item.get("width") or 0), height=int(item.get("height") or 0))
        if stored.mime_type:
            result["mime_type"] = stored.mime_type
        return result

    def _send_chat_action(self, req: _Request) -> bool:
        if req.arg("action").lower() not in CHAT_ACTIONS:
            raise _bad("Wrong parameter action in request")
        self._chat_id(req)
        return True

    def _message_to_edit(self, req: _Request) -> dict[str, Any]:
        """Client::check_message(..., AccessRights::Edit, "message to edit")."""
        message_id = req.message_id()
        if not req.arg("chat_id") and message_id == 0:
            if not req.arg("inline_message_id"):
                raise _bad("Message identifier is not specified")
            raise _bad("MESSAGE_ID_INVALID")  # this fake has no inline messages
        chat_id = self._chat_id(req)
        message = self._messages.get((chat_id, message_id))
        if message is None:
            raise _bad("message to edit not found")
        if message["from"]["id"] != self.bot_id:
            raise _bad("message can't be edited")
        return message

    @staticmethod
    def _edit_markup(markup: tuple[str | None, dict[str, Any] | None]) -> dict[str, Any] | None:
        kind, normalized = markup
        if kind not in (None, "inline"):
            raise _bad("inline keyboard expected")
        return normalized

    def _finish_edit(self, message: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
        if message == before:
            raise _ApiError(400, NOT_MODIFIED)
        message["edit_date"] = int(time.time())
        return copy.deepcopy(message)

    def _edit_message_text(self, req: _Request) -> dict[str, Any]:
        text, entities = self._input_text(req)
        markup = self._edit_markup(self._reply_markup(req))
        message = self._message_to_edit(req)
        if "text" not in message:
            raise _bad("there is no text in the message to edit")
        if not text:
            raise _bad("message must be non-empty")
        if _utf16_len(text) > MAX_TEXT_LENGTH:
            raise _bad("message is too long")
        before = copy.deepcopy(message)
        self._put_text(message, "text", text, entities)
        _set_markup(message, markup)
        return self._finish_edit(message, before)

    def _edit_message_caption(self, req: _Request) -> dict[str, Any]:
        markup = self._edit_markup(self._reply_markup(req))
        caption, entities = self._caption(req)
        message = self._message_to_edit(req)
        if not any(key in message for key in ("photo", "document", "video", "audio", "animation")):
            raise _bad("there is no caption in the message to edit")
        if _utf16_len(caption) > MAX_CAPTION_LENGTH:
            raise _bad("message caption is too long")
        before = copy.deepcopy(message)
        self._put_text(message, "caption", caption, entities)
        _set_markup(message, markup)
        if req.bool_arg("show_caption_above_media"):
            message["show_caption_above_media"] = True
        else:
            message.pop("show_caption_above_media", None)
        return self._finish_edit(message, before)

    def _edit_message_reply_markup(self, req: _Request) -> dict[str, Any]:
        markup = self._edit_markup(self._reply_markup(req))
        message = self._message_to_edit(req)
        before = copy.deepcopy(message)
        _set_markup(message, markup)
        return self._finish_edit(message, before)

    def _delete_message(self, req: _Request) -> bool:
        if not req.arg("chat_id"):
            raise _bad("Chat identifier is not specified")
        message_id = req.message_id()
        if message_id == 0:
            raise _bad("Message identifier is not specified")
        chat_id = self._chat_id(req)
        if self._messages.pop((chat_id, message_id), None) is None:
            raise _bad("message to delete not found")
        return True

    def _answer_callback_query(self, req: _Request) -> bool:
        query_id = req.arg("callback_query_id")
        if query_id not in self._callbacks:
            raise _ApiError(400, QUERY_INVALID)
        if len(req.arg("text")) > 200:
            raise _bad("MESSAGE_TOO_LONG")
        del self._callbacks[query_id]
        return True


# --------------------------------------------------------------------------- small helpers


@dataclass
class _WithDescription:
    """A successful result that Telegram answers with an extra ``description``."""

    value: Any
    description: str


def _set_markup(message: dict[str, Any], markup: dict[str, Any] | None) -> None:
    """Editing without reply_markup removes the inline keyboard, as on Telegram."""
    if markup is None:
        message.pop("reply_markup", None)
    else:
        message["reply_markup"] = markup


def _shuffle(sizes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A fixed permutation that never leaves the largest size last (nor first when n >= 3)."""
    if len(sizes) < 2:
        return list(sizes)
    if len(sizes) == 2:
        return [sizes[1], sizes[0]]
    return [sizes[-2], sizes[-1], sizes[0], *sizes[1:-2]]


def _open_image(data: bytes) -> Image.Image | None:
    """Decode with Pillow (HEIC via pillow-heif when present) and apply EXIF orientation."""
    for attempt in range(2):
        try:
            with Image.open(io.BytesIO(data)) as raw:
                raw.load()
                return ImageOps.exif_transpose(raw) or raw.copy()
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
            if attempt == 0 and _register_heif():
                continue
            return None
    return None


def _register_heif() -> bool:
    try:
        import pillow_heif  # optional: only needed for HEIC test photos
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


def _method_set(method: str | Iterable[str] | None) -> set[str] | None:
    if method is None:
        return None
    if isinstance(method, str):
        return {method.lower()}
    return {m.lower() for m in method}


def _parse_urlencoded(raw: str) -> dict[str, str]:
    """application/x-www-form-urlencoded with strict UTF-8, as Telegram insists on."""
    return dict(
        urllib.parse.parse_qsl(raw, keep_blank_values=True, encoding="utf-8", errors="strict")
    )


def _decode_params(args: dict[str, str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key, value in args.items():
        decoded: Any = value
        if key in _JSON_PARAMS:
            try:
                decoded = json.loads(value)
            except ValueError:
                decoded = value
        elif key in _INT_PARAMS and re.fullmatch(r"\s*-?\d+\s*", value):
            decoded = int(value)
        elif key in _BOOL_PARAMS:
            decoded = value.strip().lower() in {"true", "yes", "1"}
        params[key] = decoded
    return params


def _resolve_uploads(
    args: dict[str, str], uploads: dict[str, _Upload]
) -> tuple[dict[str, bytes], dict[str, str]]:
    """Key uploaded parts by the parameter that references them (``attach://`` or same name)."""
    files: dict[str, bytes] = {}
    names: dict[str, str] = {}
    used: set[str] = set()

    def take(key: str, part_name: str) -> None:
        part = uploads.get(part_name)
        if part is not None:
            files[key] = part.data
            names[key] = part.filename
            used.add(part_name)

    for key, value in args.items():
        if value.startswith("attach://"):
            take(key, value[len("attach://") :])
    try:
        media = json.loads(args.get("media", "null"))
    except ValueError:
        media = None
    items = media if isinstance(media, list) else [media] if isinstance(media, dict) else []
    for position, item in enumerate(items):
        if isinstance(item, dict):
            for sub in ("media", "thumbnail"):
                value = item.get(sub)
                if isinstance(value, str) and value.startswith("attach://"):
                    suffix = "" if sub == "media" else f".{sub}"
                    key = (
                        f"media[{position}]{suffix}"
                        if isinstance(media, list)
                        else f"media{suffix}"
                    )
                    take(key, value[len("attach://") :])
    for part_name in uploads:
        if part_name not in used:
            take(part_name, part_name)
    return files, names


def _json_response(
    body: dict[str, Any], status: int, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        text=json.dumps(body, ensure_ascii=False),
        status=status,
        content_type="application/json",
        headers=headers,
    )


async def _read_multipart(
    reader: MultipartReader, args: dict[str, str], uploads: dict[str, _Upload]
) -> None:
    """Fields into ``args``, files into ``uploads``; 413 past the upload limit."""
    total = 0
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue  # nested multipart/mixed: not a Bot API field
        name = part.name or ""
        data = bytearray()
        while chunk := await part.read_chunk(1 << 16):
            total += len(chunk)
            if total > MAX_UPLOAD_SIZE:
                raise _ApiError(413, "Request Entity Too Large")
            data += chunk
        if part.filename is not None:
            uploads[name] = _Upload(bytes(data), part.filename, part.headers.get("Content-Type"))
        else:
            args[name] = data.decode("utf-8")


def _json_args(raw: bytes) -> dict[str, str]:
    """A JSON object body as string arguments (nested values re-encoded as JSON)."""
    args: dict[str, str] = {}
    if not raw.strip():
        return args
    try:
        value = json.loads(raw)
    except UnicodeDecodeError:
        raise
    except ValueError:
        raise _bad("Can't parse JSON object") from None
    if not isinstance(value, dict):
        raise _bad("Can't parse JSON object")
    for key, item in value.items():
        if item is None:
            continue
        args[key] = item if isinstance(item, str) else json.dumps(item)
    return args


async def _read_webhook_reply(
    response: aiohttp.ClientResponse,
) -> tuple[dict[str, str], dict[str, _Upload]] | None:
    """A webhook's 2xx body read as request parameters (JSON, urlencoded or multipart),
    or None when it can't carry a Bot API call."""
    content_type = response.content_type
    args: dict[str, str] = {}
    uploads: dict[str, _Upload] = {}
    try:
        if content_type == "application/json":
            args = _json_args(await response.read())
        elif content_type == "application/x-www-form-urlencoded":
            args = _parse_urlencoded((await response.read()).decode("latin-1"))
        elif content_type == "multipart/form-data":
            await _read_multipart(
                MultipartReader(response.headers, response.content), args, uploads
            )
        else:
            await response.read()
            return None
    except (_ApiError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        log.warning("FakeTelegram: unreadable webhook answer ignored: %s", exc)
        return None
    return args, uploads
