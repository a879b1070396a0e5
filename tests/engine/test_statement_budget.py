"""SQL statements per inbound message: a guard against hot-path regressions (counts, not times)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from bot.conversations.flows import InboundResult
from bot.conversations.models import Message
from bot.runtime import Runtime
from bot.seed import seed_demo
from knowledge.answerer import KnowledgeAnswerer
from tests.inbound import webchat_says
from tests.live import DEMO_HASH, DEMO_PASSWORD

# Measured, plus one. Web chat on SQLite: 12, 5, 15, 4 (PostgreSQL: 11, 4, 12, 3) since team
# forming inserts its seats in one statement and takes the new group and identity rows from their
# INSERT ... RETURNING, and the chat session's lookup brings the customer's group, active case, last
# bot answer and (being the customer's only channel) their identity along. PostgreSQL also writes a
# message and its channel id in one statement, and a case's two SLA clocks, and their two events, in
# one INSERT each.
BUDGET = {
    "sqlite": {"first contact": 13, "bot answer": 6, "case opens": 16, "joins the case": 5},
    "postgresql": {"first contact": 12, "bot answer": 5, "case opens": 13, "joins the case": 4},
}


@contextmanager
def counting(rt: Runtime) -> Iterator[list[str]]:
    """Collect the statements the engine runs inside the block."""
    seen: list[str] = []

    def _count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement.split(None, 1)[0].upper())

    event.listen(rt.engine.sync_engine, "before_cursor_execute", _count)
    try:
        yield seen
    finally:
        event.remove(rt.engine.sync_engine, "before_cursor_execute", _count)


async def _send(rt: Runtime, user: str, n: int, text: str) -> tuple[list[str], InboundResult]:
    with counting(rt) as seen:
        result = await webchat_says(rt, user, text, message_id=f"m{n}", display_name="")
    return seen, result


async def test_statements_per_message_stay_within_budget(rt: Runtime, backend: str) -> None:
    async with rt.transaction() as session:
        await seed_demo(session, password=DEMO_PASSWORD, password_hash=DEMO_HASH)
    assert isinstance(rt.answerer, KnowledgeAnswerer)
    await rt.answerer.reload(rt.maker)
    await _send(rt, "b", 1, "How much does a service cost?")  # b's first contact, answered by the bot
    first, first_result = await _send(rt, "a", 2, "How long is the car warranty?")
    answer, answer_result = await _send(rt, "b", 3, "How often should I service my car?")
    opens, opens_result = await _send(rt, "b", 4, "My brakes make a grinding noise, please call me")
    joins, joins_result = await _send(rt, "b", 5, "It happens mostly in the morning")
    # Each message took the path it stands for.
    assert first_result.group_created and first_result.answered_by_bot
    assert answer_result.answered_by_bot and not answer_result.group_created
    assert opens_result.case_id is not None and joins_result.case_id == opens_result.case_id
    async with rt.maker() as session:  # the answer names its question; the question is written once
        answer_msg = await session.get(Message, answer_result.bot_message_id)
        assert answer_msg is not None and answer_msg.meta["answers"] == answer_result.message_id
    counts = {"first contact": first, "bot answer": answer, "case opens": opens, "joins the case": joins}
    budget = BUDGET[backend]
    over = {k: (len(v), budget[k], v) for k, v in counts.items() if len(v) > budget[k]}
    assert not over, over
