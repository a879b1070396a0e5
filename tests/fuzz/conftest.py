"""A real server for fuzzing: the app behind uvicorn in a background thread, on a migrated SQLite file.

Hypothesis and schemathesis drive it over HTTP from synchronous tests; the database is read with a
plain sqlite3 connection to check that nothing was half-stored.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from bot.app import create_app
from bot.migrate import upgrade
from bot.seed import seed_demo
from bot.settings import Settings
from tests.live import DEMO_HASH, DEMO_PASSWORD

TABLES = ("customers", "messages", "cases", "inbound_receipts", "webchat_sessions")


@dataclass
class FuzzServer:
    """The running server and its database file."""

    url: str
    db_path: Path

    def counts(self) -> dict[str, int]:
        """Row counts of the tables a customer message touches (customer-authored messages only)."""
        with sqlite3.connect(self.db_path, timeout=30) as conn:
            out = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
            out["customer_messages"] = conn.execute(
                "SELECT count(*) FROM messages WHERE author_kind = 'customer'"
            ).fetchone()[0]
        return out

    def alive(self) -> bool:
        """The server still answers its liveness probe."""
        return httpx.get(self.url + "/healthz", timeout=10).status_code == 200

    def token(self, username: str = "manager1") -> dict[str, str]:
        """Authorization header for a demo staff member."""
        r = httpx.post(
            self.url + "/api/v1/auth/token",
            json={"username": username, "password": DEMO_PASSWORD},
            timeout=10,
        )
        r.raise_for_status()
        return {"Authorization": f"Bearer {r.json()['access_token']}"}


class _Thread(threading.Thread):
    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True, name="fuzz-server")
        self.settings = settings
        self.ready = threading.Event()
        self.port = 0
        self.error: BaseException | None = None
        self.server: uvicorn.Server | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self.error = exc
            self.ready.set()

    async def _main(self) -> None:
        app = create_app(self.settings)
        async with app.state.rt.transaction() as session:
            await seed_demo(session, password=DEMO_PASSWORD, password_hash=DEMO_HASH)
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.ready.set()
        await task


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzServer]:
    """One server per fuzz module (hypothesis examples share it, as real traffic would)."""
    db_path = tmp_path_factory.mktemp("fuzz") / "butler.db"
    url = f"sqlite+aiosqlite:///{db_path}"
    upgrade(url)
    settings = Settings(
        database_url=url,
        run_workers=False,
        secret_key="fuzz-secret",
        telegram_token=None,
        redis_url=None,
        kb_semantic="off",
    )
    thread = _Thread(settings)
    thread.start()
    assert thread.ready.wait(120), "fuzz server did not start"
    if thread.error is not None:
        raise thread.error
    try:
        yield FuzzServer(url=f"http://127.0.0.1:{thread.port}", db_path=db_path)
    finally:
        if thread.server is not None:
            thread.server.should_exit = True
        thread.join(30)
