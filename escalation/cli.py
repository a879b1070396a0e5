"""`butler sla ...`: a case's clocks and events in words, and the policies in force."""

from __future__ import annotations

import asyncio
from typing import Any

import typer

from bot.settings import Settings
from escalation.explain import describe_policies, explain_case


def load_settings(**overrides: Any) -> Settings:
    """Settings from the BUTLER_* environment, with explicit overrides."""
    return Settings(**overrides)


sla_app = typer.Typer(help="SLA clocks, escalation ladder and policies.", no_args_is_help=True)


async def _explain(settings: Settings, case_id: int) -> list[str]:
    from bot.factory import build_runtime, close_runtime

    rt = build_runtime(settings)
    try:
        async with rt.maker() as session:
            return await explain_case(session, case_id=case_id, policies=rt.sla.policies, now=rt.clock.now())
    finally:
        await close_runtime(rt)


@sla_app.command("explain")
def explain(case_id: int = typer.Argument(..., help="the case number")) -> None:
    """Print a case's SLA clocks and events in words."""
    for line in asyncio.run(_explain(load_settings(), case_id)):
        typer.echo(line)


@sla_app.command("policies")
def policies() -> None:
    """List the SLA policies in matching order, with targets, calendars and ladders."""
    from escalation.policies import load_policies

    for line in describe_policies(load_policies(load_settings().sla_policies_file)):
        typer.echo(line)
