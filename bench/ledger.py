"""The ledger's reserve-and-commit throughput on SQLite and PostgreSQL.

One ledger operation is what every bot call costs the store: ``reserve`` (one
transaction: expiry sweep, conditional upsert, reservation row) then
``commit(charged=True)`` (one transaction: delete the reservation, usage record).
N users call concurrently, each on its own connection. The baselines run on the
same engine, with the same concurrency, in the same run:

- ``SELECT 1``: one round trip in a transaction (``Database.run``), no write;
- ``INSERT``: one transaction inserting one usage row, the cheapest durable write.

The ratio ``ledger / INSERT`` is ledger operations per second over INSERTs per
second: how many one-row write transactions one reserve-and-commit is worth.

    python -m bench.ledger [--ops 2000] [--users 1,10,50] [--json results.json]

PostgreSQL is ``--postgres`` (default the local server, database ``test``); the bench
works in a schema of its own and drops it. Without a server it reports SQLite only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url

from services.ledger import Ledger
from services.models import Operation
from services.storage.db import Database, open_database
from services.storage.tables import UsageRecord

DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


async def measure(ops: int, users: int, one: Callable[[int], Awaitable[Any]]) -> float:
    """Operations per second: ``users`` workers share ``ops`` calls of ``one(user)``."""
    share = [ops // users + (1 if i < ops % users else 0) for i in range(users)]

    async def worker(user: int, count: int) -> None:
        for _ in range(count):
            await one(user)

    started = time.perf_counter()
    await asyncio.gather(*(worker(1_000_000 + i, n) for i, n in enumerate(share)))
    return ops / (time.perf_counter() - started)


async def bench_backend(
    name: str, url: str, options: dict[str, Any], ops: int, users: list[int]
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for n in users:
        database = await open_database(
            url, pool_size=max(5, n), max_overflow=0, pool_timeout=120, **options
        )
        try:
            rows.append(await bench_one(name, database, ops, n))
        finally:
            await database.close()
    return rows


async def bench_one(name: str, database: Database, ops: int, users: int) -> dict[str, Any]:
    ledger = Ledger(database, daily_limit=0)  # no limit: every call goes through

    async def ledger_op(user: int) -> None:
        reservation = await ledger.reserve(user, Operation.CHECK, "bench", admin=False)
        await ledger.commit(reservation, charged=True, latency_ms=1)

    async def select_one(_user: int) -> None:
        def work(connection: Connection) -> None:
            connection.execute(text("SELECT 1"))

        await database.run(work)

    async def insert_one(user: int) -> None:
        def work(connection: Connection) -> None:
            connection.execute(
                UsageRecord.__table__.insert().values(  # type: ignore[attr-defined]
                    user_id=user,
                    operation="check",
                    provider="baseline",
                    code=None,
                    charged=True,
                    latency_ms=1,
                    at=datetime.now(UTC),
                )
            )

        await database.run(work)

    warm = max(users, 20)
    for one in (select_one, insert_one, ledger_op):  # connections opened, caches warm
        await measure(warm, users, one)
    select_rate = await measure(ops, users, select_one)
    insert_rate = await measure(ops, users, insert_one)
    ledger_rate = await measure(ops, users, ledger_op)
    return {
        "backend": name,
        "users": users,
        "ops": ops,
        "ledger_ops_per_s": round(ledger_rate, 1),
        "select1_per_s": round(select_rate, 1),
        "insert_per_s": round(insert_rate, 1),
        "ledger_vs_insert": round(ledger_rate / insert_rate, 3),
        "ledger_vs_select1": round(ledger_rate / select_rate, 3),
    }


async def postgres_schema(url: str, stack: AsyncExitStack) -> dict[str, Any] | str:
    """Engine options for a fresh schema (dropped on exit), or why PostgreSQL is unusable."""
    import asyncpg

    parsed = make_url(url)
    try:
        admin = await asyncio.wait_for(
            asyncpg.connect(
                host=parsed.host,
                port=parsed.port or 5432,
                user=parsed.username,
                password=parsed.password,
                database=parsed.database,
            ),
            timeout=5,
        )
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE SCHEMA "{schema}"')

    async def drop() -> None:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()

    stack.push_async_callback(drop)
    return {"connect_args": {"server_settings": {"search_path": schema}}}


def table(rows: list[dict[str, Any]]) -> str:
    header = (
        f"{'backend':<11}{'users':>6}{'ledger op/s':>13}{'SELECT 1/s':>12}"
        f"{'INSERT/s':>11}{'ledger/INSERT':>15}{'ledger/SELECT 1':>17}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row['backend']:<11}{row['users']:>6}{row['ledger_ops_per_s']:>13.0f}"
            f"{row['select1_per_s']:>12.0f}{row['insert_per_s']:>11.0f}"
            f"{row['ledger_vs_insert']:>15.2f}{row['ledger_vs_select1']:>17.2f}"
        )
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=2000, help="operations per measurement")
    parser.add_argument("--users", default="1,10,50", help="concurrent users, comma-separated")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="'' to skip PostgreSQL")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    users = [int(n) for n in args.users.split(",") if n.strip()]

    rows: list[dict[str, Any]] = []
    async with AsyncExitStack() as stack:
        folder = stack.enter_context(tempfile.TemporaryDirectory())
        for n in users:
            url = f"sqlite+aiosqlite:///{folder}/ledger-{n}.db"
            rows += await bench_backend("sqlite", url, {}, args.ops, [n])
        if args.postgres:
            options = await postgres_schema(args.postgres, stack)
            if isinstance(options, str):
                print(f"PostgreSQL skipped: {options}")
            else:
                rows += await bench_backend("postgresql", args.postgres, options, args.ops, users)

    print(
        f"reserve + commit(charged) per operation, {args.ops} operations per row; "
        "baselines on the same engine in the same run"
    )
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
