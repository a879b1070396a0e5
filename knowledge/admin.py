"""Knowledge-base administration for the console: filtered lists, audited edits, uploads, exports.

Writes go through knowledge.service (which announces the change so every process rebuilds its
index after commit); this module adds the audit trail and the console's rules on top.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.conversations.models import Case, Message
from bot.errors import Conflict, InvalidInput, NotFound
from bot.teams.models import ButlerGroup, Customer
from bot.teams.service import audit
from knowledge import kb_files
from knowledge import service as knowledge_service
from knowledge.models import FaqEntry
from knowledge.tokenize import detect_locale

MAX_UPLOAD = 5_000_000


@dataclass(frozen=True)
class EntryDraft:
    """The values of an entry form (new, edited, or prefilled from a staff reply)."""

    topic: str = ""
    category: str = "general"
    locale: str = "zh-CN"
    questions: str = ""  # one phrasing per line
    answer: str = ""
    actions: tuple[str, ...] = ()
    enabled: bool = True

    @classmethod
    def of(cls, row: FaqEntry) -> EntryDraft:
        """The form values of a stored entry."""
        return cls(
            topic=row.topic,
            category=row.category,
            locale=row.locale,
            questions="\n".join(row.questions),
            answer=row.answer,
            actions=tuple(row.actions),
            enabled=row.enabled,
        )

    def phrasings(self) -> list[str]:
        """The question phrasings, one per non-empty line."""
        return [line.strip() for line in self.questions.splitlines() if line.strip()]


async def search_entries(
    session: AsyncSession,
    *,
    query: str | None = None,
    topic: str | None = None,
    category: str | None = None,
    locale: str | None = None,
    enabled: bool | None = None,
    limit: int = 500,
) -> list[FaqEntry]:
    """Entries matching the filters (text search over topic, answer and phrasings), by topic."""
    stmt = select(FaqEntry).order_by(FaqEntry.topic, FaqEntry.locale)
    if topic and topic.strip():
        stmt = stmt.where(FaqEntry.topic.startswith(topic.strip(), autoescape=True))
    if category:
        stmt = stmt.where(FaqEntry.category == category)
    if locale:
        stmt = stmt.where(FaqEntry.locale == locale)
    if enabled is not None:
        stmt = stmt.where(FaqEntry.enabled.is_(enabled))
    rows = list((await session.scalars(stmt)).all())
    if query and query.strip():
        # Phrasings live in a JSON list; the base is small (hundreds of rows), so filter here.
        needle = query.strip().lower()
        rows = [
            r
            for r in rows
            if needle in r.topic.lower()
            or needle in r.answer.lower()
            or any(needle in q.lower() for q in r.questions)
        ]
    return rows[:limit]


async def count_entries(session: AsyncSession) -> tuple[int, int]:
    """(all entries, enabled entries)."""
    total = await session.scalar(select(func.count()).select_from(FaqEntry))
    on = await session.scalar(select(func.count()).select_from(FaqEntry).where(FaqEntry.enabled.is_(True)))
    return int(total or 0), int(on or 0)


async def create_entry(
    session: AsyncSession, *, draft: EntryDraft, actor_staff_id: int | None, now: datetime
) -> FaqEntry:
    """Add a new (topic, locale) entry; Conflict if it exists (edit that one instead)."""
    existing = await session.scalar(
        select(FaqEntry.id).where(FaqEntry.topic == draft.topic.strip(), FaqEntry.locale == draft.locale)
    )
    if existing is not None:
        raise Conflict("faq.exists", f"{draft.topic.strip()}/{draft.locale} already exists; edit that entry")
    row = await _save(session, draft, enabled=draft.enabled, now=now, actor_staff_id=actor_staff_id)
    audit(
        session,
        action="faq.create",
        object_type="faq_entry",
        object_id=row.id,
        actor_staff_id=actor_staff_id,
        now=now,
        data={"topic": row.topic, "locale": row.locale, "category": row.category},
    )
    return row


async def update_entry(
    session: AsyncSession, *, entry_id: int, draft: EntryDraft, actor_staff_id: int | None, now: datetime
) -> FaqEntry:
    """Replace an entry's fields; Conflict if it would collide with another (topic, locale)."""
    current = await knowledge_service.get_entry(session, entry_id=entry_id)
    before = EntryDraft.of(current)
    clash = await session.scalar(
        select(FaqEntry.id).where(
            FaqEntry.topic == draft.topic.strip(), FaqEntry.locale == draft.locale, FaqEntry.id != entry_id
        )
    )
    if clash is not None:
        raise Conflict("faq.exists", f"{draft.topic.strip()}/{draft.locale} already exists")
    row = await _save(
        session, draft, enabled=current.enabled, now=now, actor_staff_id=actor_staff_id, entry_id=entry_id
    )
    after = EntryDraft.of(row)
    fields = ("topic", "category", "locale", "questions", "answer", "actions")
    changed = [f for f in fields if getattr(before, f) != getattr(after, f)]
    audit(
        session,
        action="faq.update",
        object_type="faq_entry",
        object_id=row.id,
        actor_staff_id=actor_staff_id,
        now=now,
        data={"topic": row.topic, "locale": row.locale, "changed": changed},
    )
    return row


async def set_entry_enabled(
    session: AsyncSession, *, entry_id: int, enabled: bool, actor_staff_id: int | None, now: datetime
) -> FaqEntry:
    """Enable or disable an entry (audited)."""
    row = await knowledge_service.set_enabled(
        session, entry_id=entry_id, enabled=enabled, now=now, actor_staff_id=actor_staff_id
    )
    audit(
        session,
        action="faq.enable" if enabled else "faq.disable",
        object_type="faq_entry",
        object_id=row.id,
        actor_staff_id=actor_staff_id,
        now=now,
        data={"topic": row.topic, "locale": row.locale},
    )
    return row


async def import_upload(
    session: AsyncSession, *, filename: str, content: bytes, actor_staff_id: int | None, now: datetime
) -> int:
    """Import an uploaded YAML or JSONL file: every entry or none (the caller's transaction)."""
    suffix = Path(filename or "").suffix.lower()
    if suffix not in (*kb_files.YAML_SUFFIXES, *kb_files.JSONL_SUFFIXES):
        raise InvalidInput("faq.file_type", "upload a .yaml, .yml or .jsonl file")
    if not content.strip():
        raise InvalidInput("faq.file_empty", "the file is empty")
    if len(content) > MAX_UPLOAD:
        raise InvalidInput("faq.file_size", f"the file is larger than {MAX_UPLOAD // 1_000_000} MB")
    try:
        content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput("faq.file_encoding", "the file is not UTF-8 text") from exc
    with tempfile.TemporaryDirectory() as tmp:
        # The loader reads a path and names it in messages; give it the uploaded name, not the temp one.
        path = Path(tmp) / Path(filename).name
        path.write_bytes(content)
        try:
            count = await knowledge_service.import_file(
                session, path=path, now=now, actor_staff_id=actor_staff_id
            )
        except yaml.YAMLError as exc:
            raise InvalidInput("faq.file", f"not valid YAML: {exc}") from exc
        except InvalidInput as exc:
            raise InvalidInput(exc.code, exc.message.replace(str(path), Path(filename).name)) from exc
    if count == 0:
        raise InvalidInput("faq.file_empty", "the file holds no entries")
    audit(
        session,
        action="faq.import",
        object_type="faq_entry",
        object_id=None,
        actor_staff_id=actor_staff_id,
        now=now,
        data={"file": Path(filename).name[:200], "entries": count},
    )
    return count


async def export_text(session: AsyncSession, *, fmt: str) -> tuple[str, str]:
    """Every entry as (file text, media type) in YAML (grouped by topic) or JSONL."""
    rows = await knowledge_service.list_entries(session)
    if fmt == "jsonl":
        lines = []
        for r in rows:
            item = kb_files.entry_to_dict(knowledge_service.to_kb_entry(r))
            item["enabled"] = r.enabled
            lines.append(json.dumps(item, ensure_ascii=False))
        return "".join(line + "\n" for line in lines), "application/x-ndjson"
    items = kb_files.entries_to_yaml_items(knowledge_service.kb_entries(rows))
    actions = {r.topic: list(r.actions) for r in rows if r.actions}
    for item in items:
        if item["topic"] in actions:
            item["actions"] = actions[item["topic"]]
    return yaml.safe_dump(items, allow_unicode=True, sort_keys=False, width=1000), "application/yaml"


async def draft_from_message(session: AsyncSession, *, message_id: int) -> EntryDraft:
    """A new-entry form prefilled from a public staff reply and the customer message before it."""
    message = await session.get(Message, message_id)
    if message is None:
        raise NotFound("message.not_found", f"message {message_id} does not exist")
    if message.author_kind != "staff" or message.internal:
        raise InvalidInput("faq.from_message", "only a public staff reply can become an FAQ entry")
    question = await session.scalar(
        select(Message)
        .where(
            Message.group_id == message.group_id,
            Message.id < message.id,
            Message.author_kind == "customer",
        )
        .order_by(Message.id.desc())
        .limit(1)
    )
    category = "general"
    if message.case_id is not None:
        case_category = await session.scalar(select(Case.category).where(Case.id == message.case_id))
        if case_category in knowledge_service.CATEGORIES:
            category = str(case_category)
    customer_locale = await session.scalar(
        select(Customer.locale)
        .join(ButlerGroup, ButlerGroup.customer_id == Customer.id)
        .where(ButlerGroup.id == message.group_id)
    )
    locale = detect_locale(message.body) if message.body.strip() else (customer_locale or "zh-CN")
    if locale not in knowledge_service.LOCALES:
        locale = "zh-CN"
    return EntryDraft(
        topic="",
        category=category,
        locale=locale,
        questions=question.body.strip() if question is not None else "",
        answer=message.body.strip(),
    )


async def all_topics(session: AsyncSession) -> list[str]:
    """Every topic key (for the filter's suggestions)."""
    return sorted((await session.scalars(select(FaqEntry.topic).distinct())).all())


async def _save(
    session: AsyncSession,
    draft: EntryDraft,
    *,
    enabled: bool,
    now: datetime,
    actor_staff_id: int | None,
    entry_id: int | None = None,
) -> FaqEntry:
    """Write a draft to its entry (a new one when entry_id is None)."""
    return await knowledge_service.save_entry(
        session,
        topic=draft.topic,
        category=draft.category,
        locale=draft.locale,
        questions=draft.phrasings(),
        answer=draft.answer,
        actions=list(draft.actions),
        enabled=enabled,
        now=now,
        actor_staff_id=actor_staff_id,
        entry_id=entry_id,
    )
