"""``python -m bot``: check the settings, then poll Telegram (or serve its webhook) until
SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import sys

from services.config import SettingsError


def main() -> int:
    from bot.config import load_settings

    try:
        settings = load_settings()
    except SettingsError as error:
        for line in error.lines:
            print(f"configuration error: {line}", file=sys.stderr)
        return 2
    from bot.logs import setup_logging

    setup_logging(settings.log_level)
    from bot.app import StartupError, run_polling, run_webhook

    try:
        asyncio.run(run_webhook(settings) if settings.webhook_url else run_polling(settings))
    except StartupError as error:
        for line in error.lines:
            print(f"start-up error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a second Ctrl+C during shutdown
        logging.getLogger(__name__).warning("interrupted")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
