"""``DbPreferences``: the ``Preferences`` protocol kept in the ``users`` table.

Each call is one statement: a read, an upsert that changes only its own column (a new
user's other setting starts empty), to clear the spec an update that creates no row, or
the delete of ``forget``. ``load`` reads every user who chose something, for
``services.prefs.CachedPreferences``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Connection, Table, delete, or_, select, update

from services.prefs import Choices
from services.storage import tables
from services.storage.db import Database, upsert

_USERS: Table = tables.User.__table__  # type: ignore[assignment]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class DbPreferences:
    """Users' settings in the database, so they survive restarts and are shared by processes."""

    def __init__(self, database: Database, *, clock: Callable[[], datetime] = _utc_now) -> None:
        self.database = database
        self.clock = clock

    async def get_locale(self, user_id: int) -> str | None:
        return await self.database.read(
            lambda connection: connection.execute(
                select(_USERS.c.locale).where(_USERS.c.id == user_id)
            ).scalar_one_or_none()
        )

    async def set_locale(self, user_id: int, locale: str) -> None:
        def work(connection: Connection) -> None:
            statement = upsert(connection, _USERS).values(
                id=user_id, locale=locale, created=self.clock()
            )
            connection.execute(
                statement.on_conflict_do_update(
                    index_elements=[_USERS.c.id], set_={"locale": statement.excluded.locale}
                )
            )

        await self.database.run(work)

    async def get_spec(self, user_id: int) -> str | None:
        return await self.database.read(
            lambda connection: connection.execute(
                select(_USERS.c.spec).where(_USERS.c.id == user_id)
            ).scalar_one_or_none()
        )

    async def set_spec(self, user_id: int, spec: str | None) -> None:
        if spec is not None and len(spec) > tables.SPEC_LENGTH:
            # PostgreSQL would refuse it and SQLite keep it: refuse it on both.
            raise ValueError(f"spec id longer than {tables.SPEC_LENGTH} characters: {spec[:80]!r}")

        def work(connection: Connection) -> None:
            if spec is None:
                # Back to the generic check: nothing to store for a user we do not know.
                connection.execute(update(_USERS).where(_USERS.c.id == user_id).values(spec=None))
                return
            statement = upsert(connection, _USERS).values(
                id=user_id, spec=spec, created=self.clock()
            )
            connection.execute(
                statement.on_conflict_do_update(
                    index_elements=[_USERS.c.id], set_={"spec": statement.excluded.spec}
                )
            )

        await self.database.run(work)

    async def forget(self, user_id: int) -> None:
        def work(connection: Connection) -> None:
            connection.execute(delete(_USERS).where(_USERS.c.id == user_id))

        await self.database.run(work)

    async def load(self) -> dict[int, Choices]:
        users = _USERS.c

        def work(connection: Connection) -> dict[int, Choices]:
            result = connection.execute(
                select(users.id, users.locale, users.spec).where(
                    or_(users.locale.is_not(None), users.spec.is_not(None))
                )
            )
            return {row.id: Choices(row.locale, row.spec) for row in result}

        return await self.database.read(work)

    async def choices(self, user_id: int) -> Choices:
        users = _USERS.c

        def work(connection: Connection) -> Choices:
            row = connection.execute(
                select(users.locale, users.spec).where(users.id == user_id)
            ).first()
            return Choices() if row is None else Choices(row.locale, row.spec)

        return await self.database.read(work)
