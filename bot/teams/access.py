"""Who may see and act on which butler group."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from bot.errors import Forbidden, NotFound
from bot.teams import service as teams_service
from bot.teams.enums import Role
from bot.teams.models import ButlerGroup, Staff


async def can_view_group(session: AsyncSession, *, staff: Staff, group: ButlerGroup) -> bool:
    """Specialists see their own groups, leads their dealer's, managers and admins all."""
    if not staff.active:
        return False
    if staff.role in (Role.MANAGER, Role.ADMIN):
        return True
    if staff.role == Role.LEAD:
        return group.dealer_id is None or group.dealer_id == staff.dealer_id
    return await teams_service.is_member(session, group_id=group.id, staff_id=staff.id)


async def require_group(session: AsyncSession, *, staff: Staff, group_id: int) -> ButlerGroup:
    """The group if the staff member may see it; NotFound or Forbidden otherwise."""
    group = await session.get(ButlerGroup, group_id)
    if group is None:
        raise NotFound("group.not_found", f"group {group_id} does not exist")
    if not await can_view_group(session, staff=staff, group=group):
        raise Forbidden("group.forbidden", "you are not a member of this butler group")
    return group


async def visible_groups(session: AsyncSession, *, staff: Staff, limit: int = 200) -> list[ButlerGroup]:
    """Groups a staff member may see, newest first."""
    from sqlalchemy import select

    from bot.teams.models import Membership

    query = select(ButlerGroup).order_by(ButlerGroup.id.desc()).limit(limit)
    if staff.role == Role.LEAD:
        query = query.where((ButlerGroup.dealer_id == staff.dealer_id) | ButlerGroup.dealer_id.is_(None))
    elif staff.role not in (Role.MANAGER, Role.ADMIN):
        query = query.join(Membership, Membership.group_id == ButlerGroup.id).where(
            Membership.staff_id == staff.id, Membership.left_at.is_(None)
        )
    return list((await session.scalars(query)).unique().all())
