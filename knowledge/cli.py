"""`butler kb`: import, export, match and evaluate the knowledge base."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from bot.clock import SystemClock
from bot.db import make_engine, make_sessionmaker, session_scope
from bot.errors import DomainError
from bot.settings import Settings
from knowledge import kb_files
from knowledge import service as knowledge_service
from knowledge.matcher import KbEntry, KnowledgeIndex, MatcherConfig, detect_locale

T = TypeVar("T")
kb_app = typer.Typer(
    help="Knowledge base: import, export, match, evaluate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _settings() -> Settings:
    return Settings()


async def _with_session(fn: Callable[..., Awaitable[T]], **kwargs: Any) -> T:
    engine = make_engine(_settings().database_url)
    try:
        async with session_scope(make_sessionmaker(engine)) as session:
            return await fn(session, **kwargs)
    finally:
        await engine.dispose()


@kb_app.command("import")
def import_(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="YAML or JSONL file")],
) -> None:
    """Add or update entries from a file (all or nothing); running processes rebuild their index."""
    try:
        count = asyncio.run(_with_session(knowledge_service.import_file, path=path, now=SystemClock().now()))
    except DomainError as exc:
        typer.secho(f"Import refused, nothing changed: {exc.message}", fg="red", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"Imported {count} entries from {path}.")
    asyncio.run(_announce())


async def _announce() -> None:
    from bot.bus import make_bus

    bus = make_bus(_settings().redis_url)
    await bus.publish("knowledge", {"type": "kb.changed"})
    await bus.close()


@kb_app.command("export")
def export(path: Annotated[Path, typer.Argument(help="target .yaml or .jsonl file")]) -> None:
    """Write every entry to a YAML or JSONL file."""
    entries = asyncio.run(_with_session(knowledge_service.export_entries))
    kb_files.dump_entries(entries, path)
    typer.echo(f"Exported {len(entries)} entries to {path}.")


@kb_app.command("match")
def match(
    jsonl: Annotated[bool, typer.Option("--jsonl", help='read {"text", "locale"?} lines on stdin')] = False,
    text: Annotated[str | None, typer.Argument(help="one question (without --jsonl)")] = None,
) -> None:
    """Match questions against the installed knowledge base."""
    settings = _settings()
    rows = asyncio.run(_with_session(knowledge_service.list_entries, enabled_only=True))
    index = KnowledgeIndex.build(
        knowledge_service.kb_entries(rows), config=MatcherConfig(semantic=settings.kb_semantic)
    )
    lines = sys.stdin if jsonl else [json.dumps({"text": text or ""})]
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            query = str(item["text"])
            locale = item.get("locale") or detect_locale(query)
        except (ValueError, KeyError, TypeError, AttributeError):
            typer.echo(json.dumps({"line": n, "error": 'expected a JSON object with "text"'}))
            continue
        decision = index.decide(query, locale=locale)
        top = decision.top
        typer.echo(
            json.dumps(
                {
                    "topic": top.entry.topic if top else None,
                    "score": round(top.score, 4) if top else 0.0,
                    "decision": "answer" if decision.answer else "handoff",
                    "category": top.entry.category if top else None,
                },
                ensure_ascii=False,
            )
        )


@kb_app.command("eval")
def evaluate(
    kb: Annotated[
        Path,
        typer.Option(
            "--kb", exists=True, dir_okay=False, help="KB lines: topic, category, locale, questions, answer"
        ),
    ],
    queries: Annotated[
        Path, typer.Option("--queries", exists=True, dir_okay=False, help='lines: {"text", "expect_topic"}')
    ],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    semantic: Annotated[str, typer.Option(help="auto|on|off")] = "auto",
) -> None:
    """Score a throw-away index built from --kb on --queries."""
    from knowledge import evaluation

    try:
        entries: list[KbEntry] = kb_files.load_entries(kb)
        items = kb_files.load_queries(queries)
    except kb_files.KbFileError as exc:
        typer.secho(f"Bad input: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc
    if semantic not in ("auto", "on", "off"):
        typer.secho("--semantic must be auto, on or off", fg="red", err=True)
        raise typer.Exit(2)
    typer.echo(f"Building an index of {len(entries)} entries…", err=True)
    index = KnowledgeIndex.build(entries, config=MatcherConfig(semantic=semantic))  # type: ignore[arg-type]
    typer.echo(f"Scoring {len(items)} queries…", err=True)
    report = evaluation.evaluate(index, items)
    typer.echo(json.dumps(report.to_dict()) if as_json else evaluation.format_report(report))
