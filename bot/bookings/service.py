"""Queries and writes for booking drafts and vehicles. Services flush, never commit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.bookings.models import BookingDraft
from bot.teams.models import Customer, Vehicle

ACTIVE, DONE, CANCELLED = "active", "done", "cancelled"
# Every Telegram text asks this first; built once (bot.db.PerDialect says why).
_ACTIVE_DRAFT = (
    select(BookingDraft)
    .where(BookingDraft.customer_id == bindparam("customer_id"), BookingDraft.status == ACTIVE)
    .order_by(BookingDraft.id.desc())
    .limit(1)
)


# Every Telegram text asks whether a booking waits for it: the customer's lookup brings the answer
# along (a correlated subquery on the drafts' index) instead of a query of its own per message.
OPEN_DRAFT_ID = (
    select(BookingDraft.id)
    .where(BookingDraft.customer_id == Customer.id, BookingDraft.status == ACTIVE)
    .order_by(BookingDraft.id.desc())
    .limit(1)
    .scalar_subquery()
    .label("open_draft_id")
)
_OPEN_DRAFTS = "open_drafts"  # Session.info: {customer id: open draft id or None}, as looked up


def remember_open_draft(session: AsyncSession, *, customer_id: int, draft_id: int | None) -> None:
    """Note the customer's open draft (or none) as a lookup in this transaction found it."""
    session.info.setdefault(_OPEN_DRAFTS, {})[customer_id] = draft_id


async def active_draft(session: AsyncSession, *, customer_id: int) -> BookingDraft | None:
    """The customer's draft in progress, if any (the newest)."""
    known = session.info.get(_OPEN_DRAFTS, {})
    if customer_id in known:
        if known[customer_id] is None:
            return None
        draft = await session.get(BookingDraft, known[customer_id])
        if draft is not None and draft.status == ACTIVE:
            return draft
    return await session.scalar(_ACTIVE_DRAFT, {"customer_id": customer_id})


async def get_draft(session: AsyncSession, *, draft_id: int) -> BookingDraft | None:
    """A draft by id."""
    return await session.get(BookingDraft, draft_id)


async def create_draft(
    session: AsyncSession, *, customer_id: int, kind: str, step: str, now: datetime
) -> BookingDraft:
    """Start a draft, cancelling any other one the customer left open (one at a time)."""
    await cancel_drafts(session, customer_id=customer_id, now=now)
    session.info.get(_OPEN_DRAFTS, {}).pop(customer_id, None)  # the lookup's answer is stale now
    draft = BookingDraft(
        customer_id=customer_id, kind=kind, step=step, status=ACTIVE, data={}, created_at=now, updated_at=now
    )
    session.add(draft)
    await session.flush()
    return draft


async def cancel_drafts(session: AsyncSession, *, customer_id: int, now: datetime) -> int:
    """Cancel the customer's open drafts; returns how many."""
    result = await session.execute(
        update(BookingDraft)
        .where(BookingDraft.customer_id == customer_id, BookingDraft.status == ACTIVE)
        .values(status=CANCELLED, updated_at=now)
        .execution_options(synchronize_session="fetch")
    )
    return int(getattr(result, "rowcount", 0) or 0)


def set_answer(draft: BookingDraft, *, key: str, value: Any, now: datetime) -> None:
    """Store one answer (JSON columns need a new dict to be seen as changed)."""
    draft.data = {**draft.data, key: value}
    draft.updated_at = now


async def vin_taken(session: AsyncSession, *, vin: str) -> bool:
    """Whether a VIN is registered already."""
    return await session.scalar(select(Vehicle.id).where(Vehicle.vin == vin)) is not None


async def add_vehicle(session: AsyncSession, *, customer: Customer, vin: str, model: str) -> Vehicle:
    """Register a customer's car."""
    vehicle = Vehicle(customer_id=customer.id, vin=vin, model=model[:100], dealer_id=customer.dealer_id)
    session.add(vehicle)
    await session.flush()
    return vehicle


async def customer_vehicles(session: AsyncSession, *, customer_id: int) -> list[Vehicle]:
    """A customer's cars, oldest first."""
    rows = await session.scalars(
        select(Vehicle).where(Vehicle.customer_id == customer_id).order_by(Vehicle.id)
    )
    return list(rows.all())
