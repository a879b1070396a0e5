"""Pooled PostgreSQL connections are tested before use only after idling, and replaced if dead."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import db
from tests.conftest import PG_URL, need

pytestmark = pytest.mark.integration


@pytest.fixture
async def engine() -> AsyncIterator[AsyncEngine]:
    """The product's engine on the test database, one pooled connection."""
    eng = db.make_engine(need(PG_URL, "BUTLER_TEST_DATABASE_URL"), pool_size=1)
    try:
        yield eng
    finally:
        await eng.dispose()


async def _backend_pid(eng: AsyncEngine) -> int:
    async with eng.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


def _count_pings(eng: AsyncEngine) -> list[object]:
    """Calls of the dialect's ping (what checkout runs for an idle connection)."""
    pings: list[object] = []
    real = eng.dialect.do_ping

    def counted(dbapi_conn: object) -> bool:
        pings.append(dbapi_conn)
        return real(dbapi_conn)

    eng.dialect.do_ping = counted  # type: ignore[method-assign]
    return pings


async def test_a_connection_in_use_a_moment_ago_is_not_pinged(engine: AsyncEngine) -> None:
    pings = _count_pings(engine)
    first = await _backend_pid(engine)
    for _ in range(5):
        assert await _backend_pid(engine) == first  # the same pooled connection, no reconnect
    assert pings == []


async def test_an_idle_connection_killed_meanwhile_is_replaced_before_use(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings = _count_pings(engine)
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.05)
    dead = await _backend_pid(engine)
    killer = db.make_engine(need(PG_URL, "BUTLER_TEST_DATABASE_URL"), pool_size=1)
    try:
        async with killer.connect() as conn:  # as a database restart or a firewall would
            assert (await conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": dead})).scalar_one()
    finally:
        await killer.dispose()
    await asyncio.sleep(0.1)
    invalidated: list[object] = []
    event.listen(engine.sync_engine, "invalidate", lambda *args: invalidated.append(args))
    fresh = await _backend_pid(engine)  # no error reaches the caller
    assert fresh != dead
    assert len(pings) == 1 and len(invalidated) == 1
