"""The SLA engine the conversation flows call at each case event."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.conversations.enums import CaseStatus
from bot.conversations.models import Case
from bot.settings import Settings
from escalation import service
from escalation.models import MET, STOPPED, SlaTimer
from escalation.policies import PolicySet, load_policies

FIRST, NEXT, RESOLUTION = "first_response", "next_response", "resolution"
RESPONSE_METRICS = (FIRST, NEXT)
_DONE = (CaseStatus.RESOLVED, CaseStatus.CLOSED)


@dataclass(frozen=True)
class Promise:
    """What the customer is told when a case opens: the first-response target."""

    due_at: datetime
    minutes: float


class SlaEngine:
    """Starts, meets, pauses and stops a case's SLA clocks."""

    def __init__(self, settings: Settings, policies: PolicySet | None = None) -> None:
        self._settings = settings
        self.policies = policies or load_policies(settings.sla_policies_file)

    def reload(self, policies: PolicySet | None = None) -> PolicySet:
        """Swap in edited policies; clocks already running keep the ladder they started with."""
        self.policies = policies or load_policies(self._settings.sla_policies_file)
        return self.policies

    async def _start(self, session: AsyncSession, *, case: Case, now: datetime, reason: str) -> Promise:
        policy = await service.policy_for_case(session, policies=self.policies, case=case)
        calendar = self.policies.calendar(policy.calendar)
        first, _resolution = await service.start_timers(
            session,
            case=case,
            policy=policy,
            calendar=calendar,
            metrics=[(FIRST, case.reopen_count), (RESOLUTION, case.reopen_count)],
            now=now,
            reason=reason,
        )
        assert first.due_at is not None
        # Wall-clock minutes: outside business hours the honest promise is longer than the target.
        return Promise(due_at=first.due_at, minutes=(first.due_at - now).total_seconds() / 60)

    async def on_case_opened(self, session: AsyncSession, *, case: Case, now: datetime) -> Promise | None:
        """Apply the matching policy and start first-response and resolution clocks."""
        return await self._start(session, case=case, now=now, reason="opened")

    async def on_customer_message(self, session: AsyncSession, *, case: Case, now: datetime) -> None:
        """A customer message after a staff reply starts the next-response clock."""
        if case.status in _DONE or case.first_response_at is None:
            return  # before the first staff reply the first-response clock covers it
        await service.lock_case(session, case_id=case.id)
        live = await service.case_timers(session, case_id=case.id)
        if any(t.metric in RESPONSE_METRICS for t in live):
            return  # a follow-up to an unanswered message: the clock already runs from the first one
        policy = await service.policy_for_case(session, policies=self.policies, case=case)
        await service.start_timer(
            session,
            case=case,
            policy=policy,
            calendar=self.policies.calendar(policy.calendar),
            metric=NEXT,
            cycle=await service.next_cycle(session, case_id=case.id, metric=NEXT),
            now=now,
            reason="customer wrote after a staff reply",
        )

    async def on_staff_reply(self, session: AsyncSession, *, case: Case, now: datetime) -> None:
        """A public staff reply meets the first/next-response clock."""
        for timer in await service.case_timers(session, case_id=case.id, lock=True):
            if timer.metric in RESPONSE_METRICS:
                self._finish(
                    session,
                    timer,
                    now=now,
                    state=MET,
                    reason="staff replied",
                    staff_id=case.assignee_id,
                )

    async def on_status_changed(
        self, session: AsyncSession, *, case: Case, from_status: str, to_status: str, now: datetime
    ) -> None:
        """Pause, resume, stop or restart clocks as the case moves."""
        if from_status == to_status:
            return
        if from_status in _DONE and to_status == CaseStatus.OPEN:
            await self._stop_all(session, case=case, now=now, reason="reopened")
            await self._start(session, case=case, now=now, reason="reopened")
            return
        if to_status in _DONE:
            for timer in await service.case_timers(session, case_id=case.id, lock=True):
                self._finish(
                    session,
                    timer,
                    now=now,
                    state=MET if timer.metric == RESOLUTION else STOPPED,
                    reason=str(to_status),
                    staff_id=case.assignee_id,
                )
            return
        if to_status == CaseStatus.WAITING_CUSTOMER:
            for timer in await service.case_timers(session, case_id=case.id, lock=True):
                if timer.metric == RESOLUTION and timer.pause_when_waiting:
                    service.pause_timer(session, timer=timer, now=now, reason="waiting on the customer")
        elif from_status == CaseStatus.WAITING_CUSTOMER:
            for timer in await service.case_timers(session, case_id=case.id, lock=True):
                service.resume_timer(
                    session,
                    timer=timer,
                    calendar=self.policies.calendar(timer.calendar),
                    now=now,
                    reason=f"case is {to_status}",
                )

    async def _stop_all(self, session: AsyncSession, *, case: Case, now: datetime, reason: str) -> None:
        for timer in await service.case_timers(session, case_id=case.id, lock=True):
            self._finish(
                session,
                timer,
                now=now,
                state=STOPPED,
                reason=reason,
            )
        await session.flush()

    def _finish(
        self,
        session: AsyncSession,
        timer: SlaTimer,
        *,
        now: datetime,
        state: str,
        reason: str,
        staff_id: int | None = None,
    ) -> None:
        """End a clock, counting business time in the calendar it runs on."""
        calendar = self.policies.calendar(timer.calendar)
        service.finish_timer(
            session, timer=timer, calendar=calendar, now=now, state=state, reason=reason, staff_id=staff_id
        )

    async def on_reassigned(
        self, session: AsyncSession, *, case: Case, from_staff_id: int | None, now: datetime
    ) -> None:
        """Reassignment keeps the clocks; only the record changes."""
        live = await service.case_timers(session, case_id=case.id)
        if not live:
            return
        service.add_event(
            session,
            case_id=case.id,
            kind="reassigned",
            now=now,
            staff_id=from_staff_id,
            target_staff_id=case.assignee_id,
            data={"from": from_staff_id, "to": case.assignee_id, "source": "staff", "clocks_kept": len(live)},
        )

    async def on_recategorised(self, session: AsyncSession, *, case: Case, now: datetime) -> None:
        """Re-apply the policy from the original start."""
        policy = await service.policy_for_case(session, policies=self.policies, case=case)
        for timer in await service.case_timers(session, case_id=case.id, lock=True):
            await service.reapply_policy(
                session, case=case, old=timer, policy=policy, policies=self.policies, now=now
            )
