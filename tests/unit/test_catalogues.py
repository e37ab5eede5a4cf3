"""Every message id is translated in every locale, with the same placeholders."""

from __future__ import annotations

import re
import string
from html.parser import HTMLParser

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from bot.i18n import LOCALES, match_locale
from tests.conftest import LOCALES_DIR

TEMPLATE = LOCALES_DIR / "messages.pot"


def template_ids() -> list[str]:
    with open(TEMPLATE, "rb") as fh:
        return [m.id for m in read_po(fh) if m.id]


def po(locale: str):
    with open(LOCALES_DIR / locale / "LC_MESSAGES" / "messages.po", "rb") as fh:
        return read_po(fh)


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_template_matches_the_code() -> None:
    """The committed template lists exactly the ids the code uses (run `make extract`)."""
    from babel.messages.extract import extract_from_dir

    found: set[str] = set()
    root = LOCALES_DIR.parent.parent
    for folder in ("bot", "services"):
        for _file, _line, message, _comments, _ctx in extract_from_dir(
            root / folder,
            method_map=[("**.py", "python")],
            keywords={"_": None, "N_": None, "gettext": None},
        ):
            found.add(message if isinstance(message, str) else message[0])
    assert found == set(template_ids())


@pytest.mark.parametrize("locale", LOCALES)
def test_every_id_translated(locale: str) -> None:
    catalogue = po(locale)
    missing = [
        mid for mid in template_ids() if not (catalogue.get(mid) and catalogue.get(mid).string)
    ]
    assert missing == []


@pytest.mark.parametrize("locale", LOCALES)
def test_placeholders_match_english(locale: str) -> None:
    english = po("en")
    catalogue = po(locale)
    wrong = {
        mid: (placeholders(english[mid].string), placeholders(catalogue[mid].string))
        for mid in template_ids()
        if placeholders(english[mid].string) != placeholders(catalogue[mid].string)
    }
    assert wrong == {}


@pytest.mark.parametrize("locale", LOCALES)
def test_compiled_catalogue_is_fresh(locale: str) -> None:
    """The .mo shipped beside the .po says the same (run `make locales`)."""
    with open(LOCALES_DIR / locale / "LC_MESSAGES" / "messages.mo", "rb") as fh:
        compiled = {m.id: m.string for m in read_mo(fh) if m.id}
    source = {m.id: m.string for m in po(locale) if m.id}
    assert compiled == source


class _StrictHtml(HTMLParser):
    def handle_starttag(self, tag: str, attrs: list) -> None:
        raise AssertionError(f"tag <{tag}> in a translation")


@pytest.mark.parametrize("locale", LOCALES)
def test_translations_are_safe_in_html_mode(locale: str) -> None:
    """Replies use HTML parse mode: a bare < or & in a translation would break them."""
    for message in po(locale):
        if message.id:
            assert not re.search(r"[<>&]", message.string), (message.id, message.string)
            _StrictHtml().feed(message.string)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("zh-hans", "zh_Hans"),
        ("zh-cn", "zh_Hans"),
        ("zh", "zh_Hans"),
        ("zh-TW", "zh_Hans"),
        ("ru", "ru"),
        ("ru-RU", "ru"),
        ("en-GB", "en"),
        ("en", "en"),
        ("de", None),
        ("", None),
        (None, None),
    ],
)
def test_language_codes(code: str | None, expected: str | None) -> None:
    assert match_locale(code) == expected


def test_long_reports_split_at_whole_sections() -> None:
    from bot.render import CAPTION_LIMIT, TEXT_LIMIT, split_for_caption

    short, long_ = "<b>Head</b>\nline", "<b>Faces: 40</b>\n" + "\n".join(["#n: x" * 30] * 40)
    assert split_for_caption([short, "tail"]) == (short + "\n\ntail", [])
    caption, rest = split_for_caption([long_, short])
    assert caption == "<b>Faces: 40</b>" and len(rest) > 1
    assert all(len(part) <= TEXT_LIMIT for part in rest)
    assert "\n".join(rest).replace("\n\n", "\n") == (long_ + "\n" + short)
    caption, rest = split_for_caption([short, "tail " * 300])
    assert caption == short and len(caption) <= CAPTION_LIMIT and rest == ["tail " * 300]


@pytest.mark.parametrize("limit", [60, 200, 4096])
def test_long_replies_split_into_messages_telegram_can_parse(limit: int) -> None:
    """An element cut in two is closed and opened again; nothing is lost but line breaks."""
    from bot.render.text import TEXT_LIMIT, pack, split_html
    from tests.fakes.telegram import _parse_html

    notes = "\n".join(f"note {n}: a long remark about the photo, 😀 &amp; more" for n in range(90))
    text = (
        "<b>Verdict</b>\n"
        + f"<i>{notes}</i>\n\n"
        + '<a href="https://example.org/rules">'
        + "rule " * 1200
        + "</a>\n"
        + "<b>end</b> &lt;tail&gt;"
    )
    messages = split_html(text, limit)
    assert len(messages) > 1
    if limit == TEXT_LIMIT:
        assert pack([text]) == messages
    contents = []
    for message in messages:
        assert len(message.encode("utf-16-le")) // 2 <= limit
        plain, _entities = _parse_html(message)  # raises on what Telegram would refuse
        contents.append(plain)
    whole, _ = _parse_html(text)
    assert "".join(contents).replace("\n", "") == whole.replace("\n", "")
