"""Customer button presses: answer feedback, asking for a person, rating a resolved case."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from bot.conversations import service as conv_service
from bot.conversations.enums import AuthorKind, Priority
from bot.conversations.flows import ensure_group, open_case
from bot.conversations.models import Message
from bot.conversations.routing import RoutingDecision
from bot.conversations.staff_flows import rate_case
from bot.errors import InvalidInput, NotFound
from bot.runtime import Runtime
from bot.teams.models import Customer

BUTTONS = {"helpful", "not_helpful", "person"}


@dataclass
class ButtonResult:
    """What a press did."""

    action: str
    case_id: int | None = None


async def press_button(
    session: AsyncSession, rt: Runtime, *, customer: Customer, message_id: int | None, button: str
) -> ButtonResult:
    """Apply a customer's button press on one of the messages we sent them."""
    if button.startswith("rate:"):
        return await _rate(session, rt, customer=customer, message_id=message_id, button=button)
    if button not in BUTTONS:
        raise InvalidInput("button.unknown", f"unknown button {button!r}")
    group, _ = await ensure_group(session, rt, customer=customer)
    message = await _own_message(session, group_id=group.id, message_id=message_id) if message_id else None
    if message is not None and message.author_kind == AuthorKind.BOT:
        message.meta = {**message.meta, "feedback": button}
    if button == "helpful":
        return ButtonResult("thanked")
    active = await conv_service.active_case(session, group_id=group.id)
    if active is not None:
        return ButtonResult("already_open", active.id)
    last = await conv_service.last_customer_message(session, group_id=group.id)
    text = last.body if last else ""
    routed = rt.router.route(text, locale=customer.locale)
    reason = "customer pressed 'talk to a person'" if button == "person" else "bot answer marked not helpful"
    decision = RoutingDecision(
        routed.category, routed.priority or Priority.NORMAL, f"{reason}; {routed.reason}"
    )
    case = await open_case(
        session,
        rt,
        group=group,
        decision=decision,
        subject=(text or reason)[:120],
        fields={"bot_message_id": message_id} if message_id else {},
    )
    if last is not None and last.case_id is None:
        last.case_id = case.id
    return ButtonResult("case_opened", case.id)


async def _own_message(session: AsyncSession, *, group_id: int, message_id: int) -> Message:
    message = await session.get(Message, message_id)
    if message is None or message.group_id != group_id or message.internal:
        raise NotFound("message.not_found", f"message {message_id} does not exist")
    return message


async def _rate(
    session: AsyncSession, rt: Runtime, *, customer: Customer, message_id: int | None, button: str
) -> ButtonResult:
    try:
        score = int(button.split(":", 1)[1])
    except ValueError as exc:
        raise InvalidInput("rating.range", "rating must be between 1 and 5") from exc
    group, _ = await ensure_group(session, rt, customer=customer)
    if message_id is None:
        raise InvalidInput("rating.message", "a rating needs the message it answers")
    message = await _own_message(session, group_id=group.id, message_id=message_id)
    case_id = message.meta.get("rating_for_case")
    if not isinstance(case_id, int):
        raise InvalidInput("rating.message", "that message does not ask for a rating")
    case = await rate_case(session, rt, customer_id=customer.id, case_id=case_id, score=score)
    return ButtonResult("rated", case.id)
