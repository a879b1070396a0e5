"""/readyz: database reachable, migrations at head, Redis reachable when configured; /healthz stays cheap."""

from __future__ import annotations

import httpx
from sqlalchemy import text

from bot.app import create_app
from bot.health import migration_heads
from bot.settings import Settings
from tests.conftest import REDIS_URL, need
from tests.ops.conftest import serve_app


async def test_ready_when_migrated(settings: Settings) -> None:
    async with serve_app(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        r = await client.get("/readyz")
        assert r.status_code == 200
        assert r.json() == {"status": "ok", "database": "ok", "migrations": "head"}


async def test_not_ready_while_migrations_are_behind(settings: Settings) -> None:
    app = create_app(settings)
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url) as client:
        async with app.state.rt.engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = '0001'"))
        r = await client.get("/readyz")
        assert r.status_code == 503
        body = r.json()
        assert body["status"] == "error" and body["migrations"] == "behind"
        assert body["current"] == ["0001"] and body["head"] == sorted(migration_heads())
        assert (await client.get("/healthz")).status_code == 200  # alive, just not ready
        # A newer release migrated first (expand/contract): this process keeps serving meanwhile.
        async with app.state.rt.engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = '9999_next_release'"))
        r = await client.get("/readyz")
        assert r.status_code == 200 and r.json()["migrations"] == "ahead"
        async with app.state.rt.engine.begin() as conn:
            await conn.execute(
                text("UPDATE alembic_version SET version_num = :v"), {"v": max(migration_heads())}
            )
        assert (await client.get("/readyz")).json()["migrations"] == "head"


async def test_not_ready_without_schema(tmp_path: object) -> None:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/empty.db", run_workers=False, kb_semantic="off"
    )
    from bot.factory import build_runtime, close_runtime
    from bot.health import readiness

    rt = build_runtime(settings)
    try:
        ready, details = await readiness(rt)
    finally:
        await close_runtime(rt)
    assert not ready and details["database"] == "not migrated"


async def test_unreachable_redis_fails_readiness_unless_optional(settings: Settings) -> None:
    settings.redis_url = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    async with serve_app(create_app(settings)) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        r = await client.get("/readyz")
        assert r.status_code == 503 and r.json()["redis"] == "unreachable"
        r = await client.get("/readyz", params={"redis": "optional"})
        assert r.status_code == 200 and r.json()["redis"] == "unreachable"
        assert (await client.get("/healthz")).status_code == 200


async def test_reachable_redis_is_reported(settings: Settings) -> None:
    settings.redis_url = need(REDIS_URL, "BUTLER_TEST_REDIS_URL")
    async with serve_app(create_app(settings)) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        r = await client.get("/readyz")
        assert r.status_code == 200 and r.json()["redis"] == "ok"
