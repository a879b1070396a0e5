"""SLA use cases that have no home in the conversation flows yet: recategorising a case."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from bot.bus import emit
from bot.conversations import service as conv_service
from bot.conversations.enums import ACTIVE_STATUSES, Category, Priority
from bot.conversations.models import Case
from bot.errors import Conflict, InvalidInput, NotFound
from bot.runtime import Runtime
from bot.teams import access
from bot.teams.models import Staff


async def recategorise_case(
    session: AsyncSession,
    rt: Runtime,
    *,
    staff: Staff,
    case_id: int,
    category: str | None = None,
    priority: str | None = None,
) -> Case:
    """Change a case's category and/or priority and re-apply the SLA policy from the original start."""
    if category is not None and category not in set(Category):
        raise InvalidInput("case.category", f"unknown category {category!r}")
    if priority is not None and priority not in set(Priority):
        raise InvalidInput("case.priority", f"unknown priority {priority!r}")
    case = await conv_service.get_case(session, case_id=case_id)
    if case is None:
        raise NotFound("case.not_found", f"case {case_id} does not exist")
    await access.require_group(session, staff=staff, group_id=case.group_id)
    if case.status not in ACTIVE_STATUSES:
        raise Conflict("case.not_active", f"case {case_id} is {case.status}")
    before = {"category": case.category, "priority": case.priority}
    case.category = category or case.category
    case.priority = priority or case.priority
    after = {"category": case.category, "priority": case.priority}
    if after == before:
        return case
    now = rt.clock.now()
    conv_service.add_case_event(
        session,
        case=case,
        kind="recategorised",
        now=now,
        actor_staff_id=staff.id,
        data={"from": before, "to": after},
    )
    await session.flush()
    await rt.sla.on_recategorised(session, case=case, now=now)
    emit(session, f"group:{case.group_id}", {"type": "case.recategorised", "case_id": case.id, **after})
    return case
