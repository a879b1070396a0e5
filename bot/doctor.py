"""`butler doctor`: checks the setup and explains problems in plain words."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from sqlalchemy import text

from bot.db import make_engine
from bot.settings import Settings


@dataclass(frozen=True)
class Check:
    """One check's outcome."""

    name: str
    status: str  # ok | warn | fail
    detail: str


async def check_database(settings: Settings) -> Check:
    """Can we connect, and is the schema migrated?"""
    engine = make_engine(settings.database_url)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            try:
                version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
            except Exception:
                return Check("database", "fail", "reachable but not migrated: run `butler migrate`")
        return Check("database", "ok", f"reachable, schema at revision {version}")
    except Exception as exc:
        return Check(
            "database",
            "fail",
            f"cannot connect ({type(exc).__name__}: {str(exc)[:160]}); "
            "check BUTLER_DATABASE_URL and that the server is running",
        )
    finally:
        await engine.dispose()


async def check_redis(settings: Settings) -> Check:
    """Is Redis reachable when configured?"""
    if not settings.redis_url:
        return Check("redis", "ok", "not configured: in-process bus (one process only)")
    from redis import asyncio as redis_asyncio

    client = redis_asyncio.from_url(settings.redis_url, socket_timeout=2)
    try:
        await client.ping()
        return Check("redis", "ok", "reachable")
    except Exception as exc:
        return Check(
            "redis",
            "fail",
            f"cannot reach {settings.redis_url} ({exc}); start Redis or unset BUTLER_REDIS_URL",
        )
    finally:
        await client.aclose()


async def check_telegram(settings: Settings) -> Check:
    """Does the token work against the configured Bot API server?"""
    if not settings.telegram_token:
        return Check("telegram", "ok", "no BUTLER_TELEGRAM_TOKEN: the web chat is the customer channel")
    url = f"{settings.telegram_api_base_url.rstrip('/')}/bot{settings.telegram_token}/getMe"
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(url)
        data = response.json()
    except Exception as exc:
        return Check(
            "telegram", "fail", f"cannot reach {settings.telegram_api_base_url} ({type(exc).__name__})"
        )
    if not data.get("ok"):
        return Check(
            "telegram", "fail", f"token rejected: {data.get('description')}; check BUTLER_TELEGRAM_TOKEN"
        )
    detail = f"bot @{data['result'].get('username')} is reachable"
    if settings.telegram_staff_chat_id is None:
        return Check("telegram", "warn", detail + "; set BUTLER_TELEGRAM_STAFF_CHAT_ID for staff topics")
    return Check("telegram", "ok", detail)


def check_config(settings: Settings) -> Check:
    """Settings that are unsafe in production."""
    if settings.secret_key == "dev-insecure-change-me":
        return Check(
            "config", "warn", "BUTLER_SECRET_KEY is the development default; set a long random value"
        )
    return Check("config", "ok", "settings loaded")


async def run_checks(settings: Settings) -> list[Check]:
    """All checks, in order."""
    return [
        check_config(settings),
        await check_database(settings),
        await check_redis(settings),
        await check_telegram(settings),
    ]
