"""Telegram use cases: customers in private chat, staff in topics, links, edits, blocked chats."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.bookings import flows as booking_flows
from bot.bookings.flows import Answer, BookingReply
from bot.conversations import service as conv_service
from bot.conversations.buttons import ButtonResult, press_button
from bot.conversations.enums import AuthorKind
from bot.conversations.flows import InboundMessage, InboundResult, ensure_group, receive_customer_message
from bot.conversations.models import Message, MessageRef
from bot.conversations.staff_flows import invite_member, resolve_case, staff_reply, transfer_case
from bot.errors import Forbidden, InvalidInput, NotFound
from bot.i18n import normalize_locale, role_name, t
from bot.runtime import Runtime
from bot.teams import service as teams_service
from bot.teams.enums import TEAM_ROLES, Channel
from bot.teams.models import ButlerGroup, Customer, Membership, Staff
from bot.tg import bridge
from bot.tg import service as tg_service
from bot.tg.texts import st

LINK_TTL = timedelta(hours=24)


@dataclass(frozen=True)
class TgUser:
    """The Telegram user behind an update, and the chat it came from."""

    id: int
    chat_id: int
    first_name: str = ""
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None

    @property
    def display_name(self) -> str:
        """First and last name, else the username, else the id."""
        name = " ".join(p for p in (self.first_name, self.last_name) if p).strip()
        return name or (self.username or f"Telegram {self.id}")


@dataclass
class Welcome:
    """A customer with their team, for the greeting and /team."""

    customer: Customer
    group: ButlerGroup
    members: list[Membership]
    created: bool


@dataclass
class CustomerOutcome:
    """What a customer's message led to: a booking step, or the engine's handling."""

    customer: Customer
    booking: BookingReply | None = None
    result: InboundResult | None = None


@dataclass
class TopicOutcome:
    """What a staff action in a topic did, and the notice to post back into the topic."""

    group: ButlerGroup
    notice: str | None = None
    message: Message | None = None
    extra: dict[str, Any] = field(default_factory=dict)


async def customer_for(session: AsyncSession, rt: Runtime, *, user: TgUser) -> Customer:
    """The customer behind a Telegram user, created on first contact (re-activated if they left)."""
    customer, identity, _ = await teams_service.find_or_create_customer(
        session,
        channel=Channel.TELEGRAM,
        external_id=str(user.id),
        chat_id=str(user.chat_id),
        display_name=user.display_name,
        locale=normalize_locale(user.language_code, rt.settings.default_locale),
        now=rt.clock.now(),
    )
    if not identity.active:
        identity.active = True
    return customer


async def start_customer(session: AsyncSession, rt: Runtime, *, user: TgUser) -> Welcome:
    """/start: the customer, their team formed on first contact, and their staff topic."""
    customer = await customer_for(session, rt, user=user)
    group, created = await ensure_group(session, rt, customer=customer)
    await bridge.ensure_topic(session, rt, group=group)
    members = await teams_service.active_members(session, group_id=group.id)
    return Welcome(customer=customer, group=group, members=members, created=created)


async def set_language(session: AsyncSession, rt: Runtime, *, user: TgUser, locale: str) -> Customer:
    """Switch the customer's language (zh-CN or en)."""
    customer = await customer_for(session, rt, user=user)
    customer.locale = normalize_locale(locale, rt.settings.default_locale)
    return customer


async def save_phone(session: AsyncSession, rt: Runtime, *, user: TgUser, phone: str) -> Customer:
    """Store the phone number the customer shared with the contact button."""
    digits = "".join(c for c in phone if c.isdigit() or c == "+")
    if not 5 <= len(digits) <= 20:
        raise InvalidInput("phone.invalid", "that does not look like a phone number")
    customer = await customer_for(session, rt, user=user)
    customer.phone = digits if digits.startswith("+") else f"+{digits}"
    return customer


async def customer_message(
    session: AsyncSession,
    rt: Runtime,
    *,
    user: TgUser,
    message_id: int,
    text: str,
    attachments: list[dict[str, Any]],
    reply_to_external: int | None = None,
    location: dict[str, float] | None = None,
) -> CustomerOutcome:
    """A customer wrote: an answer to the open booking step, or a message for the team."""
    customer = await customer_for(session, rt, user=user)
    photo = next((a for a in attachments if a.get("type") == "photo"), None)
    if await booking_flows.waits_for_input(session, customer=customer, photo=photo is not None):
        fresh = await conv_service.record_receipt(
            session,
            channel=Channel.TELEGRAM,
            chat_id=str(user.chat_id),
            external_id=str(message_id),
            now=rt.clock.now(),
        )
        if not fresh:
            return CustomerOutcome(customer=customer)
        answer = Answer(text=text, location=location, photo=photo)
        reply = await booking_flows.answer_booking(
            session, rt, customer=customer, answer=answer, channel=Channel.TELEGRAM
        )
        return CustomerOutcome(customer=customer, booking=reply)
    result = await receive_customer_message(
        session,
        rt,
        InboundMessage(
            channel=Channel.TELEGRAM,
            external_user_id=str(user.id),
            chat_id=str(user.chat_id),
            external_message_id=str(message_id),
            text=text,
            display_name=user.display_name,
            locale=user.language_code,
            attachments=attachments,
            customer=customer,
        ),
    )
    if not result.duplicate and reply_to_external and result.message_id:
        await _link_reply(
            session, message_id=result.message_id, chat_id=user.chat_id, external=reply_to_external
        )
    return CustomerOutcome(customer=customer, result=result)


async def _link_reply(session: AsyncSession, *, message_id: int, chat_id: int, external: int) -> None:
    """Remember which of our messages a new message replies to, for the copies on the other side."""
    replied = await conv_service.message_by_ref(
        session, channel=Channel.TELEGRAM, chat_id=str(chat_id), external_id=str(external)
    )
    message = await session.get(Message, message_id)
    if message is None:
        return
    if replied is not None and replied.group_id == message.group_id:
        message.meta = {**message.meta, "reply_to": replied.id}
    elif replied is None:
        # Our copy may be so fresh that its id is not recorded yet: the deliverer looks again.
        message.meta = {**message.meta, "reply_to_ref": [chat_id, external]}


async def press(
    session: AsyncSession, rt: Runtime, *, user: TgUser, message_id: int | None, button: str
) -> tuple[Customer, ButtonResult]:
    """A customer pressed one of the engine's buttons (feedback, person, a rating)."""
    customer = await customer_for(session, rt, user=user)
    result = await press_button(session, rt, customer=customer, message_id=message_id, button=button)
    return customer, result


async def link_staff(session: AsyncSession, rt: Runtime, *, token: str, user: TgUser) -> Staff | None:
    """/start link_<token>: tie the staff account behind the token to this Telegram account."""
    staff_id = await tg_service.take_link_token(session, token=token, now=rt.clock.now())
    if staff_id is None:
        return None
    staff = await teams_service.get_staff(session, staff_id=staff_id)
    if staff is None or not staff.active:
        return None
    previous = await tg_service.staff_by_telegram(session, telegram_user_id=user.id)
    if previous is not None and previous.id != staff.id:
        previous.telegram_user_id = None
        await session.flush()
    staff.telegram_user_id = user.id
    teams_service.audit(
        session,
        action="staff.telegram_link",
        object_type="staff",
        object_id=staff.id,
        actor_staff_id=staff.id,
        now=rt.clock.now(),
        data={"telegram_user_id": user.id},
    )
    return staff


async def issue_link_token(session: AsyncSession, rt: Runtime, *, staff: Staff) -> str:
    """A one-time deep link (valid 24 h) that links the opener's Telegram account to `staff`."""
    token = secrets.token_urlsafe(18)
    now = rt.clock.now()
    tg_service.add_link_token(session, staff_id=staff.id, token=token, now=now, expires_at=now + LINK_TTL)
    await session.flush()
    username = rt.extras.get("telegram_bot_username") or "your_bot"
    return f"https://t.me/{username}?start=link_{token}"


async def _topic_actor(
    session: AsyncSession, rt: Runtime, *, chat_id: int, thread_id: int, telegram_user_id: int
) -> tuple[ButlerGroup, Staff]:
    """The group of a topic and the linked staff member acting in it."""
    group = await tg_service.group_for_thread(session, chat_id=chat_id, thread_id=thread_id)
    if group is None:
        raise NotFound("topic.unknown", "this topic does not belong to a customer")
    staff = await tg_service.staff_by_telegram(session, telegram_user_id=telegram_user_id)
    if staff is None:
        raise Forbidden("staff.unlinked", st("unlinked", rt.settings.default_locale))
    return group, staff


async def relay_from_topic(
    session: AsyncSession,
    rt: Runtime,
    *,
    chat_id: int,
    thread_id: int,
    telegram_user_id: int,
    message_id: int,
    text: str,
    attachments: list[dict[str, Any]],
    internal: bool = False,
    reply_to_external: int | None = None,
) -> TopicOutcome | None:
    """A staff message in a topic: a reply to the customer signed by them, or an internal note."""
    group, staff = await _topic_actor(
        session, rt, chat_id=chat_id, thread_id=thread_id, telegram_user_id=telegram_user_id
    )
    now = rt.clock.now()
    fresh = await conv_service.record_receipt(
        session, channel=Channel.TELEGRAM, chat_id=str(chat_id), external_id=str(message_id), now=now
    )
    if not fresh:
        return None
    message = await staff_reply(
        session,
        rt,
        staff=staff,
        group_id=group.id,
        body=text,
        internal=internal,
        channel=Channel.TELEGRAM,
        attachments=attachments,
    )
    conv_service.add_ref(
        session, message=message, channel=Channel.TELEGRAM, chat_id=str(chat_id), external_id=str(message_id)
    )
    if reply_to_external and reply_to_external != thread_id:
        await _link_reply(session, message_id=message.id, chat_id=chat_id, external=reply_to_external)
    notice = st("note_saved", rt.settings.default_locale) if internal else None
    return TopicOutcome(group=group, message=message, notice=notice)


async def resolve_from_topic(
    session: AsyncSession, rt: Runtime, *, chat_id: int, thread_id: int, telegram_user_id: int
) -> TopicOutcome:
    """/resolve in a topic: resolve the group's open case; the customer is asked for a rating."""
    group, staff = await _topic_actor(
        session, rt, chat_id=chat_id, thread_id=thread_id, telegram_user_id=telegram_user_id
    )
    locale = rt.settings.default_locale
    case = await conv_service.active_case(session, group_id=group.id)
    if case is None:
        return TopicOutcome(group=group, notice=st("no_case", locale))
    await resolve_case(session, rt, staff=staff, case_id=case.id)
    return TopicOutcome(group=group, notice=st("resolved", locale, case_id=case.id, name=staff.display_name))


async def invite_from_topic(
    session: AsyncSession, rt: Runtime, *, chat_id: int, thread_id: int, telegram_user_id: int, role: str
) -> TopicOutcome:
    """/invite <role> in a topic: the assignment policy seats another specialist of that role."""
    group, staff = await _topic_actor(
        session, rt, chat_id=chat_id, thread_id=thread_id, telegram_user_id=telegram_user_id
    )
    locale = rt.settings.default_locale
    role = role.strip().lower()
    if role not in TEAM_ROLES:
        return TopicOutcome(group=group, notice=st("usage.invite", locale))
    member = await invite_member(session, rt, staff=staff, group_id=group.id, role=role)
    seated = await teams_service.get_staff(session, staff_id=member.staff_id)
    name = seated.display_name if seated is not None else str(member.staff_id)
    return TopicOutcome(group=group, notice=st("invited", locale, name=name, role=role_name(role, locale)))


async def transfer_from_topic(
    session: AsyncSession,
    rt: Runtime,
    *,
    chat_id: int,
    thread_id: int,
    telegram_user_id: int,
    username: str,
) -> TopicOutcome:
    """/transfer <username> in a topic: hand the open case to that staff member."""
    group, staff = await _topic_actor(
        session, rt, chat_id=chat_id, thread_id=thread_id, telegram_user_id=telegram_user_id
    )
    locale = rt.settings.default_locale
    target = await teams_service.get_staff_by_username(session, username=username.strip().lstrip("@"))
    if not username.strip() or target is None:
        return TopicOutcome(group=group, notice=st("usage.transfer", locale))
    case = await conv_service.active_case(session, group_id=group.id)
    if case is None:
        return TopicOutcome(group=group, notice=st("no_case", locale))
    await transfer_case(session, rt, staff=staff, case_id=case.id, to_staff_id=target.id)
    return TopicOutcome(
        group=group, notice=st("transferred", locale, case_id=case.id, name=target.display_name)
    )


async def edit_from_chat(
    session: AsyncSession, rt: Runtime, *, chat_id: int, external_id: int, editor_id: int, text: str
) -> Message | None:
    """An edit on Telegram: update our message and queue the same edit on every other copy."""
    message = await conv_service.message_by_ref(
        session, channel=Channel.TELEGRAM, chat_id=str(chat_id), external_id=str(external_id)
    )
    if message is None or message.internal or not text.strip():
        return None
    staff_chat = rt.settings.telegram_staff_chat_id
    if message.author_kind == AuthorKind.STAFF:
        staff = message.author_staff
        if staff is None or staff.telegram_user_id != editor_id:
            return None
    elif message.author_kind != AuthorKind.CUSTOMER or chat_id == staff_chat:
        return None
    message.body = text.strip()[: rt.settings.max_message_chars]
    message.meta = {**message.meta, "edited_at": rt.clock.now().isoformat()}
    group = await session.get(ButlerGroup, message.group_id)
    assert group is not None
    customer = await session.get(Customer, group.customer_id)
    assert customer is not None
    for ref in await tg_service.refs_of(session, message_id=message.id):
        target = int(ref.chat_id)
        if target != chat_id:
            _queue_copy_edit(session, rt, message=message, customer=customer, group=group, ref=ref)
    return message


def _queue_copy_edit(
    session: AsyncSession, rt: Runtime, *, message: Message, customer: Customer, group: ButlerGroup, ref: Any
) -> None:
    """Queue the edit that brings one Telegram copy of a message up to date."""
    target = int(ref.chat_id)
    in_topic = target == rt.settings.telegram_staff_chat_id
    rendered = (
        bridge.topic_text(message, customer, rt.settings.default_locale)
        if in_topic
        else bridge.customer_text(message, customer.locale)
    )
    bridge.edit(
        session,
        rt,
        chat_id=target,
        external_id=int(ref.external_id),
        text=rendered,
        group_id=group.id if in_topic else None,
        caption=_captioned(message, rendered),
    )


async def copy_sent(
    session: AsyncSession,
    rt: Runtime,
    *,
    message_id: int,
    chat_id: int,
    external_id: int,
    queued_at: datetime,
) -> None:
    """Record a copy we sent; if the message was edited after the copy was queued, edit the copy too.

    An edit that comes in while a copy is still queued or on its way cannot find the copy's id
    (it is known only once Telegram answered), so the copy is brought up to date here instead.
    """
    tg_service.record_ref(session, message_id=message_id, chat_id=chat_id, external_id=external_id)
    message = await session.get(Message, message_id)
    edited = message.meta.get("edited_at") if message is not None else None
    if message is None or not edited or message.internal:
        return
    if datetime.fromisoformat(edited) < queued_at.replace(tzinfo=queued_at.tzinfo or UTC):
        return
    group = await session.get(ButlerGroup, message.group_id)
    customer = await session.get(Customer, group.customer_id) if group is not None else None
    if group is None or customer is None:
        return
    copy = MessageRef(
        message_id=message.id, channel=Channel.TELEGRAM, chat_id=str(chat_id), external_id=str(external_id)
    )
    _queue_copy_edit(session, rt, message=message, customer=customer, group=group, ref=copy)


def _captioned(message: Message, text: str) -> bool:
    """Whether a message went out as one captioned media message (so an edit is a caption edit)."""
    media = [a for a in message.attachments or [] if a.get("type") in ("photo", "document", "voice")]
    return len(media) == 1 and len(message.attachments) == 1 and len(text) <= bridge.CAPTION_LIMIT


async def mark_blocked(session: AsyncSession, rt: Runtime, *, chat_id: int) -> bool:
    """The customer blocked the bot: stop pushing to that chat and tell the team, once."""
    identity = await tg_service.identity_by_chat(session, chat_id=chat_id)
    if identity is None or not identity.active:
        return False
    identity.active = False
    group = await teams_service.get_group_for_customer(session, customer_id=identity.customer_id)
    if group is not None:
        await bridge.topic_notice(
            session, rt, group=group, text=t("channel.blocked", rt.settings.default_locale)
        )
    return True


async def mark_unblocked(session: AsyncSession, rt: Runtime, *, chat_id: int) -> bool:
    """The customer unblocked the bot: deliver to the chat again and tell the team."""
    identity = await tg_service.identity_by_chat(session, chat_id=chat_id)
    if identity is None or identity.active:
        return False
    identity.active = True
    group = await teams_service.get_group_for_customer(session, customer_id=identity.customer_id)
    if group is not None:
        await bridge.topic_notice(
            session, rt, group=group, text=st("reactivated", rt.settings.default_locale)
        )
    return True
