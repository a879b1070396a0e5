"""Use cases of a conversation: a customer writes, a case opens, staff answer, the case resolves."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import metrics
from bot.bus import emit
from bot.context import bind_case
from bot.conversations import service as conv_service
from bot.conversations.enums import ACTIVE_STATUSES, AuthorKind, CaseStatus, Category, Priority
from bot.conversations.models import Case, Message
from bot.conversations.routing import ROLE_FOR_CATEGORY, RoutingDecision
from bot.errors import InvalidInput
from bot.i18n import duration_text, normalize_locale, role_name, t
from bot.runtime import AutoAnswer, Runtime
from bot.teams import service as teams_service
from bot.teams.enums import TEAM_ROLES, Channel
from bot.teams.models import ButlerGroup, ChannelIdentity, Customer, Staff

# A second question this soon after a bot answer suggests the answer did not help: offer a person.
REPEAT_WINDOW = timedelta(minutes=5)
# Several cases in this window raise the priority of the next one (a customer who keeps coming back).
RECENT_CASES = timedelta(days=30)
# Built once: every answer runs it (bot.db.PerDialect says why).
_ACTIVE_IDENTITIES = select(ChannelIdentity).where(
    ChannelIdentity.customer_id == bindparam("customer_id"), ChannelIdentity.active.is_(True)
)


@dataclass
class InboundMessage:
    """A customer message as any channel adapter hands it to the engine."""

    channel: str
    external_user_id: str
    chat_id: str
    external_message_id: str
    text: str
    display_name: str = ""
    locale: str | None = None
    attachments: list[dict[str, Any]] = field(default_factory=list)
    wants_person: bool = False
    # A booking or other structured request opens a case directly with these.
    category: str | None = None
    subject: str | None = None
    case_fields: dict[str, Any] | None = None
    # The adapter may already have looked the customer up in this transaction (saves two queries).
    customer: Customer | None = None


@dataclass
class InboundResult:
    """What happened to an inbound message."""

    duplicate: bool
    customer_id: int | None = None
    group_id: int | None = None
    message_id: int | None = None
    case_id: int | None = None
    bot_message_id: int | None = None
    group_created: bool = False
    answered_by_bot: bool = False


def validate_body(text: str, *, max_chars: int, allow_empty: bool = False) -> str:
    """Refuse empty or over-long messages with a clear error."""
    body = (text or "").strip()
    if not body and not allow_empty:
        raise InvalidInput("message.empty", "message text is empty")
    if len(body) > max_chars:
        raise InvalidInput("message.too_long", f"message is longer than {max_chars} characters")
    return body


async def receive_customer_message(session: AsyncSession, rt: Runtime, msg: InboundMessage) -> InboundResult:
    """Store a customer message once, form the team on first contact, then answer or route it."""
    body = validate_body(msg.text, max_chars=rt.settings.max_message_chars, allow_empty=bool(msg.attachments))
    now = rt.clock.now()
    fresh = await conv_service.record_receipt(
        session, channel=msg.channel, chat_id=msg.chat_id, external_id=msg.external_message_id, now=now
    )
    metrics.note_inbound(session, channel=msg.channel, duplicate=not fresh)
    if not fresh:
        return InboundResult(duplicate=True)
    locale = normalize_locale(msg.locale, rt.settings.default_locale)
    customer = msg.customer
    if customer is None:
        customer, _identity, _ = await teams_service.find_or_create_customer(
            session,
            channel=msg.channel,
            external_id=msg.external_user_id,
            chat_id=msg.chat_id,
            display_name=msg.display_name,
            locale=locale,
            now=now,
        )
    group, created = await ensure_group(session, rt, customer=customer)
    case = await conv_service.active_case(session, group_id=group.id)
    bind_case(case.id if case else None)
    message = await conv_service.add_message(
        session,
        group_id=group.id,
        author_kind=AuthorKind.CUSTOMER,
        channel=msg.channel,
        body=body,
        now=now,
        case_id=case.id if case else None,
        attachments=msg.attachments,
        ref=(msg.channel, msg.chat_id, msg.external_message_id),
    )
    await _mirror(session, rt, group=group, message=message)
    result = InboundResult(
        duplicate=False,
        customer_id=customer.id,
        group_id=group.id,
        message_id=message.id,
        group_created=created,
    )
    if case is not None:
        await _continue_case(session, rt, case=case, now_message=message)
        result.case_id = case.id
        return result
    kb_hint: str | None = None
    if msg.category is None and not msg.wants_person and rt.answerer is not None:
        auto, best = rt.answerer.consult(body, locale=customer.locale)
        kb_hint = best.category if best else None
        # Complaints always go to a person, however well the FAQ matches.
        if auto is not None and not _is_complaint(rt, body, customer.locale):
            offer = await _asked_again_recently(session, rt, group_id=group.id)
            # The answer names the question it answers (its meta "answers"): the question, already
            # stored, is not written a second time.
            bot_msg = await send_bot_answer(
                session,
                rt,
                group=group,
                customer=customer,
                answer=auto,
                offer_person=offer,
                answers=message.id,
            )
            result.bot_message_id, result.answered_by_bot = bot_msg.id, True
            return result
    recent = await conv_service.count_recent_cases(session, group_id=group.id, since=now - RECENT_CASES)
    decision = _routing(rt, msg, body, customer.locale, recent_case_count=recent, kb_hint=kb_hint)
    case = await open_case(
        session,
        rt,
        group=group,
        decision=decision,
        subject=msg.subject or body[:120] or "(attachment)",
        fields=msg.case_fields or {},
    )
    message.case_id = case.id
    result.case_id = case.id
    bind_case(case.id)
    return result


def _routing(
    rt: Runtime, msg: InboundMessage, body: str, locale: str, *, recent_case_count: int, kb_hint: str | None
) -> RoutingDecision:
    if msg.category is not None:
        return RoutingDecision(msg.category, Priority.NORMAL, f"structured request -> {msg.category}")
    decision = rt.router.route(body, locale=locale, recent_case_count=recent_case_count, kb_hint=kb_hint)
    if msg.wants_person:
        return RoutingDecision(
            decision.category, decision.priority, f"customer asked for a person; {decision.reason}"
        )
    return decision


async def _asked_again_recently(session: AsyncSession, rt: Runtime, *, group_id: int) -> bool:
    """Whether the bot already answered this customer a moment ago (then we offer a person)."""
    last = await conv_service.last_bot_answer_at(session, group_id=group_id)
    return last is not None and rt.clock.now() - last <= REPEAT_WINDOW


def _is_complaint(rt: Runtime, body: str, locale: str) -> bool:
    return rt.router.route(body, locale=locale).category == Category.COMPLAINT


async def ensure_group(session: AsyncSession, rt: Runtime, *, customer: Customer) -> tuple[ButlerGroup, bool]:
    """The customer's group, formed with one member per team role on first contact."""
    group = await teams_service.get_group_for_customer(session, customer_id=customer.id)
    if group is not None:
        return group, False
    group, seated = await teams_service.form_group(
        session, customer=customer, roles=TEAM_ROLES, now=rt.clock.now()
    )
    if seated is None:
        return group, False
    # A new group has no case and no answer yet.
    conv_service.remember_active_case(session, group_id=group.id, case=None)
    conv_service.remember_last_bot_answer(session, group_id=group.id, at=None)
    emit(session, "groups", {"type": "group.new", "group_id": group.id, "gaps": group.gaps})
    for staff_id in seated:
        emit(session, f"staff:{staff_id}", {"type": "group.new", "group_id": group.id})
    return group, True


async def move_case(
    session: AsyncSession,
    rt: Runtime,
    *,
    case: Case,
    to: str,
    now: datetime,
    reason: str,
    actor_staff_id: int | None = None,
) -> None:
    """Change a case's status and let the SLA clocks follow (pause, resume, stop, restart)."""
    previous = await conv_service.transition_case(
        session, case=case, to=to, now=now, actor_staff_id=actor_staff_id, reason=reason
    )
    await rt.sla.on_status_changed(session, case=case, from_status=previous, to_status=case.status, now=now)


async def _continue_case(session: AsyncSession, rt: Runtime, *, case: Case, now_message: Message) -> None:
    now = rt.clock.now()
    if case.status == CaseStatus.WAITING_CUSTOMER:
        await move_case(
            session, rt, case=case, to=CaseStatus.WAITING_STAFF, now=now, reason="customer replied"
        )
    await rt.sla.on_customer_message(session, case=case, now=now)
    if case.assignee_id:
        emit(
            session,
            f"staff:{case.assignee_id}",
            {
                "type": "message.new",
                "case_id": case.id,
                "group_id": case.group_id,
                "message_id": now_message.id,
            },
        )


async def open_case(
    session: AsyncSession,
    rt: Runtime,
    *,
    group: ButlerGroup,
    decision: RoutingDecision,
    subject: str,
    fields: dict[str, Any] | None = None,
    actor_staff_id: int | None = None,
    tell_customer: bool = True,
) -> Case:
    """Open a case assigned to the team member of the category's role, start clocks, tell everyone."""
    now = rt.clock.now()
    role = ROLE_FOR_CATEGORY.get(decision.category, "butler")
    member = await teams_service.member_for_role(session, group_id=group.id, role=role)
    if member is None and role != "butler":
        member = await teams_service.member_for_role(session, group_id=group.id, role="butler")
    case = Case(
        group_id=group.id,
        subject=subject[:200],
        category=decision.category,
        priority=decision.priority,
        status=CaseStatus.OPEN,
        assignee_id=member.staff_id if member else None,
        routing_reason=decision.reason,
        fields=fields or {},
        opened_at=now,
    )
    session.add(case)
    conv_service.forget_active_case(session, group.id)
    await session.flush()
    conv_service.add_case_event(
        session,
        case=case,
        kind="opened",
        now=now,
        actor_staff_id=actor_staff_id,
        to_status=CaseStatus.OPEN,
        data={"reason": decision.reason, "role": role},
    )
    promise = await rt.sla.on_case_opened(session, case=case, now=now)
    emit(session, "cases", {"type": "case.new", "case_id": case.id, "group_id": group.id})
    customer = await session.get(Customer, group.customer_id)
    assert customer is not None
    if member is not None:
        emit(
            session,
            f"staff:{member.staff_id}",
            {"type": "case.new", "case_id": case.id, "group_id": group.id},
        )
        await notify_staff(
            session,
            rt,
            staff=member.staff,
            text=f"New {decision.category} case #{case.id} ({decision.priority}): {subject[:80]}",
        )
    if tell_customer:
        locale = customer.locale
        if member is None:
            text = t("case.unassigned", locale)
        elif promise is not None:
            text = t(
                "case.assigned_by",
                locale,
                name=member.staff.display_name,
                role=role_name(role, locale),
                within=duration_text(promise.minutes, locale),
            )
        else:
            text = t("case.assigned", locale, name=member.staff.display_name, role=role_name(role, locale))
        await send_system_message(session, rt, group=group, customer=customer, text=text, case_id=case.id)
    return case


async def send_bot_answer(
    session: AsyncSession,
    rt: Runtime,
    *,
    group: ButlerGroup,
    customer: Customer,
    answer: AutoAnswer,
    offer_person: bool = False,
    answers: int | None = None,
) -> Message:
    """Store and deliver a knowledge-base answer with feedback buttons (and a person on offer)."""
    body = answer.text
    if offer_person:
        body = f"{body}\n\n{t('bot.offer_person', customer.locale)}"
    message = await conv_service.add_message(
        session,
        group_id=group.id,
        author_kind=AuthorKind.BOT,
        channel="bot",
        body=body,
        now=rt.clock.now(),
        meta={
            "topic": answer.topic,
            "score": round(answer.score, 4),
            "actions": list(answer.actions),
            "feedback": None,
            "offered_person": offer_person,
            "answers": answers,
        },
    )
    buttons = ["helpful", "not_helpful", "person", *answer.actions]
    await deliver_to_customer(session, rt, group=group, message=message, buttons=buttons)
    return message


async def send_system_message(
    session: AsyncSession,
    rt: Runtime,
    *,
    group: ButlerGroup,
    customer: Customer,
    text: str,
    case_id: int | None = None,
    buttons: list[str] | None = None,
    meta: dict[str, Any] | None = None,
) -> Message:
    """Store and deliver a message from the system (promises, rating requests)."""
    message = await conv_service.add_message(
        session,
        group_id=group.id,
        author_kind=AuthorKind.SYSTEM,
        channel="bot",
        body=text,
        now=rt.clock.now(),
        case_id=case_id,
        meta=meta or {},
    )
    await deliver_to_customer(session, rt, group=group, message=message, buttons=buttons or [])
    return message


async def deliver_to_customer(
    session: AsyncSession, rt: Runtime, *, group: ButlerGroup, message: Message, buttons: list[str]
) -> None:
    """Push a public message to every active channel of the customer (after commit, via outbox/bus)."""
    if message.internal:
        raise AssertionError("internal notes never reach customers")
    emit(session, f"customer:{group.customer_id}", {"type": "message.new", "message_id": message.id})
    known = teams_service.known_identities(session, customer_id=group.customer_id)
    if known is not None:  # the sender's lookup found all of them; the objects say which are active now
        identities = [identity for identity in known if identity.active]
    else:
        identities = list(
            (await session.scalars(_ACTIVE_IDENTITIES, {"customer_id": group.customer_id})).all()
        )
    for identity in identities:
        bridge = rt.bridges.get(identity.channel)
        if bridge is not None:
            await bridge.to_customer(session, identity=identity, message=message, buttons=buttons)


async def _mirror(session: AsyncSession, rt: Runtime, *, group: ButlerGroup, message: Message) -> None:
    for bridge in rt.bridges.values():
        await bridge.mirror(session, group=group, message=message)


async def notify_staff(session: AsyncSession, rt: Runtime, *, staff: Staff, text: str) -> None:
    """Tell a staff member something: a live console event and, if linked, a Telegram message."""
    emit(session, f"staff:{staff.id}", {"type": "notice", "text": text})
    for bridge in rt.bridges.values():
        await bridge.notify_staff(session, staff=staff, text=text)


async def cases_for_staff(
    session: AsyncSession, *, staff_id: int, include_closed: bool = False, limit: int = 200
) -> list[Case]:
    """Cases assigned to a staff member, oldest open first."""
    query = select(Case).where(Case.assignee_id == staff_id)
    if not include_closed:
        query = query.where(Case.status.in_(ACTIVE_STATUSES))
    rows = await session.scalars(query.order_by(Case.opened_at).limit(limit))
    return list(rows.unique().all())


def channel_is_push(channel: str) -> bool:
    """Whether a channel needs the outbox (web chat reads from the store instead)."""
    return channel != Channel.WEBCHAT
