"""Shared fixtures: a migrated database (SQLite by default, PostgreSQL when configured), a runtime."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from bot.clock import FrozenClock
from bot.factory import build_runtime, close_runtime
from bot.migrate import upgrade_async
from bot.runtime import Runtime
from bot.settings import Settings

PG_URL = os.environ.get("BUTLER_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("BUTLER_TEST_REDIS_URL")
STRICT = os.environ.get("BUTLER_TEST_STRICT") == "1"


def need(value: str | None, what: str) -> str:
    """Skip (or fail under BUTLER_TEST_STRICT=1, as in CI) when an integration service is missing."""
    if not value:
        if STRICT:
            pytest.fail(f"{what} is required in strict mode")
        pytest.skip(f"{what} not configured")
    return value


async def make_pg_database(base_url: str) -> str:
    """Create a throw-away PostgreSQL database next to the configured one; returns its URL."""
    name = f"butler_t_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(base_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    await admin.dispose()
    return base_url.rsplit("/", 1)[0] + "/" + name


async def drop_pg_database(base_url: str, url: str) -> None:
    """Drop a database made by make_pg_database."""
    name = url.rsplit("/", 1)[1]
    admin = create_async_engine(base_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """Run a test on both databases (PostgreSQL only when configured)."""
    if request.param == "postgresql":
        need(PG_URL, "BUTLER_TEST_DATABASE_URL")
    return str(request.param)


@pytest.fixture
async def database_url(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """A freshly migrated database on the chosen backend."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'butler.db'}"
        await upgrade_async(url)
        yield url
        return
    assert PG_URL
    url = await make_pg_database(PG_URL)
    try:
        await upgrade_async(url)
        yield url
    finally:
        await drop_pg_database(PG_URL, url)


@pytest.fixture
def clock() -> FrozenClock:
    """A frozen clock at Monday 2026-11-02 09:00 UTC."""
    return FrozenClock()


def settings_for(database_url: str) -> Settings:
    """Settings for tests: the given database, no background workers, no Telegram, no Redis."""
    return Settings(
        database_url=database_url,
        run_workers=False,
        secret_key="test-secret",
        telegram_token=None,
        redis_url=None,
        kb_semantic="off",  # lexical matching: fast to build; semantic tests opt in
    )


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Settings for tests: the test database, no background workers."""
    return settings_for(database_url)


@pytest.fixture
async def rt(settings: Settings, clock: FrozenClock) -> AsyncIterator[Runtime]:
    """A runtime on the test database with the frozen clock."""
    runtime = build_runtime(settings, clock=clock)
    yield runtime
    await close_runtime(runtime)


@pytest.fixture
def anyio_backend() -> Iterator[str]:
    """Only asyncio."""
    yield "asyncio"


@pytest.fixture
async def live(settings: Settings) -> AsyncIterator[object]:
    """The real app behind uvicorn on the test database, with demo staff (password DEMO_PASSWORD)."""
    from tests.live import serve

    async with serve(settings) as server:
        yield server
