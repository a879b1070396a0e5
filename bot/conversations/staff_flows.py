"""Use cases of staff: reply, note, resolve, reopen, invite, transfer, replace; and customer ratings."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from bot.conversations import service as conv_service
from bot.conversations.enums import ACTIVE_STATUSES, AuthorKind, CaseStatus
from bot.conversations.flows import (
    deliver_to_customer,
    move_case,
    notify_staff,
    send_system_message,
    validate_body,
)
from bot.conversations.models import Case, Message
from bot.errors import Conflict, InvalidInput, NotFound
from bot.i18n import t
from bot.runtime import Runtime
from bot.teams import access
from bot.teams import service as teams_service
from bot.teams.assignment import choose
from bot.teams.enums import TEAM_ROLES, Channel
from bot.teams.models import ButlerGroup, Customer, Membership, Staff

RATING_BUTTONS = ["rate:5", "rate:4", "rate:3", "rate:2", "rate:1"]


async def staff_reply(
    session: AsyncSession,
    rt: Runtime,
    *,
    staff: Staff,
    group_id: int,
    body: str,
    internal: bool = False,
    channel: str = Channel.CONSOLE,
    attachments: list[dict[str, object]] | None = None,
) -> Message:
    """Store a staff reply or internal note; public replies go to the customer and meet the clock."""
    group = await access.require_group(session, staff=staff, group_id=group_id)
    text = validate_body(body, max_chars=rt.settings.max_message_chars, allow_empty=bool(attachments))
    now = rt.clock.now()
    case = await conv_service.active_case(session, group_id=group.id)
    message = await conv_service.add_message(
        session,
        group_id=group.id,
        author_kind=AuthorKind.STAFF,
        channel=channel,
        body=text,
        now=now,
        case_id=case.id if case else None,
        author_staff_id=staff.id,
        internal=internal,
        attachments=list(attachments or []),
    )
    if internal:
        return message
    await deliver_to_customer(session, rt, group=group, message=message, buttons=[])
    if case is not None:
        if case.first_response_at is None:
            case.first_response_at = now
        await rt.sla.on_staff_reply(session, case=case, now=now)
        if case.status in (CaseStatus.OPEN, CaseStatus.WAITING_STAFF):
            await move_case(
                session,
                rt,
                case=case,
                to=CaseStatus.WAITING_CUSTOMER,
                now=now,
                actor_staff_id=staff.id,
                reason="staff replied",
            )
    return message


async def _require_case(session: AsyncSession, *, staff: Staff, case_id: int) -> tuple[Case, ButlerGroup]:
    case = await conv_service.get_case(session, case_id=case_id)
    if case is None:
        raise NotFound("case.not_found", f"case {case_id} does not exist")
    group = await access.require_group(session, staff=staff, group_id=case.group_id)
    return case, group


async def resolve_case(session: AsyncSession, rt: Runtime, *, staff: Staff, case_id: int) -> Case:
    """Resolve a case and ask the customer for a rating."""
    case, group = await _require_case(session, staff=staff, case_id=case_id)
    if case.status not in ACTIVE_STATUSES:
        raise Conflict("case.not_active", f"case {case_id} is already {case.status}")
    now = rt.clock.now()
    await move_case(
        session,
        rt,
        case=case,
        to=CaseStatus.RESOLVED,
        now=now,
        actor_staff_id=staff.id,
        reason="resolved by staff",
    )
    customer = await session.get(Customer, group.customer_id)
    assert customer is not None
    case.csat_asked_at = now
    await send_system_message(
        session,
        rt,
        group=group,
        customer=customer,
        case_id=case.id,
        text=t("case.resolved", customer.locale),
        buttons=RATING_BUTTONS,
        meta={"rating_for_case": case.id},
    )
    return case


async def reopen_case(session: AsyncSession, rt: Runtime, *, staff: Staff, case_id: int) -> Case:
    """Reopen a resolved or closed case; its clocks start anew."""
    case, _group = await _require_case(session, staff=staff, case_id=case_id)
    if case.status not in (CaseStatus.RESOLVED, CaseStatus.CLOSED):
        raise Conflict("case.not_resolved", f"case {case_id} is {case.status}, not resolved")
    now = rt.clock.now()
    case.first_response_at = None  # the reopened case waits for a first response again
    await move_case(
        session, rt, case=case, to=CaseStatus.OPEN, now=now, actor_staff_id=staff.id, reason="reopened"
    )
    return case


async def rate_case(
    session: AsyncSession,
    rt: Runtime,
    *,
    customer_id: int,
    case_id: int,
    score: int,
    comment: str | None = None,
) -> Case:
    """Store the customer's rating (1-5) on their case."""
    if not 1 <= score <= 5:
        raise InvalidInput("rating.range", "rating must be between 1 and 5")
    case = await conv_service.get_case(session, case_id=case_id)
    if case is None or case.group.customer_id != customer_id:
        raise NotFound("case.not_found", f"case {case_id} does not exist")
    if case.csat_asked_at is None:
        raise Conflict("rating.not_asked", "this case has not been resolved yet")
    now = rt.clock.now()
    case.csat_score, case.csat_comment = score, comment
    conv_service.add_case_event(session, case=case, kind="rated", now=now, data={"score": score})
    if case.status == CaseStatus.RESOLVED:
        await conv_service.transition_case(session, case=case, to=CaseStatus.CLOSED, now=now, reason="rated")
    customer = await session.get(Customer, customer_id)
    assert customer is not None
    await send_system_message(
        session, rt, group=case.group, customer=customer, text=t("case.rated", customer.locale)
    )
    return case


async def transfer_case(
    session: AsyncSession,
    rt: Runtime,
    *,
    staff: Staff,
    case_id: int,
    to_staff_id: int,
    reason: str = "transfer",
) -> Case:
    """Hand a case to another staff member, seating them in the group if needed; clocks keep running."""
    case, group = await _require_case(session, staff=staff, case_id=case_id)
    target = await teams_service.get_staff(session, staff_id=to_staff_id)
    if target is None or not target.active:
        raise NotFound("staff.not_found", f"staff {to_staff_id} does not exist or is inactive")
    now = rt.clock.now()
    await teams_service.add_member(
        session, group=group, staff=target, role=target.role, reason="transfer", now=now
    )
    previous = case.assignee_id
    case.assignee_id = target.id
    conv_service.add_case_event(
        session,
        case=case,
        kind="reassigned",
        now=now,
        actor_staff_id=staff.id,
        data={"from": previous, "to": target.id, "reason": reason},
    )
    await rt.sla.on_reassigned(session, case=case, from_staff_id=previous, now=now)
    await notify_staff(
        session, rt, staff=target, text=f"Case #{case.id} was transferred to you: {case.subject}"
    )
    return case


async def invite_member(
    session: AsyncSession, rt: Runtime, *, staff: Staff, group_id: int, role: str, staff_id: int | None = None
) -> Membership:
    """Bring another specialist into the group: a named one, or the policy's pick for the role."""
    group = await access.require_group(session, staff=staff, group_id=group_id)
    now = rt.clock.now()
    if staff_id is not None:
        target = await teams_service.get_staff(session, staff_id=staff_id)
    else:
        current = {m.staff_id for m in await teams_service.active_members(session, group_id=group.id)}
        customer = await session.get(Customer, group.customer_id)
        assert customer is not None
        pick = choose(
            await teams_service.list_candidates(session, roles=[role]),
            role=role,
            dealer_id=group.dealer_id,
            locale=customer.locale,
            exclude=frozenset(current),
        )
        target = await teams_service.get_staff(session, staff_id=pick.staff_id) if pick else None
    if target is None:
        raise NotFound("staff.none_available", f"nobody is available for role {role}")
    if len(await teams_service.active_members(session, group_id=group.id)) >= 7:
        raise Conflict("group.full", "a butler team has at most 7 specialists")
    member = await teams_service.add_member(
        session, group=group, staff=target, role=role, reason="invited", now=now
    )
    teams_service.audit(
        session,
        action="group.invite",
        object_type="group",
        object_id=group.id,
        actor_staff_id=staff.id,
        now=now,
        data={"staff_id": target.id, "role": role},
    )
    await notify_staff(session, rt, staff=target, text=f"You joined the butler team of group #{group.id}")
    return member


async def replace_member(
    session: AsyncSession,
    rt: Runtime,
    *,
    staff: Staff,
    group_id: int,
    leaving_staff_id: int,
    new_staff_id: int | None = None,
) -> Membership:
    """Swap a member for another of the same role; their open cases in this group move along."""
    group = await access.require_group(session, staff=staff, group_id=group_id)
    members = await teams_service.active_members(session, group_id=group.id)
    leaving = next((m for m in members if m.staff_id == leaving_staff_id), None)
    if leaving is None:
        raise NotFound("member.not_found", f"staff {leaving_staff_id} is not in group {group_id}")
    if leaving.role not in TEAM_ROLES and new_staff_id is None:
        raise InvalidInput("member.role", "name the replacement for a non-team role")
    now = rt.clock.now()
    current = frozenset(m.staff_id for m in members)
    if new_staff_id is None:
        customer = await session.get(Customer, group.customer_id)
        assert customer is not None
        pick = choose(
            await teams_service.list_candidates(session, roles=[leaving.role]),
            role=leaving.role,
            dealer_id=group.dealer_id,
            locale=customer.locale,
            exclude=current,
        )
        if pick is None:
            raise NotFound("staff.none_available", f"nobody is available for role {leaving.role}")
        new_staff_id = pick.staff_id
    target = await teams_service.get_staff(session, staff_id=new_staff_id)
    if target is None:
        raise NotFound("staff.not_found", f"staff {new_staff_id} does not exist")
    await teams_service.remove_member(session, membership=leaving, reason="replaced", now=now)
    member = await teams_service.add_member(
        session, group=group, staff=target, role=leaving.role, reason="replacement", now=now
    )
    for case in await conv_service.list_group_cases(session, group_id=group.id):
        if case.assignee_id == leaving_staff_id and case.status in ACTIVE_STATUSES:
            case.assignee_id = target.id
            conv_service.add_case_event(
                session,
                case=case,
                kind="reassigned",
                now=now,
                actor_staff_id=staff.id,
                data={"from": leaving_staff_id, "to": target.id, "reason": "replaced"},
            )
            await rt.sla.on_reassigned(session, case=case, from_staff_id=leaving_staff_id, now=now)
    teams_service.audit(
        session,
        action="group.replace",
        object_type="group",
        object_id=group.id,
        actor_staff_id=staff.id,
        now=now,
        data={"from": leaving_staff_id, "to": target.id},
    )
    return member
