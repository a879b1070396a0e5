"""Queries and writes for customers, staff, groups and memberships. Services flush, never commit."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, bindparam, exists, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased, lazyload
from sqlalchemy.orm.attributes import set_committed_value

from bot.bookings.service import OPEN_DRAFT_ID, remember_open_draft
from bot.conversations.enums import ACTIVE_STATUSES
from bot.conversations.models import Case
from bot.conversations.service import (
    last_bot_answer_subquery,
    newest_active_case_id,
    remember_active_case,
    remember_last_bot_answer,
)
from bot.db import insert_ignore
from bot.teams.assignment import Candidate, choose
from bot.teams.models import (
    AuditLog,
    ButlerGroup,
    ChannelIdentity,
    Customer,
    Dealer,
    Membership,
    ReadMark,
    Staff,
)


async def get_identity(session: AsyncSession, *, channel: str, external_id: str) -> ChannelIdentity | None:
    """The channel identity for a platform user, if known."""
    return await session.scalar(
        select(ChannelIdentity).where(
            ChannelIdentity.channel == channel, ChannelIdentity.external_id == external_id
        )
    )


_OTHER_IDENTITY = aliased(ChannelIdentity)
_IDENTITIES_KNOWN = "identities_known"  # Session.info: {customer id: all their channel identities}


def sole_identity(identity: Any) -> ColumnElement[bool]:
    """Whether an identity is its customer's only one: lookups bring that along, so that delivering
    an answer needs no query for the customer's channels."""
    return ~exists().where(
        _OTHER_IDENTITY.customer_id == identity.customer_id, _OTHER_IDENTITY.id != identity.id
    )


def remember_identities(
    session: AsyncSession, *, customer_id: int, identities: list[ChannelIdentity]
) -> None:
    """Note all of a customer's channel identities, as a lookup in this transaction found them."""
    session.info.setdefault(_IDENTITIES_KNOWN, {})[customer_id] = identities


def known_identities(session: AsyncSession, *, customer_id: int) -> list[ChannelIdentity] | None:
    """The customer's identities if a lookup noted them (used once, like active_case's note), else None."""
    return session.info.get(_IDENTITIES_KNOWN, {}).pop(customer_id, None)


def remember_lookup(
    session: AsyncSession,
    *,
    identity: ChannelIdentity | None,
    sole: bool | None,
    group: ButlerGroup | None,
    case: Case | None,
    last_bot_answer: datetime | None,
) -> None:
    """Note what a sender's lookup brought along: their identities, their group's case and last answer."""
    if identity is not None and sole:
        remember_identities(session, customer_id=identity.customer_id, identities=[identity])
    if group is not None:  # a customer without a group has no case and no answer to note
        remember_active_case(session, group_id=group.id, case=case)
        remember_last_bot_answer(session, group_id=group.id, at=last_bot_answer)


# Every message's first lookup, built once (bot.db.PerDialect says why).
_IDENTITY_ROW = (
    select(
        ChannelIdentity,
        Customer,
        ButlerGroup,
        OPEN_DRAFT_ID,
        Case,
        sole_identity(ChannelIdentity).label("sole"),
        last_bot_answer_subquery(ButlerGroup.id).label("last_bot_answer"),
    )
    .join(Customer, Customer.id == ChannelIdentity.customer_id)
    .outerjoin(ButlerGroup, ButlerGroup.customer_id == Customer.id)
    .outerjoin(Case, Case.id == newest_active_case_id(ButlerGroup.id))
    # The group's customer is the row's own Customer, the case's group the row's group: no second
    # join (both are in the identity map).
    .options(lazyload(ButlerGroup.customer), lazyload(Case.group))
    .where(ChannelIdentity.channel == bindparam("channel"))
)
_KNOWN_IDENTITY = _IDENTITY_ROW.where(ChannelIdentity.external_id == bindparam("external_id"))
_KNOWN_IDENTITIES = _IDENTITY_ROW.where(
    ChannelIdentity.external_id.in_(bindparam("external_ids", expanding=True))
)
_PREFETCHED = "identities_prefetched"  # Session.info: {(channel, external id): row or None}
_GROUP_OF_CUSTOMER = select(ButlerGroup).where(ButlerGroup.customer_id == bindparam("customer_id"))

DEFAULT_DEALER = object()  # find_or_create_customer: the first dealer, looked up on creation only


async def find_or_create_customer(
    session: AsyncSession,
    *,
    channel: str,
    external_id: str,
    chat_id: str | None,
    display_name: str,
    locale: str,
    dealer_id: int | object | None = DEFAULT_DEALER,
    now: datetime,
) -> tuple[Customer, ChannelIdentity, bool]:
    """Return the customer behind a channel identity, creating both on first contact."""
    prefetched = session.info.get(_PREFETCHED, {})
    if (channel, external_id) in prefetched:  # used once: a second message of theirs reads afresh
        known = prefetched.pop((channel, external_id))
    else:
        known = (
            await session.execute(_KNOWN_IDENTITY, {"channel": channel, "external_id": external_id})
        ).first()
        remember_row(session, known)
    if known is not None:  # every message after the first: one query for identity, customer, group, case
        remember_group(session, known[2])
        remember_open_draft(session, customer_id=known[1].id, draft_id=known[3])
        return known[1], known[0], False
    if dealer_id is DEFAULT_DEALER:  # looked up on creation only, not on every message
        dealer_id = await default_dealer_id(session)
    assert dealer_id is None or isinstance(dealer_id, int)
    customer = Customer(
        display_name=display_name[:200] or "Customer", locale=locale, dealer_id=dealer_id, created_at=now
    )
    session.add(customer)
    await session.flush()
    # Two deliveries of a first message can race here; the unique key picks one winner. The
    # winner's row comes back from the insert itself; only the loser reads the other one.
    identity = await session.scalar(
        insert_ignore(session, ChannelIdentity)
        .values(
            customer_id=customer.id,
            channel=channel,
            external_id=external_id,
            chat_id=chat_id,
            active=True,
            created_at=now,
        )
        .returning(ChannelIdentity)
    )
    if identity is None:
        identity = await get_identity(session, channel=channel, external_id=external_id)
    assert identity is not None
    if identity.customer_id != customer.id:
        await session.delete(customer)
        winner = await session.get(Customer, identity.customer_id)
        assert winner is not None
        return winner, identity, False
    remember_identities(session, customer_id=customer.id, identities=[identity])  # a new customer's only one
    return customer, identity, True


async def default_dealer_id(session: AsyncSession) -> int | None:
    """The dealer new customers belong to until one is chosen (the first configured)."""
    return await session.scalar(select(Dealer.id).order_by(Dealer.id).limit(1))


# Groups the session already loaded, by customer id. A query would return the same objects (from the
# session's identity map, attributes as loaded); groups are only deleted with their customer.
GROUPS_LOADED = "groups_by_customer"


async def prefetch_identities(session: AsyncSession, *, channel: str, external_ids: list[str]) -> None:
    """Look up several senders in one query for find_or_create_customer (a shared transaction's).

    Only senders named once: with two messages of one sender in the transaction, the second must see
    what the first changed (the group it formed), and each message reads afresh.
    """
    once = [eid for eid, n in Counter(external_ids).items() if n == 1]
    if not once:
        return
    found: dict[tuple[str, str], Any] = dict.fromkeys(((channel, eid) for eid in once), None)
    for row in await session.execute(_KNOWN_IDENTITIES, {"channel": channel, "external_ids": once}):
        found[channel, row[0].external_id] = row
        # Now, not when the sender's unit runs: a unit before it that opens or moves a case of the
        # group must find the note there to drop it.
        remember_row(session, row)
    session.info.setdefault(_PREFETCHED, {}).update(found)


def remember_row(session: AsyncSession, row: Any) -> None:
    """Note what a sender's lookup row brought along (see remember_lookup); the identity row and web
    chat's session row name their parts alike."""
    if row is not None:
        remember_lookup(
            session,
            identity=row.ChannelIdentity,
            sole=row.sole,
            group=row.ButlerGroup,
            case=row.Case,
            last_bot_answer=row.last_bot_answer,
        )


def remember_group(session: AsyncSession, group: ButlerGroup | None) -> None:
    """Note a group loaded along with its customer, so that get_group_for_customer needs no query."""
    if group is not None:
        session.info.setdefault(GROUPS_LOADED, {})[group.customer_id] = group


async def get_group_for_customer(session: AsyncSession, *, customer_id: int) -> ButlerGroup | None:
    """The customer's butler group, if formed."""
    loaded: ButlerGroup | None = session.info.get(GROUPS_LOADED, {}).get(customer_id)
    if loaded is not None:
        return loaded
    group = await session.scalar(_GROUP_OF_CUSTOMER, {"customer_id": customer_id})
    remember_group(session, group)
    return group


async def list_candidates(session: AsyncSession, *, roles: Sequence[str]) -> list[Candidate]:
    """Staff of the given roles with their current open-case load."""
    load = (
        select(Case.assignee_id, func.count().label("n"))
        .where(Case.status.in_(ACTIVE_STATUSES))
        .group_by(Case.assignee_id)
        .subquery()
    )
    rows = await session.execute(
        select(Staff, func.coalesce(load.c.n, 0))
        .outerjoin(load, load.c.assignee_id == Staff.id)
        .where(Staff.role.in_(list(roles)))
    )
    return [
        Candidate(
            staff_id=s.id,
            role=s.role,
            dealer_id=s.dealer_id,
            languages=tuple(s.languages or ()),
            on_duty=s.on_duty,
            active=s.active,
            capacity=s.capacity,
            open_load=int(n),
        )
        for s, n in rows.all()
    ]


async def form_group(
    session: AsyncSession, *, customer: Customer, roles: Sequence[str], now: datetime
) -> tuple[ButlerGroup, list[int] | None]:
    """Create the customer's group and seat one member per role; returns (group, seated staff ids).

    None instead of the staff ids: the group already existed (another delivery of the first message).
    """
    group = await session.scalar(
        insert_ignore(session, ButlerGroup)
        .values(customer_id=customer.id, dealer_id=customer.dealer_id, created_at=now, gaps=[])
        .returning(ButlerGroup)
    )
    if group is None:
        existing = await get_group_for_customer(session, customer_id=customer.id)
        assert existing is not None
        return existing, None
    set_committed_value(group, "customer", customer)  # the insert returns the row, not the join
    remember_group(session, group)
    candidates = await list_candidates(session, roles=roles)
    seats: list[dict[str, Any]] = []
    gaps: list[str] = []
    for role in roles:
        pick = choose(candidates, role=role, dealer_id=customer.dealer_id, locale=customer.locale)
        if pick is None:
            gaps.append(role)
            continue
        seat = {"group_id": group.id, "staff_id": pick.staff_id, "role": role, "joined_at": now}
        seats.append({**seat, "reason": "formed"})
    if gaps:
        group.gaps = gaps
    if seats:  # one multi-row INSERT: the ORM would send one INSERT ... RETURNING per seat
        await session.execute(insert(Membership).values(seats))
    await session.flush()
    return group, [seat["staff_id"] for seat in seats]


async def active_members(session: AsyncSession, *, group_id: int) -> list[Membership]:
    """Current members of a group, in role order."""
    rows = await session.scalars(
        select(Membership)
        .where(Membership.group_id == group_id, Membership.left_at.is_(None))
        .order_by(Membership.joined_at, Membership.id)
    )
    return list(rows.unique().all())


# Every case opening asks it (bot.db.PerDialect says why it is built once).
_MEMBER_FOR_ROLE = (
    select(Membership)
    .where(
        Membership.group_id == bindparam("group_id"),
        Membership.role == bindparam("role"),
        Membership.left_at.is_(None),
    )
    .order_by(Membership.joined_at)
    .limit(1)
)


async def member_for_role(session: AsyncSession, *, group_id: int, role: str) -> Membership | None:
    """The current member holding a role in the group."""
    return await session.scalar(_MEMBER_FOR_ROLE, {"group_id": group_id, "role": role})


async def is_member(session: AsyncSession, *, group_id: int, staff_id: int) -> bool:
    """Whether a staff member currently sits in the group."""
    found = await session.scalar(
        select(Membership.id).where(
            Membership.group_id == group_id, Membership.staff_id == staff_id, Membership.left_at.is_(None)
        )
    )
    return found is not None


async def add_member(
    session: AsyncSession, *, group: ButlerGroup, staff: Staff, role: str, reason: str, now: datetime
) -> Membership:
    """Seat a staff member in a group (no-op if already seated)."""
    existing = await session.scalar(
        select(Membership).where(
            Membership.group_id == group.id, Membership.staff_id == staff.id, Membership.left_at.is_(None)
        )
    )
    if existing is not None:
        return existing
    member = Membership(group_id=group.id, staff_id=staff.id, role=role, joined_at=now, reason=reason)
    session.add(member)
    if role in (group.gaps or []):
        group.gaps = [g for g in group.gaps if g != role]
    await session.flush()
    return member


async def remove_member(session: AsyncSession, *, membership: Membership, reason: str, now: datetime) -> None:
    """End a membership, keeping its history."""
    membership.left_at = now
    membership.reason = reason
    await session.flush()


async def get_staff(session: AsyncSession, *, staff_id: int) -> Staff | None:
    """A staff member by id."""
    return await session.get(Staff, staff_id)


async def get_staff_by_username(session: AsyncSession, *, username: str) -> Staff | None:
    """A staff member by login name."""
    return await session.scalar(select(Staff).where(Staff.username == username))


async def list_staff(session: AsyncSession) -> list[Staff]:
    """All staff, by role then name."""
    return list((await session.scalars(select(Staff).order_by(Staff.role, Staff.username))).all())


async def first_staff_with_role(session: AsyncSession, *, role: str, dealer_id: int | None) -> Staff | None:
    """A lead or manager to notify: same dealer first, then anyone with the role."""
    rows = (
        await session.scalars(
            select(Staff).where(Staff.role == role, Staff.active.is_(True)).order_by(Staff.id)
        )
    ).all()
    same = [s for s in rows if s.dealer_id == dealer_id]
    pool = same or list(rows)
    return pool[0] if pool else None


def audit(
    session: AsyncSession,
    *,
    action: str,
    object_type: str,
    object_id: Any,
    actor_staff_id: int | None,
    now: datetime,
    data: dict[str, Any] | None = None,
) -> None:
    """Record a sensitive action."""
    session.add(
        AuditLog(
            at=now,
            actor_staff_id=actor_staff_id,
            action=action,
            object_type=object_type,
            object_id=None if object_id is None else str(object_id),
            data=data or {},
        )
    )


async def list_dealers(session: AsyncSession) -> list[Dealer]:
    """All dealers by code."""
    return list((await session.scalars(select(Dealer).order_by(Dealer.code))).all())


async def mark_read(
    session: AsyncSession, *, staff_id: int, group_id: int, message_id: int, now: datetime
) -> None:
    """Remember that a staff member has seen a group's messages up to an id (never moves back)."""
    mark = await session.get(ReadMark, (staff_id, group_id))
    if mark is None:
        session.add(
            ReadMark(staff_id=staff_id, group_id=group_id, last_message_id=message_id, updated_at=now)
        )
    elif message_id > mark.last_message_id:
        mark.last_message_id, mark.updated_at = message_id, now
    await session.flush()
