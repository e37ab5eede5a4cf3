"""Logging that never prints the bot token.

aiogram and aiohttp may log request URLs and exceptions that contain them, and
Bot API URLs carry the token (``/bot<token>/method``, ``/file/bot<token>/path``);
the formatter masks it in the final line, tracebacks included.
"""

from __future__ import annotations

import logging
import re

_TOKEN_IN_TEXT = re.compile(r"\d{3,}:[A-Za-z0-9_-]{6,}")


def redact(text: str) -> str:
    return _TOKEN_IN_TEXT.sub("<token>", text)


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
