"""The Telegram channel under test: the real app (uvicorn) with real PTB against the Bot API test server."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.conversations.models import Case
from bot.settings import Settings
from bot.teams.models import Staff
from bot.tg import flows as tg_flows
from tests.botapi import BotApiServer, GroupClient, UserClient
from tests.live import LiveServer, seed_database, serve

STAFF_CHAT = -1009000000001
SECRET = "tg-webhook-secret_1"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore:.*retry_after.*:telegram.warnings.PTBDeprecationWarning"),
]


@pytest.fixture
async def botapi() -> AsyncIterator[BotApiServer]:
    """A fresh Bot API test server (limits off: limits have their own tests); no internal errors."""
    async with BotApiServer() as server:
        yield server
    assert server.internal_errors == []


@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated and seeded SQLite file, built once; each test starts from a copy (seeding is slow)."""
    path = tmp_path_factory.mktemp("template") / "butler.db"

    with ThreadPoolExecutor(1) as pool:  # its own event loop, away from the tests' loop
        pool.submit(asyncio.run, seed_database(f"sqlite+aiosqlite:///{path}")).result()
    return path


@pytest.fixture
def sqlite_url(seeded_template: Path, tmp_path: Path) -> str:
    """A migrated, seeded SQLite file of this test (most end-to-end tests run on SQLite)."""
    target = tmp_path / "butler.db"
    shutil.copyfile(seeded_template, target)
    return f"sqlite+aiosqlite:///{target}"


def telegram_settings(database_url: str, server: BotApiServer, tmp_path: Path, **overrides: Any) -> Settings:
    """Settings of a process with the Telegram channel on, against the test server."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "secret_key": "test-secret",
        "redis_url": None,
        "run_workers": True,
        "telegram_token": server.token,
        "telegram_api_base_url": server.url,
        "telegram_staff_chat_id": STAFF_CHAT,
        "telegram_mode": "polling",
        "telegram_webhook_secret": SECRET,
        "telegram_chat_per_second": 50.0,
        "telegram_group_per_minute": 1000,
        "outbox_poll_seconds": 0.2,
        "media_dir": tmp_path / "media",
        "kb_semantic": "off",
    }
    values.update(overrides)
    return Settings(**{k: v for k, v in values.items() if k in Settings.model_fields})


@pytest.fixture
def staff_group(botapi: BotApiServer) -> GroupClient:
    """The staff supergroup: a forum where the bot may manage topics."""
    return botapi.supergroup(STAFF_CHAT, "Butler staff", bot_rights={"can_manage_topics": True})


@pytest.fixture
def butler(
    sqlite_url: str, botapi: BotApiServer, staff_group: GroupClient, tmp_path: Path
) -> Callable[..., AbstractAsyncContextManager[LiveServer]]:
    """Start the real app (polling by default); call it again for a restart on the same database."""

    def start(**overrides: Any) -> AbstractAsyncContextManager[LiveServer]:
        return serve(telegram_settings(sqlite_url, botapi, tmp_path, **overrides))

    return start


async def link_staff(live: LiveServer, server: BotApiServer, username: str, telegram_id: int) -> UserClient:
    """Link a staff account to a Telegram user through the deep link, as staff would."""
    async with live.rt.transaction() as session:
        staff = await session.scalar(select(Staff).where(Staff.username == username))
        assert staff is not None
        url = await tg_flows.issue_link_token(session, live.rt, staff=staff)
    token = url.rsplit("start=", 1)[1]
    user = server.user(telegram_id, staff.display_name, language_code="en")
    before = len(user.received())
    await user.send_command("/start", token)
    [*_, reply] = await user.wait_for_reply(before + 1)
    assert reply.text is not None and reply.text.startswith("✅")
    return user


async def open_case_of(live: LiveServer) -> Case:
    """The newest case."""
    async with live.rt.maker() as session:
        case = await session.scalar(select(Case).order_by(Case.id.desc()).limit(1))
    assert case is not None
    return case


async def staff_username(live: LiveServer, staff_id: int) -> str:
    """A staff member's login name."""
    async with live.rt.maker() as session:
        staff = await session.get(Staff, staff_id)
    assert staff is not None
    return staff.username
