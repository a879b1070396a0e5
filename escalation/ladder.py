"""The escalation ladder's actions: warn, breach, escalate to lead or manager, reassign to a backup."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot import metrics
from bot.bus import emit
from bot.conversations import service as conv_service
from bot.conversations.flows import notify_staff, send_system_message
from bot.conversations.models import Case
from bot.conversations.routing import ROLE_FOR_CATEGORY
from bot.i18n import role_name, t
from bot.runtime import Runtime
from bot.teams import service as teams_service
from bot.teams.assignment import choose
from bot.teams.enums import TEAM_ROLES, Role
from bot.teams.models import Staff
from escalation import service
from escalation.models import BREACHED, RUNNING, SlaEvent, SlaTimer
from escalation.policies import duration_label

METRIC_NAMES = {
    "first_response": "first response",
    "next_response": "next response",
    "resolution": "resolution",
}


@dataclass
class StepContext:
    """Everything one rung needs; `supervisors` caches lead/manager lookups within a worker pass."""

    session: AsyncSession
    rt: Runtime
    timer: SlaTimer
    case: Case
    entry: dict[str, Any]
    now: datetime
    supervisors: dict[tuple[str, int | None], Staff | None] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """'Case #12 first response'."""
        return f"Case #{self.case.id} {METRIC_NAMES.get(self.timer.metric, self.timer.metric)}"

    async def supervisor(self, role: str) -> Staff | None:
        """The lead or manager for the case's dealer."""
        key = (role, self.case.group.dealer_id)
        if key not in self.supervisors:
            self.supervisors[key] = await teams_service.first_staff_with_role(
                self.session, role=role, dealer_id=self.case.group.dealer_id
            )
        return self.supervisors[key]

    async def notify(self, staff: Staff | None, text: str) -> int | None:
        """Notify a staff member (console live event + Telegram); returns their id."""
        if staff is None:
            return None
        await notify_staff(self.session, self.rt, staff=staff, text=text)
        return staff.id

    async def tell_customer(self, staff: Staff, role: str) -> None:
        """Tell the customer, in their language, who now has their request."""
        if not self.entry.get("tell"):
            return
        customer = self.case.group.customer
        locale = customer.locale
        text = t("case.escalated", locale, name=staff.display_name, role=role_name(role, locale))
        await send_system_message(
            self.session, self.rt, group=self.case.group, customer=customer, text=text, case_id=self.case.id
        )

    def overdue(self) -> str:
        """How far past the target the clock is, in business time."""
        calendar = self.rt.sla.policies.calendar(self.timer.calendar)
        late = service.elapsed_seconds(self.timer, calendar, self.now) - self.timer.target_seconds
        return duration_label(max(0.0, late))


# An action returns (event kind, who it was addressed to, extra event data).
Outcome = tuple[str, int | None, dict[str, Any]]


async def _warn(ctx: StepContext) -> Outcome:
    calendar = ctx.rt.sla.policies.calendar(ctx.timer.calendar)
    left = ctx.timer.target_seconds - service.elapsed_seconds(ctx.timer, calendar, ctx.now)
    text = f"SLA warning: {ctx.label} is due in {duration_label(max(0.0, left))} ({ctx.case.subject[:60]})"
    target = ctx.case.assignee or await ctx.supervisor(Role.LEAD)
    return "warned", await ctx.notify(target, text), {"left": left}


async def _breach(ctx: StepContext) -> Outcome:
    # The breach happened when the target passed, even if this worker runs late.
    ctx.timer.breached_at = ctx.timer.due_at or ctx.now
    if ctx.timer.state == RUNNING:
        ctx.timer.state = BREACHED
    who = ctx.case.assignee.display_name if ctx.case.assignee else "nobody"
    text = f"SLA breached: {ctx.label} target {duration_label(ctx.timer.target_seconds)} passed"
    await ctx.notify(ctx.case.assignee, f"{text} ({ctx.case.subject[:60]})")
    lead = await ctx.supervisor(Role.LEAD)
    notified = await ctx.notify(lead, f"{text}; assignee: {who}")
    return "breached", notified, {"target": ctx.timer.target_seconds}


async def _escalate(ctx: StepContext, role: str) -> Outcome:
    boss = await ctx.supervisor(role)
    who = ctx.case.assignee.display_name if ctx.case.assignee else "nobody"
    text = (
        f"Escalation: {ctx.label} is {ctx.overdue()} past its target; "
        f"assignee: {who} ({ctx.case.subject[:60]})"
    )
    notified = await ctx.notify(boss, text)
    if boss is not None:
        await ctx.tell_customer(boss, role)
    return "escalated", notified, {"to": role, "found": boss is not None}


async def _escalate_lead(ctx: StepContext) -> Outcome:
    return await _escalate(ctx, Role.LEAD)


async def _escalate_manager(ctx: StepContext) -> Outcome:
    return await _escalate(ctx, Role.MANAGER)


async def _reassign(ctx: StepContext) -> Outcome:
    case, session = ctx.case, ctx.session
    current = case.assignee
    role = current.role if current is not None and current.role in TEAM_ROLES else None
    role = role or ROLE_FOR_CATEGORY.get(case.category, Role.BUTLER)
    pick = choose(
        await teams_service.list_candidates(session, roles=[role]),
        role=role,
        dealer_id=case.group.dealer_id,
        locale=case.group.customer.locale,
        exclude=frozenset({case.assignee_id}) if case.assignee_id else frozenset(),
    )
    target = await teams_service.get_staff(session, staff_id=pick.staff_id) if pick else None
    if target is None:
        lead = await ctx.supervisor(Role.LEAD)
        notified = await ctx.notify(lead, f"{ctx.label}: no on-duty backup {role} to reassign to")
        return "reassigned", notified, {"moved": False, "role": role, "reason": "no backup on duty"}
    previous = case.assignee_id
    await teams_service.add_member(
        session, group=case.group, staff=target, role=role, reason="sla reassign", now=ctx.now
    )
    case.assignee_id, case.assignee = target.id, target
    conv_service.add_case_event(
        session,
        case=case,
        kind="reassigned",
        now=ctx.now,
        data={"from": previous, "to": target.id, "reason": f"sla {ctx.timer.metric} breach"},
    )
    emit(session, f"staff:{target.id}", {"type": "case.assigned", "case_id": case.id})
    await ctx.notify(target, f"{ctx.label} is overdue and was reassigned to you: {case.subject[:60]}")
    await ctx.notify(current, f"{ctx.label} was reassigned to {target.display_name} after the SLA breach")
    await ctx.tell_customer(target, role)
    return "reassigned", target.id, {"moved": True, "from": previous, "to": target.id, "role": role}


ACTIONS: dict[str, Callable[[StepContext], Awaitable[Outcome]]] = {
    "warn": _warn,
    "breach": _breach,
    "escalate_lead": _escalate_lead,
    "escalate_manager": _escalate_manager,
    "reassign": _reassign,
}


async def fire_step(ctx: StepContext, records: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Run the rung under the timer's cursor, record it, and move the cursor on.

    The event row is returned (and appended to `records` for one bulk insert per worker pass, which
    the worker must do before commit); without `records` it is added to the session here.
    """
    timer, step = ctx.timer, ctx.timer.next_step
    assignee = ctx.case.assignee_id
    kind, target, data = await ACTIONS[ctx.entry["action"]](ctx)
    row = {
        "case_id": ctx.case.id,
        "timer_id": timer.id,
        "metric": timer.metric,
        "kind": kind,
        "step": step,
        "at": ctx.now,
        "staff_id": assignee,
        "target_staff_id": target,
        "data": {"action": ctx.entry["action"], "due": ctx.entry.get("due"), **data},
    }
    metrics.note_sla_step(ctx.session, metric=timer.metric, action=ctx.entry["action"], kind=kind)
    if records is None:
        ctx.session.add(SlaEvent(**row))
    else:
        records.append(row)
    service.advance(timer)
    emit(
        ctx.session,
        "cases",
        {
            "type": f"sla.{kind}",
            "case_id": ctx.case.id,
            "metric": timer.metric,
            "action": ctx.entry["action"],
        },
    )
    return row


async def fail_step(ctx: StepContext, error: str) -> SlaEvent:
    """Record a rung whose action kept failing, and move on so it cannot block the ladder."""
    event = service.add_event(
        ctx.session,
        case_id=ctx.case.id,
        timer=ctx.timer,
        kind="failed",
        now=ctx.now,
        step=ctx.timer.next_step,
        staff_id=ctx.case.assignee_id,
        data={"action": ctx.entry["action"], "due": ctx.entry.get("due"), "error": error[:500]},
    )
    metrics.note_sla_step(ctx.session, metric=ctx.timer.metric, action=ctx.entry["action"], kind="failed")
    service.advance(ctx.timer)
    return event
