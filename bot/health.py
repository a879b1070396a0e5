"""Readiness: can this process do its job now? (Liveness is /healthz, which stays cheap.)"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from alembic.script import ScriptDirectory
from sqlalchemy import text

from bot.migrate import alembic_config
from bot.runtime import Runtime


@functools.cache
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config("sqlite://"))


def migration_heads() -> frozenset[str]:
    """The head revisions of the shipped migrations."""
    return frozenset(_script().get_heads())


@functools.cache
def known_revisions() -> frozenset[str]:
    """Every revision this version of the code ships."""
    return frozenset(s.revision for s in _script().walk_revisions())


def schema_state(current: set[str]) -> str:
    """head | behind (run `butler migrate`) | ahead (migrated by a newer release: fine while rolling)."""
    heads = migration_heads()
    if current == heads:
        return "head"
    if not current or current & known_revisions():
        return "behind"
    return "ahead"


async def check_database(rt: Runtime) -> tuple[bool, dict[str, Any]]:
    """The database answers and its schema is at this release's head (or a newer release's)."""
    try:
        async with rt.engine.connect() as conn:
            rows = await conn.execute(text("SELECT version_num FROM alembic_version"))
            current = {r[0] for r in rows}
    except Exception as exc:
        reason = "unreachable" if "alembic_version" not in str(exc) else "not migrated"
        return False, {"database": reason, "error": type(exc).__name__}
    state = schema_state(current)
    if state == "head":
        return True, {"database": "ok", "migrations": "head"}
    # "ahead": a newer release migrated first (expand/contract), and this process keeps serving.
    details = {"database": "ok", "migrations": state, "current": sorted(current)}
    return state == "ahead", {**details, "head": sorted(migration_heads())}


async def check_redis(url: str) -> bool:
    """Redis answers PING (a fresh short-lived connection, so a probe never shares a broken pool)."""
    from redis import asyncio as redis_asyncio

    client = redis_asyncio.from_url(url, socket_timeout=1.5, socket_connect_timeout=1.5)
    try:
        return bool(await client.ping())
    except Exception:
        return False
    finally:
        await client.aclose()


async def readiness(rt: Runtime, *, limit_seconds: float = 4.0) -> tuple[bool, dict[str, Any]]:
    """(ready, details): database reachable, migrations at head, Redis reachable when configured."""
    url = rt.settings.redis_url

    async def redis_ok() -> bool | None:
        return None if not url else await check_redis(url)

    try:
        (db_ok, details), r_ok = await asyncio.wait_for(
            asyncio.gather(check_database(rt), redis_ok()), limit_seconds
        )
    except TimeoutError:
        return False, {"status": "error", "error": "readiness checks timed out"}
    if r_ok is not None:
        details["redis"] = "ok" if r_ok else "unreachable"
    ready = db_ok and r_ok is not False
    return ready, {"status": "ok" if ready else "error", **details}
