"""Web chat messages sharing a transaction: receipts in one INSERT, sessions found in one query."""

from __future__ import annotations

import asyncio

from sqlalchemy import event, select

from bot.conversations import webchat
from bot.conversations.models import Message
from bot.errors import NotFound
from bot.runtime import Runtime
from bot.seed import seed_demo
from tests.live import DEMO_HASH, DEMO_PASSWORD


async def test_messages_arriving_together_share_their_receipt_and_session_lookups(rt: Runtime) -> None:
    async with rt.transaction() as session:
        await seed_demo(session, password=DEMO_PASSWORD, password_hash=DEMO_HASH)
        chats = [
            await webchat.start_session(session, rt, display_name=name, locale="en")
            for name in ("Ann", "Bob", "Cyd")
        ]
    ann, bob, cyd = (chat.id for chat in chats)
    assert rt.group_commit is not None
    shared = rt.group_commit.shared
    seen: list[str] = []

    def _seen(_c: object, _cur: object, statement: str, *_a: object) -> None:
        seen.append(" ".join(statement.split()))

    sends = [
        (ann, "a1", "How often should I service my car?"),
        (bob, "b1", "How long is the warranty?"),
        (cyd, "c1", "My brakes squeal"),
        (cyd, "c2", "since Monday"),  # the same session twice: each reads afresh
        (bob, "b1", "How long is the warranty?"),  # the browser's retry, alongside the first try
    ]
    event.listen(rt.engine.sync_engine, "before_cursor_execute", _seen)
    try:
        outcomes = await asyncio.gather(
            *(webchat.post_message(rt, session_id=s, external_id=e, text=t) for s, e, t in sends),
            return_exceptions=True,
        )
    finally:
        event.remove(rt.engine.sync_engine, "before_cursor_execute", _seen)
    assert [getattr(r, "duplicate", None) for r in outcomes] == [False, False, False, False, True]
    assert rt.group_commit.shared == shared + 1, "the five went in one transaction"
    receipts = [s for s in seen if s.startswith("INSERT INTO inbound_receipts")]
    assert len(receipts) == 2, receipts  # one for all, one more for the retry's own try
    lookups = [s for s in seen if "FROM webchat_sessions JOIN customers" in s]
    # Ann's at once; Bob's and Cyd's two messages each read afresh
    assert len(lookups) == 5 and sum("webchat_sessions.id IN (" in s for s in lookups) == 1, lookups
    # Each lookup brought the session's active case along: none was looked up by itself.
    assert not [s for s in seen if s.startswith("SELECT cases.id")], seen
    together = [
        webchat.post_message(rt, session_id=s, external_id=e, text="hello")
        for s, e in ((ann, "a2"), ("no-such-session", "x1"), (bob, "b2"))
    ]
    outcomes = await asyncio.gather(*together, return_exceptions=True)
    assert isinstance(outcomes[1], NotFound), "an unknown session fails alone"
    assert [getattr(r, "duplicate", None) for r in (outcomes[0], outcomes[2])] == [False, False]
    async with rt.maker() as session:
        bodies = (await session.scalars(select(Message.body).where(Message.author_kind == "customer"))).all()
    assert sorted(bodies) == sorted([t for _, _, t in sends[:4]] + ["hello", "hello"])
