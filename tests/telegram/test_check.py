"""`butler telegram check` against the test server: it names exactly what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from handlers.telegram.cli import run_checks
from tests.botapi import BotApiServer
from tests.telegram.conftest import telegram_settings

GROUP = -1009000000077


async def findings(botapi: BotApiServer, tmp_path: Path, **overrides: object) -> list[tuple[bool, str, str]]:
    """The check's findings as (ok, what, fix)."""
    settings = telegram_settings("sqlite+aiosqlite:///unused.db", botapi, tmp_path, **overrides)
    return [(f.ok, f.what, f.fix) for f in await run_checks(settings)]


@pytest.mark.parametrize(
    ("setup", "fix"),
    [
        ({"bot_rights": {"can_manage_topics": True}}, None),
        ({"bot_rights": {"can_manage_topics": False}}, "enable 'Manage topics'"),
        ({"bot_rights": None}, "promote @butler_test_bot to admin"),
        ({"bot_rights": {"can_manage_topics": True}, "is_forum": False}, "Topics -> on"),
    ],
)
async def test_check_says_what_to_fix(
    botapi: BotApiServer, tmp_path: Path, setup: dict[str, object], fix: str | None
) -> None:
    """Admin with can_manage_topics in a forum passes; every gap is named with its fix."""
    botapi.supergroup(GROUP, "Butler staff", **setup)  # type: ignore[arg-type]
    found = await findings(botapi, tmp_path, telegram_staff_chat_id=GROUP)
    assert found[0][0] and "@butler_test_bot" in found[0][1]
    problems = [f for f in found if not f[0]]
    if fix is None:
        assert problems == []
    else:
        assert len(problems) == 1 and fix in problems[0][2]


async def test_check_without_staff_chat_token_or_membership(botapi: BotApiServer, tmp_path: Path) -> None:
    """Missing chat id, a chat the bot is not in, and a wrong token each get their own advice."""
    no_chat = await findings(botapi, tmp_path, telegram_staff_chat_id=None)
    assert not no_chat[-1][0] and "BUTLER_TELEGRAM_STAFF_CHAT_ID" in no_chat[-1][2]
    not_member = await findings(botapi, tmp_path, telegram_staff_chat_id=-1005550000000)
    assert not not_member[-1][0] and "add @butler_test_bot to the group" in not_member[-1][2]
    bad_token = await findings(botapi, tmp_path, telegram_token="123:nope")
    assert bad_token == [
        (False, "Telegram rejected the token", "copy the token again from @BotFather (/token)")
    ]
