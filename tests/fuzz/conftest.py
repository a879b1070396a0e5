"""A real server for fuzzing: the app behind uvicorn in a background thread, on a migrated SQLite file.

Hypothesis and schemathesis drive it over HTTP from synchronous tests; the database is read with a
plain sqlite3 connection to check that nothing was half-stored.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bot.migrate import upgrade
from bot.settings import Settings
from tests.fuzz.serving import AppThread
from tests.live import DEMO_PASSWORD

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


class _Thread(AppThread):
    def __init__(self, settings: Settings) -> None:
        super().__init__("fuzz-server")
        self.settings = settings

    async def main(self) -> None:
        """Serve the app."""
        await self.serve(self.settings)


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
    url = thread.start_and_wait()
    try:
        yield FuzzServer(url=url, db_path=db_path)
    finally:
        thread.stop()
