"""The bot's tables, as SQLAlchemy 2 declarative classes.

The migrations in ``services/storage/migrations`` create and upgrade exactly this
schema; a test compares the two. Times are stored in UTC and always read back as
aware ``datetime`` objects (SQLite keeps them as naive UTC text, PostgreSQL as
``timestamptz``). No photo, file id or message text is ever stored.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    TypeDecorator,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC ``datetime`` on every backend; naive values are refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware datetime (UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# The longest spec id ``users.spec`` holds (a ``services.specs`` id, e.g. "us-passport").
SPEC_LENGTH = 64

# A 64-bit key that still autoincrements on SQLite (only INTEGER PRIMARY KEY does).
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    """A Telegram user who chose settings. ``id`` is the Telegram user id."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    locale: Mapped[str | None] = mapped_column(String(16))
    created: Mapped[datetime] = mapped_column(UtcDateTime())
    # 0003: the document the user's photos are checked for (a ``services.specs`` id);
    # None: the generic check.
    spec: Mapped[str | None] = mapped_column(String(SPEC_LENGTH))


class QuotaCounter(Base):
    """Units taken per user, operation and quota day: committed calls plus open reservations."""

    __tablename__ = "quota_counters"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    operation: Mapped[str] = mapped_column(String(16), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    used: Mapped[int] = mapped_column(Integer, default=0)


class Reservation(Base):
    """One unit taken before a provider call.

    ``state`` is ``pending`` until the call ends (the row is then deleted) or until
    ``expires_at`` passes and a sweep gives the unit back (``expired``); ``spent`` once a
    cloud call of the request charged and the request goes on to the local fallback (the
    unit is kept however it ends; past ``expires_at`` it becomes ``lapsed``, still kept).
    """

    __tablename__ = "reservations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger)
    operation: Mapped[str] = mapped_column(String(16))
    provider: Mapped[str] = mapped_column(String(32))
    day: Mapped[date] = mapped_column(Date)
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(8), default="pending")
    created: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (
        Index(None, "user_id", "operation", "state"),
        # 0002: the global sweep of reservations left by crashed processes.
        Index(None, "state", "expires_at"),
    )


# A provider's code as stored (usage records, budgets): Huawei's ``error_code`` and JD's
# ``status`` are free text, so a longer one is cut here rather than refused by the column.
CODE_LENGTH = 255


class UsageRecord(Base):
    """One finished provider call: who, what, which provider, its code and whether it cost."""

    __tablename__ = "usage"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigInteger)
    operation: Mapped[str] = mapped_column(String(16))
    provider: Mapped[str] = mapped_column(String(32))
    # None: the call succeeded. 0004: String(32) before.
    code: Mapped[str | None] = mapped_column(String(CODE_LENGTH))
    charged: Mapped[bool] = mapped_column(Boolean)
    # 0005: the call was sent and its outcome never came back (a timeout): the provider may
    # have billed it, so the budget counts it; ``charged`` says whether the user paid a unit.
    unknown: Mapped[bool] = mapped_column(Boolean, server_default=false())
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (
        # 0002: /stats reads one day, /forget one user.
        Index(None, "at"),
        Index(None, "user_id"),
    )


class ProviderBudget(Base):
    """What a provider last said about its own budget, and whether we may call it now."""

    __tablename__ = "provider_budgets"

    provider: Mapped[str] = mapped_column(String(32), primary_key=True)
    remain: Mapped[int | None] = mapped_column(Integer)  # calls left until resets_at
    remain_times: Mapped[int | None] = mapped_column(Integer)  # calls left in the package
    resets_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    spent: Mapped[bool] = mapped_column(Boolean, default=False)  # until an operator clears it
    spent_code: Mapped[str | None] = mapped_column(String(CODE_LENGTH))  # 0004: String(32)
    backoff_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    backoff_code: Mapped[str | None] = mapped_column(String(CODE_LENGTH))  # 0004: String(32)
    # 0005: the most calls known to remain since the last top-up (what a percentage alert
    # is of), and the last budget alert sent to the admins (``services.alerts``).
    high_water: Mapped[int | None] = mapped_column(Integer)
    alerted: Mapped[str | None] = mapped_column(String(8))
    updated: Mapped[datetime] = mapped_column(UtcDateTime())
