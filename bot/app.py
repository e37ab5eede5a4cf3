"""Assembling the bot: one place that builds everything and hands it to the handlers."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from html import escape

from aiogram import Bot, Dispatcher, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramRetryAfter
from aiogram.fsm.storage.base import BaseStorage
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.types import BotCommand, ErrorEvent
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from bot.alerts import AdminNotifier
from bot.config import Settings
from bot.flows import FlowTimers
from bot.handlers import routers
from bot.i18n import LOCALES, LocaleMiddleware, create_i18n
from bot.middlewares.album import AlbumMiddleware
from bot.middlewares.caller import CallerMiddleware
from bot.middlewares.context import ContextValue
from bot.middlewares.inflight import InFlightMiddleware
from bot.middlewares.metrics import MetricsMiddleware
from bot.monitor import Health, add_health, start_monitor
from bot.operations import MAKE_KEEPER, MakeKeeper
from bot.pacing import Pacing
from bot.presses import Presses
from bot.session import ApiSession, ChatPacer, FloodWait
from services.models import Operation
from services.prefs import CachedPreferences, MemoryPreferences, Preferences
from services.storage.feed import RedisChangeFeed
from services.storage.prefs import DbPreferences
from services.wiring import Services

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 30.0


def create_bot(settings: Settings, *, pace_chats: bool = True) -> Bot:
    """The Bot API client: sends into one chat paced (``pace_chats``), a 429 waited out."""
    server = TelegramAPIServer.from_base(
        settings.telegram_api_url, is_local=settings.telegram_api_local
    )
    session = ApiSession(api=server)
    if pace_chats:
        session.middleware(ChatPacer())  # outside FloodWait: a send retried takes no token
    session.middleware(FloodWait())
    return Bot(
        token=settings.bot_token.get_secret_value(),
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML),
    )


def create_dispatcher(
    settings: Settings,
    services: Services,
    *,
    preferences: Preferences | None = None,
    storage: BaseStorage | None = None,
) -> Dispatcher:
    """The dispatcher with its middlewares, routers and injected services."""
    if preferences is None:
        preferences = create_preferences(settings, services)
    i18n = create_i18n(settings.default_locale)
    dispatcher = Dispatcher(storage=storage)
    dispatcher["services"] = services
    dispatcher["preferences"] = preferences
    dispatcher["settings"] = settings
    dispatcher["i18n"] = i18n
    dispatcher["timers"] = FlowTimers(settings.flow_timeout, i18n)

    dispatcher["presses"] = Presses(dispatcher.storage, 2 * settings.flow_timeout)
    keeper = MakeKeeper(dispatcher.storage)
    dispatcher["make_keeper"] = keeper
    # First of the bot's own: every update is counted, whatever a later one does with it.
    dispatcher.update.outer_middleware(MetricsMiddleware())
    dispatcher.update.outer_middleware(ContextValue(MAKE_KEEPER, keeper))

    inflight = InFlightMiddleware()
    dispatcher.update.outer_middleware(inflight)
    dispatcher["inflight"] = inflight
    dispatcher.update.outer_middleware(CallerMiddleware(settings.admin_ids))
    Pacing.create(settings, dispatcher.storage).setup(dispatcher)
    LocaleMiddleware(i18n, preferences).setup(dispatcher)
    dispatcher.message.outer_middleware(AlbumMiddleware())

    root = Router(name="root")
    root.include_routers(*routers())
    dispatcher.include_router(root)
    dispatcher.errors.register(on_error)
    dispatcher.startup.register(on_startup)
    dispatcher.shutdown.register(on_shutdown)
    return dispatcher


def create_preferences(settings: Settings, services: Services) -> Preferences:
    """The users' choices: in the database, held in memory where every change reaches it.

    With ``REDIS_URL`` each process hears the others' changes; with long polling there
    is no other process (Telegram lets one poll a token). Webhook processes without
    Redis read the database on every update, since another process may have written.
    """
    if services.database is None:
        return MemoryPreferences()
    stored = DbPreferences(services.database)
    if settings.redis_url:
        return CachedPreferences(stored, RedisChangeFeed(settings.redis_url))
    if not settings.webhook_url:
        return CachedPreferences(stored)
    return stored


async def on_error(event: ErrorEvent, i18n: I18n | None = None) -> bool:
    """Anything unexpected: log it with the update id, tell the user, keep serving others."""
    update = event.update
    log.error("update %s failed", update.update_id, exc_info=event.exception)
    message = update.message or (update.callback_query.message if update.callback_query else None)
    answer = getattr(message, "answer", None)
    if answer is None:
        return True
    try:
        await answer(escape(_("error.internal")))
    except Exception:  # the reply itself failed; the log already has the cause
        log.warning("could not tell the user about update %s", update.update_id)
    return True


async def on_startup(
    bot: Bot, i18n: I18n, services: Services, preferences: Preferences, settings: Settings
) -> None:
    await services.start()
    if services.alerts is not None:
        services.alerts.notify = AdminNotifier(bot, settings.admin_ids, i18n, preferences)
    if isinstance(preferences, CachedPreferences):
        try:
            await preferences.start()
        except Exception as error:  # Redis or the database, unreachable or refusing
            await services.close()
            raise StartupError([f"preferences: cannot load or follow them: {error}"]) from error
    me = await bot.get_me()
    log.info("bot @%s (id %s) started", me.username, me.id)
    await set_commands(bot, i18n)
    settle_heap()


def settle_heap() -> None:
    """Keep the garbage collector off what start-up built (modules, schemas, catalogues:
    about 270,000 objects that live as long as the process). A full collection walks
    every tracked object: 165 ms here, paid again and again under load, when updates
    only need their own few thousand objects looked at."""
    gc.collect()
    gc.freeze()


async def set_commands(bot: Bot, i18n: I18n) -> None:
    """The command menu in every catalogue language, English as the default."""
    for locale in LOCALES:
        with i18n.context(), i18n.use_locale(locale):
            commands = [
                BotCommand(command="check", description=_("command.check")),
                BotCommand(command="spec", description=_("command.spec")),
                BotCommand(command="compare", description=_("command.compare")),
                BotCommand(command="faces", description=_("command.faces")),
                BotCommand(command="analyze", description=_("command.analyze")),
                BotCommand(command="quota", description=_("command.quota")),
                BotCommand(command="lang", description=_("command.lang")),
                BotCommand(command="help", description=_("command.help")),
                BotCommand(command="cancel", description=_("command.cancel")),
                BotCommand(command="forget", description=_("command.forget")),
            ]
        language = None if locale == "en" else locale.split("_")[0]
        await bot.set_my_commands(commands, language_code=language)


async def on_shutdown(
    inflight: InFlightMiddleware,
    services: Services,
    timers: FlowTimers,
    preferences: Preferences,
) -> None:
    """Let the requests in flight finish (bounded), then close the provider sessions."""
    if inflight.count:
        log.info("waiting for %d request(s) in flight", inflight.count)
        if not await inflight.wait_idle(SHUTDOWN_GRACE_SECONDS):
            log.warning("%d request(s) still running at shutdown", inflight.count)
    await timers.close()
    if isinstance(preferences, CachedPreferences):
        await preferences.close()
    await services.close()
    log.info("stopped")


def create_storage(settings: Settings) -> BaseStorage:
    """FSM state in Redis when ``REDIS_URL`` is set (restarts, several processes), else memory.

    Nothing kept there outlives ``FLOW_TIMEOUT`` (a waiting flow, a check reply's "Make"
    data), so Redis lets every key go after twice that, whichever process wrote it.
    """
    if settings.redis_url:
        from bot.storage import redis_storage

        return redis_storage(settings.redis_url, max(60, round(2 * settings.flow_timeout)))
    return MemoryStorage()


class StartupError(RuntimeError):
    """The bot cannot serve as configured; ``lines`` say why, one problem each."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("; ".join(lines))
        self.lines = lines


async def open_services(settings: Settings) -> Services:
    """The services, or ``StartupError`` when a chosen provider cannot work (the offline
    engine without its model files): better a clear line at start than a bot that answers
    every photo with "unavailable"."""
    warn_unlimited(settings)
    services = await Services.open(settings)
    problems = services.unavailable()
    if problems:
        await services.close()
        raise StartupError(problems)
    return services


def warn_unlimited(settings: Settings) -> None:
    """A paid provider with no daily limit per user: one user can spend the whole budget.
    Allowed (an operator may pace users some other way), but never unnoticed."""
    if settings.user_daily_limit:
        return
    paid = sorted({settings.provider_for(operation) for operation in Operation} - {"local"})
    if paid:
        log.warning(
            "USER_DAILY_LIMIT=0 with the paid provider(s) %s: any one user may spend their "
            "whole budget; set USER_DAILY_LIMIT to a number of calls a day per user",
            ", ".join(paid),
        )


async def run_webhook(settings: Settings) -> None:
    """Serve Telegram's webhook calls; several such processes may share one URL behind a
    load balancer, since quotas and (with ``REDIS_URL``) conversation state are shared."""
    from urllib.parse import urlsplit

    from aiogram.webhook.aiohttp_server import setup_application
    from aiohttp import web

    from bot.webhook import WebhookHandler

    services = await open_services(settings)
    storage = create_storage(settings)
    bot = create_bot(settings)
    dispatcher = create_dispatcher(settings, services, storage=storage)
    secret = settings.webhook_secret.get_secret_value()  # required: ``Settings.webhook_problems``
    path = urlsplit(settings.webhook_url).path or "/"

    async def register_webhook(bot: Bot) -> None:
        """Every worker makes sure the webhook points here; Telegram allows one change a
        second, so workers starting together wait their turn instead of failing."""
        for attempt in range(5):
            try:
                await bot.set_webhook(
                    settings.webhook_url,
                    secret_token=secret,
                    allowed_updates=dispatcher.resolve_used_update_types(),
                )
                return
            except TelegramRetryAfter as error:
                if attempt == 4:
                    raise
                await asyncio.sleep(error.retry_after)

    dispatcher.startup.register(register_webhook)
    health = Health.for_services(services, storage)
    monitor = await start_monitor(settings, services, health)
    app = web.Application()
    add_health(app, health)
    WebhookHandler(dispatcher, bot, secret_token=secret).register(app, path=path)
    setup_application(app, dispatcher, bot=bot)
    runner = web.AppRunner(app)
    await runner.setup()
    host, port = settings.listen_address
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info("webhook server listening on %s:%s%s", host, port, path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("stopping the webhook server")
        await runner.cleanup()  # stops accepting, runs the shutdown handlers
        if monitor is not None:
            await monitor.stop()
        await health.close()
        await storage.close()


async def run_polling(settings: Settings) -> None:
    services = await open_services(settings)
    storage = create_storage(settings)
    bot = create_bot(settings)
    dispatcher = create_dispatcher(settings, services, storage=storage)
    health = Health.for_services(services, storage)
    monitor = await start_monitor(settings, services, health)
    try:
        await bot.delete_webhook(drop_pending_updates=False)
        await dispatcher.start_polling(bot, handle_signals=True, close_bot_session=True)
    except StartupError:
        await bot.session.close()  # aiogram closes it on shutdown, and there was none
        raise
    finally:
        if monitor is not None:
            await monitor.stop()
        await health.close()
        await storage.close()
