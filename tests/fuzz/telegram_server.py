"""The app with the Telegram channel in webhook mode, and the Bot API test server, in a background thread.

Hypothesis posts updates to the real /telegram/webhook route over HTTP from synchronous tests; the
SQLite file is read directly to check that nothing was half-stored.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.migrate import upgrade
from bot.settings import Settings
from tests.botapi import BotApiServer
from tests.fuzz.serving import AppThread

SECRET = "fuzz-telegram-secret"
STAFF_CHAT = -1009000000123
TABLES = ("customers", "butler_groups", "messages", "message_refs", "cases", "inbound_receipts", "sla_timers")


@dataclass
class TelegramFuzzServer:
    """The running app, its database file and the Bot API server's URL."""

    url: str
    db_path: Path

    def counts(self) -> dict[str, int]:
        """Row counts of the tables an inbound Telegram message writes."""
        with sqlite3.connect(self.db_path, timeout=30) as conn:
            return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}

    def half_stored(self) -> dict[str, int]:
        """Rows that only make sense with others that are missing (all must be 0)."""
        checks = {
            "customer message without channel ref": (
                "SELECT count(*) FROM messages m WHERE m.author_kind = 'customer' AND m.channel = 'telegram' "
                "AND NOT EXISTS (SELECT 1 FROM message_refs r WHERE r.message_id = m.id)"
            ),
            "customer message outside a butler group": (
                "SELECT count(*) FROM messages m WHERE m.author_kind = 'customer' AND NOT EXISTS "
                "(SELECT 1 FROM butler_groups g WHERE g.id = m.group_id)"
            ),
            "telegram identity without customer": (
                "SELECT count(*) FROM channel_identities i WHERE NOT EXISTS "
                "(SELECT 1 FROM customers c WHERE c.id = i.customer_id)"
            ),
            "case without an opening message": (
                "SELECT count(*) FROM cases k "
                "WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.case_id = k.id)"
            ),
        }
        with sqlite3.connect(self.db_path, timeout=30) as conn:
            return {name: conn.execute(sql).fetchone()[0] for name, sql in checks.items()}


class _Thread(AppThread):
    def __init__(self, db_url: str, media: Path) -> None:
        super().__init__("telegram-fuzz-server")
        self.db_url = db_url
        self.media = media

    async def main(self) -> None:
        """The Bot API test server, then the app in webhook mode against it."""
        async with BotApiServer() as botapi:
            botapi.supergroup(STAFF_CHAT, "Butler staff", bot_rights={"can_manage_topics": True})
            settings = Settings(
                database_url=self.db_url,
                run_workers=False,  # no sender: the outbox rows stay, which is all the checks need
                secret_key="fuzz-secret",
                redis_url=None,
                kb_semantic="off",
                telegram_token=botapi.token,
                telegram_api_base_url=botapi.url,
                telegram_staff_chat_id=STAFF_CHAT,
                telegram_mode="webhook",
                telegram_webhook_secret=SECRET,
                media_dir=self.media,
            )
            await self.serve(settings)


@pytest.fixture(scope="module")
def tg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TelegramFuzzServer]:
    """One app + Bot API server per module (examples share it, as real traffic would)."""
    base = tmp_path_factory.mktemp("tgfuzz")
    db_path = base / "butler.db"
    url = f"sqlite+aiosqlite:///{db_path}"
    upgrade(url)
    thread = _Thread(url, base / "media")
    server_url = thread.start_and_wait()
    try:
        yield TelegramFuzzServer(url=server_url, db_path=db_path)
    finally:
        thread.stop()
