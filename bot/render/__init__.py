"""Turning results and failures into the user's language, for Telegram's HTML parse mode.

Every sentence is a message id looked up in the current locale; the provider's own
text is never the message. One escaping rule holds everywhere:

- text from the catalogue is trusted HTML and is never escaped (a test keeps ``<``,
  ``>`` and ``&`` out of every translation);
- everything else (numbers, provider names, codes, user names, file formats, a
  provider's unknown reason text, any value put into a catalogue sentence) is escaped
  with ``escape`` where it goes in. ``fill`` does that for a sentence's values; a value
  that is itself catalogue text or a fragment built by this rule is marked ``Html``.

Submodules by subject: ``text`` (what every reply shares), ``check``, ``faces`` (detect
and analyze), ``compare`` and ``account`` (quota and stats).
"""

from bot.render.account import quota_text, stats_texts
from bot.render.check import check_report
from bot.render.compare import compare_report
from bot.render.faces import analyze_report, detect_report
from bot.render.text import (
    CAPTION_LIMIT,
    TEXT_LIMIT,
    error_text,
    escape,
    fmt,
    split_for_caption,
    when,
)

__all__ = [
    "CAPTION_LIMIT",
    "TEXT_LIMIT",
    "analyze_report",
    "check_report",
    "compare_report",
    "detect_report",
    "error_text",
    "escape",
    "fmt",
    "quota_text",
    "split_for_caption",
    "stats_texts",
    "when",
]
