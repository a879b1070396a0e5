"""A real uvicorn server around the app, for tests that go through HTTP."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import uvicorn
from argon2 import PasswordHasher
from fastapi import FastAPI

from bot.app import create_app
from bot.clock import Clock
from bot.db import make_engine, make_sessionmaker, session_scope
from bot.migrate import upgrade_async
from bot.runtime import Runtime
from bot.seed import seed_demo
from bot.settings import Settings

DEMO_PASSWORD = "demo-pass-123"
# Cheap Argon2 parameters keep logins fast in tests; verification reads the parameters from the hash.
DEMO_HASH = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(DEMO_PASSWORD)


@dataclass
class LiveServer:
    """A running server: its URL, app and runtime."""

    url: str
    app: FastAPI
    rt: Runtime

    def client(self, **kwargs: object) -> httpx.AsyncClient:
        """An HTTP client against the server."""
        return httpx.AsyncClient(base_url=self.url, timeout=10, **kwargs)  # type: ignore[arg-type]

    async def token(self, username: str, password: str = DEMO_PASSWORD) -> dict[str, str]:
        """Authorization header for a staff member."""
        async with self.client() as c:
            r = await c.post("/api/v1/auth/token", json={"username": username, "password": password})
            r.raise_for_status()
            return {"Authorization": f"Bearer {r.json()['access_token']}"}


@contextlib.asynccontextmanager
async def serve(
    settings: Settings, *, clock: Clock | None = None, seed: bool = True
) -> AsyncIterator[LiveServer]:
    """Start the app on a free port (lifespan included) and stop it afterwards."""
    app = create_app(settings, clock=clock)
    rt: Runtime = app.state.rt
    if seed:
        async with rt.transaction() as session:
            await seed_demo(session, password=DEMO_PASSWORD, password_hash=DEMO_HASH)
    async with serve_app(app, graceful_timeout=2) as url:
        yield LiveServer(url=url, app=app, rt=rt)


@contextlib.asynccontextmanager
async def serve_app(app: FastAPI, *, graceful_timeout: int | None = None) -> AsyncIterator[str]:
    """Run an app under uvicorn (lifespan included) on a free port; yields its base URL."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=graceful_timeout,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=30)


async def seed_database(url: str) -> None:
    """Migrate a database and add the demo data (staff with cheap password hashes)."""
    await upgrade_async(url)
    engine = make_engine(url)
    try:
        async with session_scope(make_sessionmaker(engine)) as session:
            await seed_demo(session, password=DEMO_PASSWORD, password_hash=DEMO_HASH)
    finally:
        await engine.dispose()
