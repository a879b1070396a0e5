"""What survived: inbound messages stored exactly once, SLA rungs fired once, outbound duplicates."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.botapi import BotApiServer


@dataclass
class Counts:
    """The numbers a failure scenario reports."""

    injected: int = 0
    stored: int = 0  # distinct injected messages found in the database
    lost: int = 0
    stored_twice: int = 0  # injected messages stored more than once
    unexpected: int = 0  # customer messages stored that nobody injected
    sla_steps: int = 0
    sla_steps_duplicated: int = 0
    outbound_sent: int = 0
    # Sends the server saw beyond the outbox rows marked sent. Counted before the outbox drained
    # (CI), this includes rows a killed worker sent but never marked: duplicates to come.
    outbound_duplicates: int = 0
    outbound_missing: int = 0  # outbox rows marked sent that the server never saw (must be 0)
    topics_duplicated: int = 0
    outbox_left: dict[str, int] = field(default_factory=dict)
    webhook_statuses: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly."""
        return dict(self.__dict__)


async def collect(url: str, server: BotApiServer, injected: set[tuple[int, int]], staff_chat: int) -> Counts:
    """Compare what was injected and what the Bot API server saw with the database."""
    counts = Counts(injected=len(injected))
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT r.chat_id, r.external_id, count(*) FROM messages m "
                    "JOIN message_refs r ON r.message_id = m.id AND r.channel = 'telegram' "
                    "WHERE m.author_kind = 'customer' GROUP BY r.chat_id, r.external_id"
                )
            )
            stored = {(int(c), int(e)): n for c, e, n in rows}
            customer_total = await conn.scalar(
                text("SELECT count(*) FROM messages WHERE author_kind = 'customer' AND channel = 'telegram'")
            )
            dup_steps = await conn.scalar(
                text(
                    "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM sla_events "
                    "WHERE step IS NOT NULL GROUP BY timer_id, step) x"
                )
            )
            steps = await conn.scalar(text("SELECT count(*) FROM sla_events WHERE step IS NOT NULL"))
            outbox = await conn.execute(
                text("SELECT kind, status, payload FROM outbox WHERE channel = 'telegram'")
            )
            expected: Counter[tuple[int, str]] = Counter()
            left: Counter[str] = Counter()
            for kind, status, payload in outbox:
                if status != "sent":
                    left[status] += 1
                elif kind == "send":
                    expected[(int(payload["chat_id"]), str(payload.get("text") or ""))] += 1
            topics = await conn.scalar(
                text("SELECT count(*) FROM telegram_topics WHERE thread_id IS NOT NULL")
            )
    finally:
        await engine.dispose()
    counts.stored = sum(1 for key in injected if key in stored)
    counts.lost = counts.injected - counts.stored
    counts.stored_twice = sum(1 for key in injected if stored.get(key, 0) > 1)
    counts.unexpected = int(customer_total or 0) - sum(stored.get(key, 0) for key in injected)
    counts.sla_steps = int(steps or 0)
    counts.sla_steps_duplicated = int(dup_steps or 0)
    seen: Counter[tuple[int, str]] = Counter()
    for chat_id, sent_list in server.bot.sent.items():
        for sent in sent_list:
            if sent.method.startswith("send"):
                seen[(chat_id, _plain(sent))] += 1
    counts.outbound_sent = sum(seen.values())
    counts.outbound_duplicates = sum((seen - expected).values())
    counts.outbound_missing = sum((expected - seen).values())
    made = len(server.topics(staff_chat)) if staff_chat in server.world.chats else 0
    counts.topics_duplicated = max(0, made - int(topics or 0))
    counts.outbox_left = dict(left)
    statuses = Counter(
        str(a.status) if a.status is not None else "no answer" for a in server.delivery_attempts()
    )
    counts.webhook_statuses = dict(sorted(statuses.items()))
    return counts


def _plain(sent: Any) -> str:
    """The text the bot asked to send (the server may render entities; params keep the original)."""
    params = sent.params
    value = params.get("text", params.get("caption"))
    return str(value) if value is not None else str(sent.text or "")
