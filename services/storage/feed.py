"""``RedisChangeFeed``: which user's preferences changed, told to every process over Redis.

Processes sharing one database each hold the stored choices in memory
(``services.prefs.CachedPreferences``); a change made by one is announced on a Redis
channel and read again from the database by the others. Redis delivers a message only
to the subscribers connected at that moment, so a process that lost its subscription
stops trusting its memory at once and reloads everything once it listens again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

CHANNEL = "facecheck:preferences"
CONFIRM_SECONDS = 5.0
RETRY_SECONDS = (0.5, 30.0)  # the first wait before subscribing again, and the longest
# A silent connection (a peer gone without a reset) is found by a PING this often.
HEALTH_SECONDS = 15.0


class RedisChangeFeed:
    def __init__(self, url: str, channel: str = CHANNEL) -> None:
        # No silent retries: redis-py would reconnect and subscribe again by itself, and
        # what was announced in between would be lost without anyone knowing.
        self.client = redis.Redis.from_url(
            url,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=HEALTH_SECONDS,
            socket_keepalive=True,
        )
        self.channel = channel

    async def announce(self, user_id: int) -> None:
        try:
            await self.client.publish(self.channel, str(user_id))
        except RedisError as error:
            # The database has the change; a process that missed it lost its
            # subscription too (the same Redis) and reloads when it is back.
            log.warning("could not announce a preference change: %s", error)

    async def follow(
        self,
        ready: Callable[[], Awaitable[None]],
        changed: Callable[[int], Awaitable[None]],
        lost: Callable[[], None],
    ) -> None:
        """Listen until cancelled. The first subscription's failure is raised (the bot is
        starting and should say so); later ones are retried with a growing wait."""
        wait, longest = RETRY_SECONDS
        listened = False
        while True:
            pubsub = self.client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                await self._confirmed(pubsub)
                await ready()
                listened, wait = True, RETRY_SECONDS[0]
                while True:
                    message = await pubsub.get_message(timeout=HEALTH_SECONDS)
                    if message is not None and message.get("type") == "message":
                        await self._changed(changed, message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as error:
                lost()
                if not listened:
                    raise
                log.warning("preference changes not followed (%s); again in %.1f s", error, wait)
                await asyncio.sleep(wait)
                wait = min(wait * 2, longest)
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    @staticmethod
    async def _changed(changed: Callable[[int], Awaitable[None]], data: bytes) -> None:
        try:
            user_id = int(data)
        except ValueError:
            log.warning("not a user id on the preferences channel: %r", data[:40])
            return
        await changed(user_id)

    @staticmethod
    async def _confirmed(pubsub: redis.client.PubSub) -> None:
        """Wait for Redis to confirm the subscription: every announcement after it arrives."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CONFIRM_SECONDS
        while loop.time() < deadline:
            message = await pubsub.get_message(timeout=max(0.0, deadline - loop.time()))
            if message is not None and message.get("type") == "subscribe":
                return
        raise TimeoutError(f"Redis did not confirm the subscription in {CONFIRM_SECONDS:.0f} s")

    async def close(self) -> None:
        await self.client.aclose()
