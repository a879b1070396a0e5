"""CPU per SQL statement through SQLAlchemy, by how the statement is built and run; route matching.

The inbound path runs 8-10 statements per message, so what one costs in Python decides much of the
web process's CPU. This runs the same single-row lookups and INSERTs on PostgreSQL in the ways the
code can write them:
  orm_built        session.scalar(select(Entity).where(...)) built per call (the old hot path)
  orm_prebuilt     the same statement built once, values as bindparams (bot.db.PerDialect)
  core_built       Connection.execute(select(columns).where(...)) built per call
  core_prebuilt    the same, built once
  raw_asyncpg      the driver alone (the floor)
  flush_insert     session.add(obj) + flush (the old add_message)
  insert_prebuilt  a prebuilt INSERT ... RETURNING id on the session's connection (add_message now)
and prints CPU microseconds per statement (this process's user + system time; it waits on the
database's round trip, which costs the database's CPU, not ours). Then it times Starlette's route
matching in Butler's app for the webhook, the web chat and a console path.

    flock /tmp/butler-bench.lock .venv/bin/python bench/statement_cost.py

A scratch table `bench_statement_cost` is created in --database-url and dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import Integer, String, bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


class _Base(DeclarativeBase):
    pass


class Row(_Base):
    """The scratch table."""

    __tablename__ = "bench_statement_cost"
    id: Mapped[int] = mapped_column(primary_key=True)
    a: Mapped[str] = mapped_column(String(50))
    b: Mapped[int] = mapped_column(Integer)


ROWS = 1000
ENTITY_BY_ID = select(Row).where(Row.id == bindparam("k"))
COLUMNS_BY_ID = select(Row.a, Row.b).where(Row.id == bindparam("k"))
INSERT_RETURNING = insert(Row).returning(Row.id)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    p.add_argument("--n", type=int, default=2000, help="statements per way (INSERTs: a quarter)")
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args(argv)
    if not args.database_url.startswith("postgresql+asyncpg://"):
        p.error("--database-url must be a postgresql+asyncpg:// URL")
    if args.n < 100:
        p.error("--n must be at least 100")
    return args


def cpu_seconds() -> float:
    """This process's CPU time so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def ways(engine: AsyncEngine, n: int) -> list[tuple[str, int, Callable[[], Awaitable[None]]]]:
    """Each way of running a statement, with how many statements it runs."""

    def key(i: int) -> int:
        return i % ROWS + 1

    async def orm_built() -> None:
        async with AsyncSession(engine) as s:
            for i in range(n):
                await s.scalar(select(Row).where(Row.id == key(i)))

    async def orm_prebuilt() -> None:
        async with AsyncSession(engine) as s:
            for i in range(n):
                await s.scalar(ENTITY_BY_ID, {"k": key(i)})

    async def core_built() -> None:
        async with engine.connect() as c:
            for i in range(n):
                (await c.execute(select(Row.a, Row.b).where(Row.id == key(i)))).first()

    async def core_prebuilt() -> None:
        async with engine.connect() as c:
            for i in range(n):
                (await c.execute(COLUMNS_BY_ID, {"k": key(i)})).first()

    async def raw_asyncpg() -> None:
        async with engine.connect() as c:
            raw = (await c.get_raw_connection()).driver_connection
            assert raw is not None
            for i in range(n):
                await raw.fetchrow("SELECT a, b FROM bench_statement_cost WHERE id = $1", key(i))

    async def flush_insert() -> None:
        async with AsyncSession(engine) as s:
            for i in range(n // 4):
                s.add(Row(a="new", b=i))
                await s.flush()
            await s.rollback()

    async def insert_prebuilt() -> None:
        async with AsyncSession(engine) as s:
            conn = await s.connection()
            for i in range(n // 4):
                (await conn.execute(INSERT_RETURNING, {"a": "new", "b": i})).scalar_one()
            await s.rollback()

    return [
        ("orm_built", n, orm_built),
        ("orm_prebuilt", n, orm_prebuilt),
        ("core_built", n, core_built),
        ("core_prebuilt", n, core_prebuilt),
        ("raw_asyncpg", n, raw_asyncpg),
        ("flush_insert", n // 4, flush_insert),
        ("insert_prebuilt", n // 4, insert_prebuilt),
    ]


async def statements(args: argparse.Namespace) -> None:
    """Time every way, --rounds times, in turn."""
    engine = create_async_engine(args.database_url)
    try:
        async with engine.begin() as c:
            await c.run_sync(_Base.metadata.drop_all)
            await c.run_sync(_Base.metadata.create_all)
            await c.execute(insert(Row), [{"a": f"row {i}", "b": i} for i in range(ROWS)])
        print(f"{'way':16} {'CPU us':>7} {'wall us':>8}   per statement, {args.rounds} round(s)", flush=True)
        for _round in range(args.rounds):
            for name, count, run in ways(engine, args.n):
                cpu, wall = cpu_seconds(), time.perf_counter()
                await run()
                cpu, wall = cpu_seconds() - cpu, time.perf_counter() - wall
                print(f"{name:16} {1e6 * cpu / count:7.0f} {1e6 * wall / count:8.0f}", flush=True)
    finally:
        async with engine.begin() as c:
            await c.run_sync(_Base.metadata.drop_all)
        await engine.dispose()


def routes() -> None:
    """Starlette matches routes in order: the cost of finding each hot path in Butler's app."""
    from starlette.routing import Match

    from bot.app import create_app
    from bot.settings import Settings

    settings = Settings(
        database_url="sqlite+aiosqlite:///:memory:",
        telegram_token="1:bench",
        telegram_mode="webhook",
        telegram_webhook_secret="s" * 32,
    )
    app = create_app(settings)
    print(f"{'route':28} {'us per match':>12}")
    for method, path in [
        ("POST", "/telegram/webhook"),
        ("POST", "/api/v1/webchat/messages"),
        ("GET", "/console/"),
    ]:
        scope = {"type": "http", "path": path, "method": method, "root_path": "", "headers": [], "app": app}
        n, started = 2000, time.perf_counter()
        for _ in range(n):
            for route in app.router.routes:
                if route.matches(scope)[0] == Match.FULL:
                    break
        print(f"{method + ' ' + path:28} {1e6 * (time.perf_counter() - started) / n:12.0f}")


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    args = parse_args(argv)
    try:
        import uvloop
    except ImportError:
        asyncio.run(statements(args))
    else:
        uvloop.run(statements(args))  # the loop Butler's processes run on
    routes()


if __name__ == "__main__":
    main()
