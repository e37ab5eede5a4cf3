"""What every reply shares: escaping, numbers and times, notes, failures, message limits."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import partial

from aiogram.utils.i18n import gettext as _

from services.errors import ImageError, ProviderError, ServiceError
from services.i18n import N_
from services.images import Change, PreparedImage

# Telegram's HTML mode needs only <, > and & escaped; quotes stay readable in the raw text.
escape = partial(html.escape, quote=False)

CAPTION_LIMIT = 1024
TEXT_LIMIT = 4096

OPERATION_NAMES = {
    "check": N_("operation.check"),
    "compare": N_("operation.compare"),
    "detect": N_("operation.detect"),
    "analyze": N_("operation.analyze"),
}


class Html(str):
    """A fragment that is already HTML (catalogue text, or built by these rules): kept as is."""


def fill(sentence: str, /, **values: object) -> str:
    """A catalogue sentence with its values put in, each escaped unless it is ``Html``."""
    return sentence.format(**_escaped(values))


def _escaped(values: dict[str, object]) -> dict[str, str]:
    return {
        key: value if isinstance(value, Html) else escape(str(value))
        for key, value in values.items()
    }


def fmt(value: float | None) -> str:
    """Compact numbers: ratios with 3 decimals, scores and angles with at most 1."""
    if value is None:
        return "—"
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    if abs(value) < 1:
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return f"{value:.1f}"


def fmt_angle(value: float) -> str:
    """Angles always with one decimal, so that the three of a pose line up."""
    return f"{value:.1f}"


def when(moment: datetime | None) -> str:
    """A reset time as users read it: the time in UTC, with the date unless it is today."""
    if moment is None:
        return "—"
    moment = moment.astimezone(UTC)
    if moment.date() == datetime.now(UTC).date():
        return moment.strftime("%H:%M UTC")
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def joined(parts: Iterable[str]) -> str:
    """The non-empty parts of a line, one value after another."""
    return " · ".join(part for part in parts if part)


def operation_name(operation: str) -> str:
    """The operation as users call it; a name the catalogue lacks as it came."""
    if operation in OPERATION_NAMES:
        return _(OPERATION_NAMES[operation])
    return escape(operation)


def notes_section(notes: list[str]) -> str:
    return "<i>" + "\n".join(notes) + "</i>"


def change_notes(image: PreparedImage) -> list[str]:
    """What was done to the photo before a provider saw it, so a measurement is not a surprise."""
    notes: list[str] = []
    original = image.original
    if Change.REDUCED in image.changes:
        notes.append(
            fill(
                _("image.note.reduced"),
                ow=original.width,
                oh=original.height,
                w=image.width,
                h=image.height,
            )
        )
    if Change.CONVERTED in image.changes:
        notes.append(fill(_("image.note.converted"), source=original.format, target=image.format))
    if Change.ROTATED in image.changes:
        notes.append(_("image.note.rotated"))
    return notes


def provider_notes(provider: str, fell_back_from: str | None) -> list[str]:
    """Which engine answered, and why it was not the configured one."""
    notes = []
    if fell_back_from:
        notes.append(fill(_("fallback.used"), provider=fell_back_from))
    notes.append(fill(_("check.provider"), provider=provider))
    return notes


def error_text(error: ServiceError) -> str:
    """The failure's sentence, which photo it was about, and the provider's code if any."""
    text = _(error.message_id).format_map(_Defaults(_error_values(error)))
    photo = error.values.get("photo")
    if isinstance(photo, int):
        text = fill(_("error.photo_n"), n=photo) + " " + text
    if isinstance(error, ProviderError) and error.code is not None:
        text += "\n<i>" + fill(_("error.code"), provider=error.provider, code=error.code) + "</i>"
    return text


def _error_values(error: ServiceError) -> dict[str, str]:
    values = _escaped(
        {
            key: when(value) if isinstance(value, datetime) else value
            for key, value in error.values.items()
        }
    )
    operation = error.values.get("operation")
    if operation is not None:
        values["operation"] = operation_name(str(operation))
    size = error.values.get("size")
    if isinstance(error, ImageError) and isinstance(size, int):
        values["size_mb"] = escape(f"{size / 1024 / 1024:.1f}")
    return values


class _Defaults(dict[str, str]):
    """``str.format`` with a dash for any value a translation asks for but the error lacks."""

    def __missing__(self, key: str) -> str:
        return "—"


def split_for_caption(sections: list[str]) -> tuple[str, list[str]]:
    """The leading sections that fit a photo caption; the rest go in text messages.

    When even the first section is too long, the caption is its first line (the
    verdict or the count, a whole HTML element) and the full text follows.
    """
    caption = ""
    for index, section in enumerate(sections):
        candidate = f"{caption}\n\n{section}" if caption else section
        if len(candidate) > CAPTION_LIMIT:
            if not caption:
                return section.split("\n", 1)[0], pack(sections)
            return caption, pack(sections[index:])
        caption = candidate
    return caption, []


def pack(sections: list[str]) -> list[str]:
    """Text messages of at most ``TEXT_LIMIT`` characters: lines kept whole where they fit,
    a longer line cut anywhere but inside a tag or an entity. An element cut in two is closed
    at the end of one message and opened again at the start of the next, so Telegram can
    parse each message on its own."""
    return split_html("\n\n".join(sections), TEXT_LIMIT)


# A tag, an entity, or a run of plain text (a stray < or & is text too).
_TOKENS = re.compile(r"<[^<>]*>|&#?\w+;|[^<&]+|[<&]")
Open = list[tuple[str, str]]  # the elements open: (name, opening tag), outermost first


def split_html(text: str, limit: int) -> list[str]:
    """``text`` (Telegram HTML) in messages of at most ``limit`` UTF-16 units, each whole."""
    messages: list[str] = []
    open_: Open = []
    start = body = ""  # the message so far; ``start``: what it was opened with

    def emit() -> None:
        nonlocal start, body
        if body != start:
            messages.append(body + _closing(open_))
        start = body = "".join(tag for _name, tag in open_)

    for line in text.split("\n"):
        if body == start and not line.strip():
            continue  # no blank lines at a message's start
        candidate = line if body == start else f"{body}\n{line}"
        if _units(candidate + _closing(_track(open_, line))) <= limit:
            body, open_ = candidate, _track(open_, line)
            continue
        emit()
        for token in _TOKENS.findall(line):
            while _units(body + token + _closing(_track(open_, token))) > limit:
                room = limit - _units(body + _closing(open_))
                if token[0] in "<&" or room <= 0:
                    if body == start:
                        break  # a tag longer than a message: sent as it is
                    emit()
                    continue
                head = token[:room]
                while head and _units(head) > room:
                    head = head[:-1]
                if not head:  # a character of two units where there is room for one
                    if body == start:
                        break
                    emit()
                    continue
                body += head
                token = token[len(head) :]
                emit()
            body += token
            open_ = _track(open_, token)
    emit()
    return messages


def _units(text: str) -> int:
    """Telegram's length: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def _closing(open_: Open) -> str:
    return "".join(f"</{name}>" for name, _tag in reversed(open_))


def _track(open_: Open, html_text: str) -> Open:
    """The elements open after ``html_text`` (well formed, as the renderers write it)."""
    for tag in re.findall(r"<[^<>]*>", html_text):
        if tag.startswith("</"):
            open_ = open_[:-1]
        elif not tag.endswith("/>"):
            open_ = [*open_, (tag[1:-1].split(None, 1)[0].lower(), tag)]
    return open_
