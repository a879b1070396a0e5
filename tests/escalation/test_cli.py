"""`butler sla explain` and `butler sla policies`."""

from __future__ import annotations

import asyncio
from pathlib import Path

from typer.testing import CliRunner

from bot.clock import FrozenClock
from bot.conversations.staff_flows import staff_reply
from bot.runtime import Runtime
from bot.settings import Settings
from escalation.cli import sla_app
from escalation.policy_store import file_text, save_policies
from tests.escalation.conftest import Team, customer_writes, drain


async def test_explain_tells_the_story_of_a_case(
    rt: Runtime, team: Team, clock: FrozenClock, settings: Settings
) -> None:
    res = await customer_writes(rt, "Strange noise when braking")
    assert res.case_id and res.group_id
    clock.advance(minutes=6)
    await drain(rt)
    async with rt.transaction() as session:
        await staff_reply(session, rt, staff=team["service2"], group_id=res.group_id, body="On it")
    runner = CliRunner()
    env = {"BUTLER_DATABASE_URL": settings.database_url}
    result = await asyncio.to_thread(runner.invoke, sla_app, ["explain", str(res.case_id)], env=env)
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"Case #{res.case_id}" in out and "service/normal" in out and "Zhao Lei (service)" in out
    assert "first response (round 1" in out and "met at 2026-11-02 09:06:00 UTC after 6m (late)" in out
    assert "resolution (round 1" in out and "paused since 2026-11-02 09:06:00 UTC" in out
    assert "breached   first response -> Zhou Min (lead)" in out
    assert "reassigned first response from Wang Fang (service) to Zhao Lei (service)" in out
    assert "3. escalate_manager at 20m business time: not reached" in out

    missing = await asyncio.to_thread(runner.invoke, sla_app, ["explain", "999"], env=env)
    assert "Case #999 does not exist." in missing.output


def test_policies_lists_what_applies_to_what(tmp_path: Path) -> None:
    env = {"BUTLER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/none.db"}  # not migrated: the file
    result = CliRunner().invoke(sla_app, ["policies"], env=env)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("Source: file")
    assert lines[2] == "1. complaint-urgent: category=complaint priority=urgent"
    assert "6. default: everything else" in lines
    assert any(
        "resolution ladder: warn at 75%; breach at 100%; escalate_manager right after the target" in x
        for x in lines
    )
    assert any(x.startswith("  shanghai_office (Asia/Shanghai): mon 09:00-12:00,13:00-18:00") for x in lines)


async def test_policies_shows_the_stored_version_in_force(rt: Runtime, settings: Settings) -> None:
    text = file_text(None)[0].replace("complaint-urgent", "complaint-vip")
    async with rt.transaction() as session:
        await save_policies(session, text=text, comment="vip", actor_staff_id=None, now=rt.clock.now())
    env = {"BUTLER_DATABASE_URL": settings.database_url}
    result = await asyncio.to_thread(CliRunner().invoke, sla_app, ["policies"], env=env)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "Source: database version 1"
    assert "1. complaint-vip: category=complaint priority=urgent" in result.output
