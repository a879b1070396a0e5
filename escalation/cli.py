"""`butler sla ...`: a case's clocks and events in words, and the policies in force."""

from __future__ import annotations

import asyncio
from typing import Any

import typer
from sqlalchemy.exc import SQLAlchemyError

from bot.settings import Settings
from escalation.explain import describe_policies, explain_case
from escalation.policies import PolicySet


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


async def _policies(settings: Settings) -> tuple[str, PolicySet]:
    """The policies in force: the newest version saved in the database, else the YAML file."""
    from bot.factory import build_runtime, close_runtime
    from escalation.policies import load_policies
    from escalation.policy_store import load_stored

    rt = build_runtime(settings)
    try:
        stored = await load_stored(rt.maker)
    except SQLAlchemyError:
        stored = None  # no database yet (or not migrated): the file is what a new process would use
    finally:
        await close_runtime(rt)
    if stored is not None:
        return f"database version {stored[0]}", stored[1]
    file = settings.sla_policies_file
    return f"file {file or 'built-in defaults'}", load_policies(file)


@sla_app.command("policies")
def policies() -> None:
    """List the SLA policies in force (database version, else the file) with targets and ladders."""
    source, policy_set = asyncio.run(_policies(load_settings()))
    typer.echo(f"Source: {source}")
    for line in describe_policies(policy_set):
        typer.echo(line)
