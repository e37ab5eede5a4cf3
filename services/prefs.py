"""Per-user preferences: the chosen language and the chosen document spec.

The bot keeps them in the database (``services.storage.prefs.DbPreferences``), read
through ``CachedPreferences``, which holds every stored choice in memory so that the
language lookup every update makes costs no round trip. ``MemoryPreferences`` is the
same shape for a bot or a script without storage. A spec is a ``services.specs`` id
(``"us-passport"``); None means the generic check, and ``set_spec(user, None)`` goes
back to it. Setting one never changes the other; ``forget`` drops both.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)


class Preferences(Protocol):
    async def get_locale(self, user_id: int) -> str | None: ...

    async def set_locale(self, user_id: int, locale: str) -> None: ...

    async def get_spec(self, user_id: int) -> str | None: ...

    async def set_spec(self, user_id: int, spec: str | None) -> None: ...

    async def forget(self, user_id: int) -> None: ...


@dataclass(frozen=True, slots=True)
class Choices:
    """What one user chose; None where they chose nothing."""

    locale: str | None = None
    spec: str | None = None


class StoredPreferences(Preferences, Protocol):
    """Preferences a cache can be filled from: every user's choices, or one user's."""

    async def load(self) -> dict[int, Choices]: ...

    async def choices(self, user_id: int) -> Choices: ...


class ChangeFeed(Protocol):
    """Tells every process sharing the store which user's choices changed.

    ``follow`` runs until cancelled, reconnecting as needed: each time it is listening
    (again) it awaits ``ready`` (changes made while it was not listening are lost, so the
    follower reloads), then ``changed`` for each user id announced, its own announcements
    included; when it loses touch it calls ``lost`` first.
    """

    async def announce(self, user_id: int) -> None: ...

    async def follow(
        self,
        ready: Callable[[], Awaitable[None]],
        changed: Callable[[int], Awaitable[None]],
        lost: Callable[[], None],
    ) -> None: ...

    async def close(self) -> None: ...


class MemoryPreferences:
    def __init__(self) -> None:
        self._locales: dict[int, str] = {}
        self._specs: dict[int, str] = {}

    async def get_locale(self, user_id: int) -> str | None:
        return self._locales.get(user_id)

    async def set_locale(self, user_id: int, locale: str) -> None:
        self._locales[user_id] = locale

    async def get_spec(self, user_id: int) -> str | None:
        return self._specs.get(user_id)

    async def set_spec(self, user_id: int, spec: str | None) -> None:
        if spec is None:
            self._specs.pop(user_id, None)
        else:
            self._specs[user_id] = spec

    async def forget(self, user_id: int) -> None:
        self._locales.pop(user_id, None)
        self._specs.pop(user_id, None)


class CachedPreferences:
    """``StoredPreferences`` with every stored choice held in memory.

    Reads are dictionary lookups once ``start`` has loaded the store; before that, and
    while a feed is out of touch, they go to the store. A write goes to the store, then
    to memory, then to the feed. Correct only when every change reaches it: its own
    writes do; another process's arrive through ``feed`` (each announced user is read
    again from the store). Without a feed this must be the only process writing, as a
    long-polling bot is: Telegram lets one process poll a token.

    Memory: one entry per user who chose something, none for the rest.
    """

    def __init__(self, store: StoredPreferences, feed: ChangeFeed | None = None) -> None:
        self.store = store
        self.feed = feed
        self._choices: dict[int, Choices] = {}
        self._ready = False
        self._lock = asyncio.Lock()  # one store-then-memory step at a time
        self._following: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Load the store; with a feed, once it listens (and again whenever it reconnects)."""
        if self.feed is None:
            await self._reload()
            return
        loaded = asyncio.Event()

        async def ready() -> None:
            await self._reload()
            loaded.set()

        self._following = asyncio.create_task(self.feed.follow(ready, self._refresh, self._lost))
        waiting = asyncio.create_task(loaded.wait())
        await asyncio.wait({waiting, self._following}, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if self._following.done():
            self._following.result()  # the feed could not start: say why

    async def close(self) -> None:
        self._ready = False
        if self._following is not None:
            self._following.cancel()
            await asyncio.gather(self._following, return_exceptions=True)
            self._following = None
        if self.feed is not None:
            await self.feed.close()

    async def _reload(self) -> None:
        async with self._lock:
            loaded = await self.store.load()
            self._choices = {user: c for user, c in loaded.items() if c != _NONE}
            self._ready = True
        log.info("preferences: the choices of %d users loaded", len(self._choices))

    def _lost(self) -> None:
        self._ready = False

    async def _refresh(self, user_id: int) -> None:
        async with self._lock:
            self._keep(user_id, await self.store.choices(user_id))

    def _keep(self, user_id: int, choices: Choices) -> None:
        if choices == _NONE:
            self._choices.pop(user_id, None)
        else:
            self._choices[user_id] = choices

    async def get_locale(self, user_id: int) -> str | None:
        if not self._ready:
            return await self.store.get_locale(user_id)
        return self._choices.get(user_id, _NONE).locale

    async def get_spec(self, user_id: int) -> str | None:
        if not self._ready:
            return await self.store.get_spec(user_id)
        return self._choices.get(user_id, _NONE).spec

    async def set_locale(self, user_id: int, locale: str) -> None:
        async with self._lock:
            await self.store.set_locale(user_id, locale)
            self._keep(user_id, Choices(locale, self._choices.get(user_id, _NONE).spec))
        await self._announce(user_id)

    async def set_spec(self, user_id: int, spec: str | None) -> None:
        async with self._lock:
            await self.store.set_spec(user_id, spec)
            self._keep(user_id, Choices(self._choices.get(user_id, _NONE).locale, spec))
        await self._announce(user_id)

    async def forget(self, user_id: int) -> None:
        async with self._lock:
            await self.store.forget(user_id)
            self._keep(user_id, _NONE)
        await self._announce(user_id)

    async def _announce(self, user_id: int) -> None:
        if self.feed is not None:
            await self.feed.announce(user_id)


_NONE = Choices()
