"""The engine's knowledge-base answerer: a matcher index rebuilt whenever any process edits the KB."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.bus import EventBus
from bot.runtime import AutoAnswer
from knowledge import service as knowledge_service
from knowledge.matcher import Decision, KbEntry, KnowledgeIndex, MatcherConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Snapshot:
    index: KnowledgeIndex
    by_topic_locale: dict[tuple[str, str], KbEntry]
    actions: dict[str, tuple[str, ...]]


class KnowledgeAnswerer:
    """Answers confidently matched questions in the customer's language; otherwise hands off."""

    def __init__(self, config: MatcherConfig | None = None) -> None:
        self._config = config or MatcherConfig()
        self._snapshot: _Snapshot | None = None
        self.version = 0

    @property
    def ready(self) -> bool:
        """Whether an index has been built."""
        return self._snapshot is not None

    def decide(self, text: str, *, locale: str) -> Decision | None:
        """The matcher's decision, or None before the first build."""
        snap = self._snapshot
        return snap.index.decide(text, locale=locale) if snap else None

    def answer(self, text: str, *, locale: str) -> AutoAnswer | None:
        """An answer if the top match clears the locale's threshold, in the customer's locale."""
        snap = self._snapshot
        if snap is None:
            return None
        decision = snap.index.decide(text, locale=locale)
        if not decision.answer or decision.top is None:
            return None
        return self._auto(snap, decision.top.entry, decision.top.score, locale)

    def consult(self, text: str, *, locale: str) -> tuple[AutoAnswer | None, AutoAnswer | None]:
        """(the answer to send or None, the best match whatever its confidence) from one search."""
        snap = self._snapshot
        if snap is None or not text.strip():
            return None, None
        decision = snap.index.decide(text, locale=locale)
        if decision.top is None:
            return None, None
        best = self._auto(snap, decision.top.entry, decision.top.score, locale)
        return (best if decision.answer else None), best

    def suggest(self, text: str, *, locale: str, k: int = 3) -> list[AutoAnswer]:
        """The top k matches as suggestions for staff, whatever their confidence."""
        snap = self._snapshot
        if snap is None or not text.strip():
            return []
        return [
            self._auto(snap, m.entry, m.score, locale) for m in snap.index.search(text, locale=locale, k=k)
        ]

    @staticmethod
    def _auto(snap: _Snapshot, entry: KbEntry, score: float, locale: str) -> AutoAnswer:
        # The customer's language wins over the language the question happened to match in.
        chosen = snap.by_topic_locale.get((entry.topic, locale), entry)
        return AutoAnswer(
            topic=entry.topic,
            text=chosen.answer,
            score=score,
            locale=chosen.locale,
            category=entry.category,
            actions=snap.actions.get(entry.topic, ()),
        )

    async def reload(self, maker: async_sessionmaker[AsyncSession]) -> int:
        """Rebuild from the enabled entries in the database; returns the entry count."""
        async with maker() as session:
            rows = await knowledge_service.list_entries(session, enabled_only=True)
        entries = knowledge_service.kb_entries(rows)
        actions = {r.topic: tuple(r.actions) for r in rows}
        index = await asyncio.to_thread(KnowledgeIndex.build, entries, config=self._config)
        self._snapshot = _Snapshot(index, {(e.topic, e.locale): e for e in entries}, actions)
        self.version += 1
        log.info("knowledge index rebuilt: %d entries (version %d)", len(entries), self.version)
        return len(entries)

    async def follow_changes(
        self, maker: async_sessionmaker[AsyncSession], bus: EventBus, stop: asyncio.Event
    ) -> None:
        """Rebuild whenever any process announces a KB change, until stop."""
        stream = bus.subscribe(["knowledge"])
        while not stop.is_set():
            event = await anext(stream)
            if event.get("type") != "kb.changed":
                continue
            try:
                await self.reload(maker)
            except Exception:
                log.exception("knowledge index rebuild failed; keeping the previous one")
