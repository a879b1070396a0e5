"""FAQ entries in the database: list, upsert, enable/disable, import and export. Services flush only."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.bus import emit
from bot.errors import InvalidInput, NotFound
from knowledge import kb_files
from knowledge.matcher import KbEntry
from knowledge.models import FaqEntry

DEMO_KB = Path(__file__).resolve().parent / "data" / "demo_kb.yaml"
CATEGORIES = {"sales", "service", "factory", "complaint", "general"}
LOCALES = {"zh-CN", "en"}
ACTIONS = {"book_service", "book_test_drive", "onsite_repair", "parts_delivery", "talk_to_person"}


def to_kb_entry(row: FaqEntry) -> KbEntry:
    """The matcher's view of a stored entry."""
    return KbEntry(
        key=f"{row.topic}/{row.locale}",
        topic=row.topic,
        category=row.category,
        locale=row.locale,
        questions=tuple(row.questions),
        answer=row.answer,
    )


async def list_entries(session: AsyncSession, *, enabled_only: bool = False) -> list[FaqEntry]:
    """All entries, by topic then locale."""
    query = select(FaqEntry).order_by(FaqEntry.topic, FaqEntry.locale)
    if enabled_only:
        query = query.where(FaqEntry.enabled.is_(True))
    return list((await session.scalars(query)).all())


async def get_entry(session: AsyncSession, *, entry_id: int) -> FaqEntry:
    """One entry; NotFound if missing."""
    row = await session.get(FaqEntry, entry_id)
    if row is None:
        raise NotFound("faq.not_found", f"FAQ entry {entry_id} does not exist")
    return row


def validate_entry(
    *,
    topic: str,
    category: str,
    locale: str,
    questions: list[str],
    answer: str,
    actions: list[str] | None = None,
) -> tuple[str, str, str, list[str], str, list[str]]:
    """Normalise an entry or raise InvalidInput saying what is wrong."""
    topic = topic.strip()
    questions = [q.strip() for q in questions if q and q.strip()]
    if not topic or len(topic) > 64:
        raise InvalidInput("faq.topic", "topic key must be 1 to 64 characters")
    if category not in CATEGORIES:
        raise InvalidInput("faq.category", f"category must be one of {', '.join(sorted(CATEGORIES))}")
    if locale not in LOCALES:
        raise InvalidInput("faq.locale", "locale must be zh-CN or en")
    if not questions:
        raise InvalidInput("faq.questions", "give at least one phrasing of the question")
    if any(len(q) > 500 for q in questions):
        raise InvalidInput("faq.questions", "a phrasing is longer than 500 characters")
    if not answer.strip() or len(answer) > 4000:
        raise InvalidInput("faq.answer", "the answer must be 1 to 4000 characters")
    bad = [a for a in actions or [] if a not in ACTIONS]
    if bad:
        raise InvalidInput("faq.actions", f"unknown action(s): {', '.join(bad)}")
    return topic, category, locale, questions, answer.strip(), list(actions or [])


async def save_entry(
    session: AsyncSession,
    *,
    topic: str,
    category: str,
    locale: str,
    questions: list[str],
    answer: str,
    now: datetime,
    actions: list[str] | None = None,
    enabled: bool = True,
    actor_staff_id: int | None = None,
    entry_id: int | None = None,
) -> FaqEntry:
    """Create or update the entry for (topic, locale) and announce the change to every process."""
    topic, category, locale, questions, answer, actions = validate_entry(
        topic=topic, category=category, locale=locale, questions=questions, answer=answer, actions=actions
    )
    row: FaqEntry | None
    if entry_id is not None:
        row = await get_entry(session, entry_id=entry_id)
    else:
        row = await session.scalar(select(FaqEntry).where(FaqEntry.topic == topic, FaqEntry.locale == locale))
    if row is None:
        row = FaqEntry(
            topic=topic,
            locale=locale,
            category=category,
            questions=questions,
            answer=answer,
            actions=actions,
            enabled=enabled,
            updated_at=now,
            updated_by=actor_staff_id,
        )
        session.add(row)
    else:
        row.topic, row.locale, row.category, row.questions = topic, locale, category, questions
        row.answer, row.actions, row.enabled = answer, actions, enabled
        row.updated_at, row.updated_by = now, actor_staff_id
    await session.flush()
    announce_change(session)
    return row


async def set_enabled(
    session: AsyncSession, *, entry_id: int, enabled: bool, now: datetime, actor_staff_id: int | None = None
) -> FaqEntry:
    """Enable or disable an entry."""
    row = await get_entry(session, entry_id=entry_id)
    row.enabled, row.updated_at, row.updated_by = enabled, now, actor_staff_id
    await session.flush()
    announce_change(session)
    return row


def announce_change(session: AsyncSession) -> None:
    """Tell every process to rebuild its index after this transaction commits."""
    emit(session, "knowledge", {"type": "kb.changed"})


def _actions_by_topic(path: Path) -> dict[str, list[str]]:
    if path.suffix not in (".yaml", ".yml"):
        return {}
    items = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    return {
        str(i["topic"]): list(i.get("actions") or []) for i in items if isinstance(i, dict) and "topic" in i
    }


async def import_file(
    session: AsyncSession, *, path: Path, now: datetime, actor_staff_id: int | None = None
) -> int:
    """Upsert every entry of a YAML or JSONL file (all or nothing); returns the count."""
    try:
        entries = kb_files.load_entries(path)
    except kb_files.KbFileError as exc:
        raise InvalidInput("faq.file", str(exc)) from exc
    actions = _actions_by_topic(path)
    for entry in entries:
        await save_entry(
            session,
            topic=entry.topic,
            category=entry.category,
            locale=entry.locale,
            questions=list(entry.questions),
            answer=entry.answer,
            now=now,
            actions=actions.get(entry.topic, []),
            actor_staff_id=actor_staff_id,
        )
    return len(entries)


async def export_entries(session: AsyncSession) -> list[KbEntry]:
    """Every entry (enabled or not) as matcher entries, for dumping to a file."""
    return [to_kb_entry(row) for row in await list_entries(session)]


async def load_demo_if_empty(session: AsyncSession, *, now: datetime) -> int:
    """Import the shipped demo knowledge base into an empty table."""
    if await session.scalar(select(FaqEntry.id).limit(1)) is not None:
        return 0
    return await import_file(session, path=DEMO_KB, now=now)


def entry_dict(row: FaqEntry) -> dict[str, Any]:
    """An entry as plain data (API, export)."""
    return {
        "id": row.id,
        "topic": row.topic,
        "category": row.category,
        "locale": row.locale,
        "questions": list(row.questions),
        "answer": row.answer,
        "actions": list(row.actions),
        "enabled": row.enabled,
        "updated_at": row.updated_at.isoformat(),
    }


def kb_entries(rows: Iterable[FaqEntry]) -> list[KbEntry]:
    """Matcher entries of stored rows."""
    return [to_kb_entry(r) for r in rows]
