"""Message-id marker for code that must not depend on the bot's i18n.

``N_("check.reason.too_dark")`` returns its argument unchanged; the catalogue
extractor collects every ``N_`` call, so an id used in ``services/`` is in every
locale's catalogue and the bot renders it in the user's language.
"""


def N_(message_id: str) -> str:
    return message_id
