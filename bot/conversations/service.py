"""Queries and writes for cases and messages. Services flush, never commit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, String, bindparam, func, insert, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased, lazyload, make_transient_to_detached

from bot.bus import emit
from bot.conversations.enums import ACTIVE_STATUSES, AuthorKind, CaseStatus
from bot.conversations.models import Case, CaseEvent, InboundReceipt, Message, MessageRef
from bot.db import PerDialect, insert_at_commit, insert_ignore_for
from bot.errors import Conflict
from bot.teams.models import Staff

# Allowed status changes; everything else is refused by transition_case.
TRANSITIONS: dict[str, set[str]] = {
    CaseStatus.OPEN: {CaseStatus.WAITING_STAFF, CaseStatus.WAITING_CUSTOMER, CaseStatus.RESOLVED},
    CaseStatus.WAITING_STAFF: {CaseStatus.WAITING_CUSTOMER, CaseStatus.RESOLVED},
    CaseStatus.WAITING_CUSTOMER: {CaseStatus.WAITING_STAFF, CaseStatus.RESOLVED},
    CaseStatus.RESOLVED: {CaseStatus.CLOSED, CaseStatus.OPEN},
    CaseStatus.CLOSED: {CaseStatus.OPEN},
}


# The inbound path's statements, built once (see PerDialect): their values are bound per execution.
_RECEIPT = PerDialect(
    lambda dialect: insert_ignore_for(dialect, InboundReceipt.__table__).returning(
        InboundReceipt.__table__.c.id
    )
)
_RECEIPTS = PerDialect(
    lambda dialect: insert_ignore_for(dialect, InboundReceipt.__table__).returning(
        InboundReceipt.__table__.c.channel,
        InboundReceipt.__table__.c.chat_id,
        InboundReceipt.__table__.c.external_id,
    )
)
_RECORDED = (
    "receipts_recorded"  # Session.info: {(channel, chat id, external id): recorded by record_receipts}
)
_ACTIVE_LITERALS: list[ColumnElement[str]] = [literal_column(f"'{s.value}'") for s in ACTIVE_STATUSES]
_ACTIVE_CASE = (
    select(Case)
    # The caller has the group loaded already (the session's identity map answers case.group):
    # joining it again, and its customer, made this the costliest lookup of a message.
    .options(lazyload(Case.group))
    # Literal statuses: an IN over a bound list is re-rendered on every execution.
    .where(Case.group_id == bindparam("group_id"), Case.status.in_(_ACTIVE_LITERALS))
    .order_by(Case.opened_at.desc(), Case.id.desc())
    .limit(1)
)
_NEWEST_ACTIVE = aliased(Case)
_ACTIVE_KNOWN = "active_cases_known"  # Session.info: {group id: active Case or None}, as a lookup found it


def newest_active_case_id(group_id: Any) -> Any:
    """A group's active case id as a correlated subquery: sender lookups bring the case along (one
    round trip less per message)."""
    return (
        select(_NEWEST_ACTIVE.id)
        .where(_NEWEST_ACTIVE.group_id == group_id, _NEWEST_ACTIVE.status.in_(_ACTIVE_LITERALS))
        .order_by(_NEWEST_ACTIVE.opened_at.desc(), _NEWEST_ACTIVE.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def remember_active_case(session: AsyncSession, *, group_id: int, case: Case | None) -> None:
    """Note a group's active case (or none) as a lookup in this transaction found it; read once."""
    # The dict holds the case strongly: the identity map alone may let a clean object go.
    session.info.setdefault(_ACTIVE_KNOWN, {})[group_id] = case


def forget_active_case(session: AsyncSession, group_id: int) -> None:
    """A case of the group opened or changed status: what a lookup found no longer holds."""
    session.info.get(_ACTIVE_KNOWN, {}).pop(group_id, None)


_LAST_BOT_ANSWER_AT = (
    select(Message.created_at)
    .where(Message.group_id == bindparam("group_id"), Message.author_kind == AuthorKind.BOT)
    .order_by(Message.id.desc())
    .limit(1)
)
_LAST_BOT = aliased(Message)
_BOT_ANSWERS_KNOWN = "bot_answers_known"  # Session.info: {group id: last bot answer's time or None}


def last_bot_answer_subquery(group_id: Any) -> Any:
    """A group's last bot answer time as a correlated subquery: sender lookups bring it along (an
    answer asks whether the bot answered a moment ago; one round trip less per answer)."""
    return (
        select(_LAST_BOT.created_at)
        .where(_LAST_BOT.group_id == group_id, _LAST_BOT.author_kind == literal_column(f"'{AuthorKind.BOT}'"))
        .order_by(_LAST_BOT.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def remember_last_bot_answer(session: AsyncSession, *, group_id: int, at: datetime | None) -> None:
    """Note when the bot last answered in a group (or never), as a lookup in this transaction found it."""
    session.info.setdefault(_BOT_ANSWERS_KNOWN, {})[group_id] = at


_RECENT_CASES = (
    select(func.count())
    .select_from(Case)
    .where(Case.group_id == bindparam("group_id"), Case.opened_at >= bindparam("since"))
)

_MESSAGE_VALUES = [c.key for c in Message.__table__.columns if c.key != "id"]
_INSERT_MESSAGE = insert(Message).returning(Message.id)
_INSERT_REF = insert(MessageRef)
_REF_KEYS = ("ref_channel", "ref_chat_id", "ref_external_id")


def _insert_message_and_ref() -> Any:
    """PostgreSQL: the message and its channel id in one statement (a data-modifying CTE)."""
    table = Message.__table__
    new = insert(Message).values({c: bindparam(c, type_=table.c[c].type) for c in _MESSAGE_VALUES})
    new_id = new.returning(Message.id).cte("new_message")
    return (
        insert(MessageRef)
        .from_select(
            ["message_id", "channel", "chat_id", "external_id"],
            select(new_id.c.id, *(bindparam(k, type_=String()) for k in _REF_KEYS)),
        )
        .returning(MessageRef.message_id)
    )


_INSERT_MESSAGE_AND_REF = _insert_message_and_ref()


async def record_receipts(session: AsyncSession, keys: list[tuple[str, str, str]], *, now: datetime) -> None:
    """Record several inbound events in one INSERT (a shared transaction's); record_receipt reads it."""
    unique = list(dict.fromkeys(keys))
    rows = [{"channel": c, "chat_id": ch, "external_id": e, "received_at": now} for c, ch, e in unique]
    won = {tuple(row) for row in await session.execute(_RECEIPTS(session), rows)}
    session.info.setdefault(_RECORDED, {}).update({key: key in won for key in unique})


def note_receipt(session: AsyncSession, key: tuple[str, str, str], *, fresh: bool) -> None:
    """Note an inbound event's receipt, recorded by another statement of this transaction; read once."""
    session.info.setdefault(_RECORDED, {})[key] = fresh


async def record_receipt(
    session: AsyncSession, *, channel: str, chat_id: str, external_id: str, now: datetime
) -> bool:
    """Remember an inbound event; False if it was seen before (a redelivery)."""
    # Each outcome of record_receipts is used once: the same event again in this transaction finds
    # the row the first one inserted.
    recorded = session.info.get(_RECORDED, {}).pop((channel, chat_id, external_id), None)
    if recorded is not None:
        return bool(recorded)
    result = await session.execute(
        _RECEIPT(session),
        {"channel": channel, "chat_id": chat_id, "external_id": external_id, "received_at": now},
    )
    return result.scalar() is not None


def add_case_event(
    session: AsyncSession,
    *,
    case: Case,
    kind: str,
    now: datetime,
    actor_staff_id: int | None = None,
    from_status: str | None = None,
    to_status: str | None = None,
    data: dict[str, Any] | None = None,
) -> CaseEvent:
    """Append to a case's history."""
    event = CaseEvent(
        case_id=case.id,
        at=now,
        kind=kind,
        from_status=from_status,
        to_status=to_status,
        actor_staff_id=actor_staff_id,
        data=data or {},
    )
    session.add(event)
    return event


async def transition_case(
    session: AsyncSession,
    *,
    case: Case,
    to: str,
    now: datetime,
    actor_staff_id: int | None = None,
    reason: str = "",
) -> str:
    """The one way to change a case's status: checks the move, stamps times, writes the event."""
    current = case.status
    if to == current:
        return current
    if to not in TRANSITIONS.get(current, set()):
        raise Conflict("case.bad_transition", f"case {case.id} cannot go from {current} to {to}")
    case.status = to
    forget_active_case(session, case.group_id)
    if to == CaseStatus.RESOLVED:
        case.resolved_at = now
    elif to == CaseStatus.CLOSED:
        case.closed_at = now
    elif to == CaseStatus.OPEN:
        case.resolved_at = None
        case.closed_at = None
        case.reopen_count += 1
    add_case_event(
        session,
        case=case,
        kind="status",
        now=now,
        actor_staff_id=actor_staff_id,
        from_status=current,
        to_status=to,
        data={"reason": reason} if reason else None,
    )
    emit(session, f"group:{case.group_id}", {"type": "case.status", "case_id": case.id, "status": to})
    if case.assignee_id:
        emit(session, f"staff:{case.assignee_id}", {"type": "case.status", "case_id": case.id, "status": to})
    await session.flush()
    return current


async def active_case(session: AsyncSession, *, group_id: int) -> Case | None:
    """The group's case that is still being worked on, newest first."""
    known = session.info.get(_ACTIVE_KNOWN, {})
    if group_id in known:  # used once: a second message of the group in this transaction reads afresh
        return known.pop(group_id)
    return await session.scalar(_ACTIVE_CASE, {"group_id": group_id})


async def get_case(session: AsyncSession, *, case_id: int) -> Case | None:
    """A case by id."""
    return await session.get(Case, case_id)


async def list_group_cases(session: AsyncSession, *, group_id: int) -> list[Case]:
    """A group's cases, newest first."""
    rows = await session.scalars(select(Case).where(Case.group_id == group_id).order_by(Case.id.desc()))
    return list(rows.unique().all())


async def add_message(
    session: AsyncSession,
    *,
    group_id: int,
    author_kind: str,
    channel: str,
    body: str,
    now: datetime,
    case_id: int | None = None,
    author_staff_id: int | None = None,
    internal: bool = False,
    attachments: list[Any] | None = None,
    meta: dict[str, Any] | None = None,
    ref: tuple[str, str, str] | None = None,
) -> Message:
    """Store a message (with its channel, chat and message id if `ref`), announce it after commit."""
    message = Message(
        group_id=group_id,
        case_id=case_id,
        author_kind=author_kind,
        channel=channel,
        body=body,
        internal=internal,
        author_staff_id=author_staff_id,
        attachments=attachments or [],
        meta=meta or {},
        created_at=now,
    )
    # Set the author object too, so views can read it without lazy IO on a new instance.
    message.author_staff = await session.get(Staff, author_staff_id) if author_staff_id else None
    await _insert_now(session, message, ref)
    if author_kind == AuthorKind.BOT:  # a note of the group's last answer no longer holds
        session.info.get(_BOT_ANSWERS_KNOWN, {}).pop(group_id, None)
    emit(
        session,
        f"group:{group_id}",
        {"type": "message.new", "message_id": message.id, "internal": internal, "author_kind": author_kind},
    )
    return message


async def _insert_now(session: AsyncSession, message: Message, ref: tuple[str, str, str] | None) -> None:
    """INSERT a new message at once and keep it in the session as if it had been loaded.

    Callers need its id straight away. A flush for that walked the unit of work and cost about
    twice a prebuilt INSERT ... RETURNING (bot.db.PerDialect); every inbound message stores two.
    An inbound message's channel id goes in the same statement on PostgreSQL (one round trip
    less), at commit on SQLite.
    """
    conn = await session.connection()
    values = {column: getattr(message, column) for column in _MESSAGE_VALUES}
    if ref is not None and conn.dialect.name == "postgresql":
        values.update(zip(_REF_KEYS, ref, strict=True))
        message.id = (await conn.execute(_INSERT_MESSAGE_AND_REF, values)).scalar_one()
    else:
        message.id = (await conn.execute(_INSERT_MESSAGE, values)).scalar_one()
        if ref is not None:
            add_ref(session, message=message, channel=ref[0], chat_id=ref[1], external_id=ref[2])
    make_transient_to_detached(message)  # persistent once added: no second INSERT at the next flush
    session.add(message)


def add_ref(session: AsyncSession, *, message: Message, channel: str, chat_id: str, external_id: str) -> None:
    """Remember a message's id on a channel."""
    insert_at_commit(
        session,
        _INSERT_REF,
        {"message_id": message.id, "channel": channel, "chat_id": chat_id, "external_id": external_id},
    )


async def message_by_ref(
    session: AsyncSession, *, channel: str, chat_id: str, external_id: str
) -> Message | None:
    """The message behind a channel's chat/message id."""
    return await session.scalar(
        select(Message)
        .join(MessageRef, MessageRef.message_id == Message.id)
        .where(
            MessageRef.channel == channel,
            MessageRef.chat_id == chat_id,
            MessageRef.external_id == external_id,
        )
    )


async def list_messages(
    session: AsyncSession,
    *,
    group_id: int,
    after_id: int = 0,
    include_internal: bool,
    limit: int = 200,
    newest: bool = False,
) -> list[Message]:
    """A group's messages after an id, oldest first (or the newest `limit`); customers never get notes."""
    query = select(Message).where(Message.group_id == group_id, Message.id > after_id)
    if not include_internal:
        query = query.where(Message.internal.is_(False))
    order = Message.id.desc() if newest else Message.id
    rows = list((await session.scalars(query.order_by(order).limit(limit))).unique().all())
    return rows[::-1] if newest else rows


async def last_customer_message(session: AsyncSession, *, group_id: int) -> Message | None:
    """The newest message the customer wrote."""
    return await session.scalar(
        select(Message)
        .where(Message.group_id == group_id, Message.author_kind == AuthorKind.CUSTOMER)
        .order_by(Message.id.desc())
        .limit(1)
    )


async def last_bot_answer_at(session: AsyncSession, *, group_id: int) -> datetime | None:
    """When the bot last sent a knowledge-base answer in a group (only the time: no message object)."""
    known = session.info.get(_BOT_ANSWERS_KNOWN, {})
    if group_id in known:  # used once, like active_case's note
        at: datetime | None = known.pop(group_id)
        return at
    return await session.scalar(_LAST_BOT_ANSWER_AT, {"group_id": group_id})


async def count_recent_cases(session: AsyncSession, *, group_id: int, since: datetime) -> int:
    """Cases a group opened since an instant."""
    return int(await session.scalar(_RECENT_CASES, {"group_id": group_id, "since": since}) or 0)
