"""Queries and writes for Telegram state. Services flush, never commit."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, exists, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from bot.conversations import service as conv_service
from bot.conversations.models import InboundReceipt, MessageRef
from bot.db import PerDialect, insert_at_commit, insert_ignore, insert_ignore_for
from bot.teams.enums import Channel
from bot.teams.models import ButlerGroup, ChannelIdentity, Staff
from bot.tg.models import StaffLinkToken, TelegramTopic, TelegramUpdate

DONE, RETRYING, FAILED = "done", "retrying", "failed"
# Every update's first statement, built once per dialect (PerDialect says why).
_CLAIM = PerDialect(
    lambda dialect: insert_ignore_for(dialect, TelegramUpdate.__table__).returning(
        TelegramUpdate.__table__.c.update_id
    )
)
_CLAIM_COLUMNS = ("update_id", "kind", "status", "attempts", "received_at")
_RECEIPT_COLUMNS = ("channel", "chat_id", "external_id", "received_at")


def _claim_and_receipt() -> Any:
    """PostgreSQL: an update's claim and, if the update is new, its message's receipt, in one trip.

    One row (update id, receipt id or NULL when the message was seen before) if the claim is new;
    none if the update was claimed before.
    """
    updates: Any = TelegramUpdate.__table__
    receipts: Any = InboundReceipt.__table__
    claim = (
        postgresql.insert(updates)
        .values({c: bindparam(c, type_=updates.c[c].type) for c in _CLAIM_COLUMNS})
        .on_conflict_do_nothing()
        .returning(updates.c.update_id)
        .cte("claim")
    )
    values = select(*(bindparam(f"r_{c}", type_=receipts.c[c].type) for c in _RECEIPT_COLUMNS))
    receipt = (
        postgresql.insert(receipts)
        .from_select(list(_RECEIPT_COLUMNS), values.where(exists(claim.select())))
        .on_conflict_do_nothing()
        .returning(receipts.c.id)
        .cte("receipt")
    )
    return select(claim.c.update_id, select(receipt.c.id).scalar_subquery())


_CLAIM_AND_RECEIPT = _claim_and_receipt()

# Lookups of the staff topics, the sender and the staff's messages, built once (PerDialect says why).
_GROUP_OF_THREAD = select(TelegramTopic.group_id).where(
    TelegramTopic.chat_id == bindparam("chat_id"), TelegramTopic.thread_id == bindparam("thread_id")
)
_STAFF_BY_TELEGRAM = select(Staff).where(
    Staff.telegram_user_id == bindparam("telegram_user_id"), Staff.active.is_(True)
)
_IDENTITY_BY_CHAT = select(ChannelIdentity).where(
    ChannelIdentity.channel == Channel.TELEGRAM, ChannelIdentity.chat_id == bindparam("chat_id")
)
_REF_IN_CHAT = (
    select(MessageRef.external_id)
    .where(
        MessageRef.message_id == bindparam("message_id"),
        MessageRef.channel == Channel.TELEGRAM,
        MessageRef.chat_id == bindparam("chat_id"),
    )
    .order_by(MessageRef.id)
    .limit(1)
)
_RECORD_REF = PerDialect(lambda dialect: insert_ignore_for(dialect, MessageRef.__table__))


_CLAIMED = "telegram_updates_claimed"  # Session.info: {update_id: claimed by claim_updates}


def _claim_row(update_id: int, kind: str, now: datetime) -> dict[str, object]:
    return {"update_id": update_id, "kind": kind[:32], "status": DONE, "attempts": 0, "received_at": now}


async def claim_updates(session: AsyncSession, updates: list[tuple[int, str]], *, now: datetime) -> None:
    """Claim several updates in one INSERT (a shared transaction's); claim_update reads the outcome."""
    rows = list({update_id: _claim_row(update_id, kind, now) for update_id, kind in updates}.values())
    inserted = await session.execute(_CLAIM(session), rows)
    won = set(inserted.scalars())
    session.info.setdefault(_CLAIMED, {}).update({row["update_id"]: row["update_id"] in won for row in rows})


async def claim_update(
    session: AsyncSession,
    *,
    update_id: int,
    kind: str,
    now: datetime,
    receipt: tuple[str, str, str] | None = None,
) -> bool:
    """Mark an update as processed in this transaction; False if it was processed before.

    `receipt` (channel, chat id, message id): the update's customer message, whose receipt
    (conversations' record_receipt) PostgreSQL records in the same statement as the claim.
    """
    # Each outcome of claim_updates is used once: the same update again in this transaction (a
    # redelivery that arrived alongside) finds the row its first copy inserted, and is a duplicate.
    claimed = session.info.get(_CLAIMED, {}).pop(update_id, None)
    if claimed is True:
        return True
    if claimed is None and receipt is not None and session.get_bind().dialect.name == "postgresql":
        row = _claim_row(update_id, kind, now)
        row.update({f"r_{c}": v for c, v in zip(_RECEIPT_COLUMNS, (*receipt, now), strict=True)})
        both = (await session.execute(_CLAIM_AND_RECEIPT, row)).first()
        if both is not None:
            conv_service.note_receipt(session, receipt, fresh=both[1] is not None)
            return True
    elif claimed is None:
        inserted = await session.execute(_CLAIM(session), _claim_row(update_id, kind, now))
        if inserted.scalar() is not None:
            return True
    # An earlier attempt failed before commit and left a "retrying" marker: this attempt takes over.
    retaken = await session.execute(
        update(TelegramUpdate)
        .where(TelegramUpdate.update_id == update_id, TelegramUpdate.status == RETRYING)
        .values(status=DONE, error=None)
        .returning(TelegramUpdate.update_id)
    )
    return retaken.scalar() is not None


async def note_failure(
    session: AsyncSession, *, update_id: int, kind: str, error: str, now: datetime, max_attempts: int
) -> bool:
    """Count a failed attempt at an update; True when it reached max_attempts and was given up."""
    await session.execute(
        insert_ignore(session, TelegramUpdate.__table__).values(
            update_id=update_id, kind=kind[:32], status=RETRYING, attempts=0, received_at=now
        )
    )
    row = await session.get(TelegramUpdate, update_id, populate_existing=True)
    if row is None or row.status != RETRYING:
        return False
    row.attempts += 1
    row.error = error[:2000]
    if row.attempts >= max_attempts:
        row.status = FAILED
        return True
    return False


async def prune_updates(session: AsyncSession, *, before: datetime) -> int:
    """Forget update receipts older than Telegram's redelivery horizon."""
    from sqlalchemy import delete

    result = await session.execute(delete(TelegramUpdate).where(TelegramUpdate.received_at < before))
    return int(getattr(result, "rowcount", 0) or 0)


async def reserve_topic(
    session: AsyncSession, *, group_id: int, chat_id: int, name: str, now: datetime
) -> bool:
    """Record that a group's topic is wanted; True only for the one transaction that did it first."""
    inserted = await session.execute(
        insert_ignore(session, TelegramTopic.__table__)
        .values(group_id=group_id, chat_id=chat_id, name=name[:128], requested_at=now)
        .returning(TelegramTopic.__table__.c.group_id)
    )
    return inserted.scalar() is not None


async def get_topic(session: AsyncSession, *, group_id: int) -> TelegramTopic | None:
    """A group's topic row, freshly read."""
    return await session.get(TelegramTopic, group_id, populate_existing=True)


async def set_topic_thread(session: AsyncSession, *, group_id: int, thread_id: int, now: datetime) -> None:
    """Store the thread id Telegram gave the topic, on the topic and on the group."""
    topic = await session.get(TelegramTopic, group_id)
    if topic is not None:
        topic.thread_id, topic.created_at = thread_id, now
    group = await session.get(ButlerGroup, group_id)
    if group is not None:
        group.telegram_thread_id = thread_id
    await session.flush()


async def group_for_thread(session: AsyncSession, *, chat_id: int, thread_id: int) -> ButlerGroup | None:
    """The butler group behind a topic of the staff supergroup."""
    group_id = await session.scalar(_GROUP_OF_THREAD, {"chat_id": chat_id, "thread_id": thread_id})
    return await session.get(ButlerGroup, group_id) if group_id is not None else None


async def staff_by_telegram(session: AsyncSession, *, telegram_user_id: int) -> Staff | None:
    """The active staff member linked to a Telegram account."""
    return await session.scalar(_STAFF_BY_TELEGRAM, {"telegram_user_id": telegram_user_id})


async def identity_by_chat(session: AsyncSession, *, chat_id: int) -> ChannelIdentity | None:
    """The customer's Telegram identity for a private chat."""
    return await session.scalar(_IDENTITY_BY_CHAT, {"chat_id": str(chat_id)})


async def ref_in_chat(session: AsyncSession, *, message_id: int, chat_id: int) -> int | None:
    """The Telegram message id of one of our messages in a chat (the first copy sent there)."""
    external = await session.scalar(_REF_IN_CHAT, {"message_id": message_id, "chat_id": str(chat_id)})
    return int(external) if external is not None else None


async def refs_of(session: AsyncSession, *, message_id: int) -> list[MessageRef]:
    """Every Telegram copy of one of our messages."""
    rows = await session.scalars(
        select(MessageRef).where(MessageRef.message_id == message_id, MessageRef.channel == Channel.TELEGRAM)
    )
    return list(rows.all())


def token_hash(token: str) -> str:
    """How a link token is stored (never in clear)."""
    return hashlib.sha256(token.encode()).hexdigest()


def add_link_token(
    session: AsyncSession, *, staff_id: int, token: str, now: datetime, expires_at: datetime
) -> None:
    """Store a new one-time link token."""
    session.add(
        StaffLinkToken(token_hash=token_hash(token), staff_id=staff_id, created_at=now, expires_at=expires_at)
    )


async def take_link_token(session: AsyncSession, *, token: str, now: datetime) -> int | None:
    """Use up a valid token; returns its staff id, or None if unknown, used or expired."""
    used = await session.execute(
        update(StaffLinkToken)
        .where(
            StaffLinkToken.token_hash == token_hash(token),
            StaffLinkToken.used_at.is_(None),
            StaffLinkToken.expires_at > now,
        )
        .values(used_at=now)
        .returning(StaffLinkToken.staff_id)
    )
    return used.scalar()


def record_ref(session: AsyncSession, *, message_id: int, chat_id: int, external_id: int) -> None:
    """Remember the Telegram id of a copy we sent (idempotent), at commit with the others recorded."""
    insert_at_commit(
        session,
        _RECORD_REF(session),
        {
            "message_id": message_id,
            "channel": Channel.TELEGRAM,
            "chat_id": str(chat_id),
            "external_id": str(external_id),
        },
    )


async def clear_topic_thread(session: AsyncSession, *, group_id: int, thread_id: int | None = None) -> None:
    """Forget a topic Telegram no longer knows (deleted by an admin), so it is created again.

    With `thread_id`, only if that is still the stored thread (not one created since).
    """
    topic = await session.get(TelegramTopic, group_id, populate_existing=True)
    if topic is None or (thread_id is not None and topic.thread_id != thread_id):
        return
    topic.thread_id = None
    group = await session.get(ButlerGroup, group_id)
    if group is not None:
        group.telegram_thread_id = None
    await session.flush()
