"""Updates sharing a transaction: claimed in one INSERT, their senders found in one query."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import event, func, select

from bot.conversations import service as conv_service
from bot.conversations.models import InboundReceipt, Message
from bot.runtime import Runtime
from bot.seed import seed_demo
from bot.teams import service as teams_service
from bot.teams.models import Customer
from bot.tg import service as tg_service
from bot.tg.models import TelegramUpdate
from handlers.telegram.wiring import TelegramChannel
from tests.botapi import BotApiServer
from tests.inbound import webchat_customer, webchat_says
from tests.live import DEMO_HASH, DEMO_PASSWORD
from tests.telegram.test_webhook import Butler, update_json, webhook_butler


def _statements(rt: Runtime) -> tuple[list[str], Any]:
    seen: list[str] = []

    def _seen(_c: object, _cur: object, statement: str, *_a: object) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(rt.engine.sync_engine, "before_cursor_execute", _seen)
    return seen, lambda: event.remove(rt.engine.sync_engine, "before_cursor_execute", _seen)


async def test_updates_arriving_together_share_their_claim_and_sender_lookups(
    butler: Butler, botapi: BotApiServer
) -> None:
    for user in (7101, 7102, 7103, 7104):
        botapi.user(user, f"U{user}", language_code="en", started=True)
    async with webhook_butler(butler, botapi) as live:
        channel: TelegramChannel = live.rt.extras["telegram"]
        await channel.ensure_ready()
        for n, user in enumerate((7101, 7102, 7103)):  # three known customers (7104 is new)
            assert await channel.runner.process(update_json(800 + n, user, 1, "hello")) == "processed"
        assert live.rt.group_commit is not None
        shared = live.rt.group_commit.shared
        batch = [
            update_json(810, 7101, 2, "How often should I service my car?"),
            update_json(811, 7102, 2, "How long is the warranty?"),
            update_json(812, 7103, 2, "My brakes squeal"),
            update_json(813, 7103, 3, "since Monday"),  # the same sender twice: each reads afresh
            update_json(810, 7101, 2, "How often should I service my car?"),  # redelivered alongside
            update_json(814, 7104, 1, "hi, I am new"),
        ]
        seen, stop = _statements(live.rt)
        outcomes = await asyncio.gather(*(channel.runner.process(u) for u in batch))
        stop()
        assert outcomes == ["processed"] * 4 + ["duplicate", "processed"]
        assert live.rt.group_commit.shared == shared + 1, "all six went in one transaction"
        claims = [s for s in seen if s.startswith("INSERT INTO telegram_updates")]
        assert len(claims) == 2, claims  # one for all, one more for the redelivered copy's own try
        lookups = [s for s in seen if "FROM channel_identities JOIN customers" in s]
        # 7102 and 7104 at once; 7101 (twice in the batch, with the redelivered copy) and 7103's
        # two messages each read afresh
        assert len(lookups) == 4, lookups
        assert sum("channel_identities.external_id IN (" in s for s in lookups) == 1
        # Each lookup brought the sender's active case along: none was looked up by itself.
        assert not [s for s in seen if s.startswith("SELECT cases.id")], seen
        async with live.rt.maker() as session:
            bodies = (
                await session.scalars(select(Message.body).where(Message.author_kind == "customer"))
            ).all()
            customers = await session.scalar(select(func.count()).select_from(Customer))
        assert sorted(b for b in bodies if b != "hello") == sorted({u["message"]["text"] for u in batch})
        assert customers == 4


async def test_prefetched_outcomes_match_single_lookups(rt: Runtime) -> None:
    """On both databases: batch claims and sender lookups agree with the one-at-a-time statements."""
    async with rt.transaction() as session:
        await seed_demo(session, password=DEMO_PASSWORD, password_hash=DEMO_HASH)
    for user in ("ann", "bob"):
        await webchat_says(rt, user, "hello", message_id=f"{user}-1")
    now = rt.clock.now()
    async with rt.transaction() as session:
        assert await tg_service.claim_update(session, update_id=5, kind="message", now=now)
    async with rt.transaction() as session:
        await tg_service.claim_updates(session, [(5, "message"), (6, "message"), (6, "message")], now=now)
        await teams_service.prefetch_identities(
            session, channel="webchat", external_ids=["ann", "bob", "bob", "cyd"]
        )
        assert not await tg_service.claim_update(session, update_id=5, kind="message", now=now)
        assert await tg_service.claim_update(session, update_id=6, kind="message", now=now)
        assert not await tg_service.claim_update(session, update_id=6, kind="message", now=now)
        found = {}
        for user in ("ann", "bob", "cyd"):
            customer, identity = await webchat_customer(session, user, now=now)
            found[user] = (customer.display_name, identity.external_id)
        group = await teams_service.get_group_for_customer(session, customer_id=customer.id)
    assert found == {"ann": ("ann", "ann"), "bob": ("bob", "bob"), "cyd": ("cyd", "cyd")}
    assert group is None, "cyd is new: no group yet"


async def test_a_claim_carries_its_message_receipt(rt: Runtime) -> None:
    """On both databases the outcomes match record_receipt's; PostgreSQL writes both in one statement."""
    now = rt.clock.now()
    key = ("telegram", "7201", "1")
    seen, stop = _statements(rt)
    async with rt.transaction() as session:
        assert await tg_service.claim_update(session, update_id=20, kind="message", now=now, receipt=key)
        assert await conv_service.record_receipt(
            session, channel=key[0], chat_id=key[1], external_id=key[2], now=now
        )
    stop()
    receipts = [s for s in seen if s.startswith("INSERT INTO inbound_receipts")]
    together = [s for s in seen if s.startswith("WITH claim AS")]
    if rt.engine.dialect.name == "postgresql":
        assert (len(together), len(receipts)) == (1, 0), seen
    else:
        assert (len(together), len(receipts)) == (0, 1), seen
    async with rt.transaction() as session:
        # The same update again: claimed before, and nothing else is written.
        assert not await tg_service.claim_update(session, update_id=20, kind="message", now=now, receipt=key)
    async with rt.transaction() as session:
        # Another update carrying the same message: a new claim, but the message was seen before.
        assert await tg_service.claim_update(session, update_id=21, kind="message", now=now, receipt=key)
        assert not await conv_service.record_receipt(
            session, channel=key[0], chat_id=key[1], external_id=key[2], now=now
        )
    async with rt.maker() as session:
        rows = await session.scalar(select(func.count()).select_from(InboundReceipt))
        claims = await session.scalar(select(func.count()).select_from(TelegramUpdate))
    assert (rows, claims) == (1, 2)
