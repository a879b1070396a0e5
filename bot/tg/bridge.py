"""The Telegram ChannelBridge: renders engine messages into outbox rows (no network here).

Lanes keep order: one lane per private chat ("tg:<chat id>") and one per staff topic
("tg:topic:<group id>"). A topic's first row creates the topic, so mirrored messages can only be
sent after it exists; the deliverer looks the thread id up when it sends.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot import metrics
from bot.bookings import service as booking_service
from bot.bookings.texts import tx
from bot.conversations.enums import AuthorKind
from bot.conversations.models import Message
from bot.conversations.views import signature
from bot.i18n import role_name, t
from bot.outbox import service as outbox_service
from bot.runtime import Runtime
from bot.teams import service as teams_service
from bot.teams.enums import Channel
from bot.teams.models import ButlerGroup, ChannelIdentity, Customer, Staff, Vehicle
from bot.tg import service as tg_service
from bot.tg.models import TelegramTopic
from bot.tg.texts import st

CHANNEL = Channel.TELEGRAM
CAPTION_LIMIT = 1024
TEXT_LIMIT = 4096
ACTION_KINDS = {
    "book_test_drive": "test_drive",
    "book_service": "service",
    "onsite_repair": "onsite_repair",
    "parts_delivery": "parts_delivery",
}
# Groups whose topic row exists (rows are never deleted), per process: every mirrored message would
# otherwise look it up again. Kept in Runtime.extras, so each runtime (and test database) has its own.
TOPICS_KNOWN = "telegram_topics_known"
TOPICS_KNOWN_MAX = 200_000


def chat_lane(chat_id: int | str) -> str:
    """The outbox lane of one chat."""
    return f"tg:{chat_id}"


def topic_lane(group_id: int) -> str:
    """The outbox lane of one group's staff topic."""
    return f"tg:topic:{group_id}"


def send(
    session: AsyncSession,
    rt: Runtime,
    *,
    chat_id: int,
    text: str = "",
    markup: dict[str, Any] | None = None,
    group_id: int | None = None,
    message_id: int | None = None,
    media: dict[str, Any] | None = None,
    reply_to_external: int | None = None,
) -> None:
    """Queue one message to a chat, or to a group's topic when group_id is given."""
    payload: dict[str, Any] = {"chat_id": chat_id, "text": text[:TEXT_LIMIT]}
    if markup:
        payload["markup"] = markup
    if group_id is not None:
        payload["group_id"] = group_id
    if media:
        payload["media"] = media
    if reply_to_external:
        payload["reply_to_external"] = reply_to_external
    lane = topic_lane(group_id) if group_id is not None else chat_lane(chat_id)
    outbox_service.enqueue(
        session,
        channel=CHANNEL,
        lane=lane,
        payload=payload,
        now=rt.clock.now(),
        kind="send",
        message_id=message_id,
    )


def edit(
    session: AsyncSession,
    rt: Runtime,
    *,
    chat_id: int,
    external_id: int,
    text: str,
    markup: dict[str, Any] | None = None,
    group_id: int | None = None,
    caption: bool = False,
    markup_only: bool = False,
) -> None:
    """Queue an edit of a message we sent (in the lane of its chat or topic, so order holds)."""
    payload: dict[str, Any] = {"chat_id": chat_id, "external_id": external_id, "text": text[:TEXT_LIMIT]}
    if markup is not None:
        payload["markup"] = markup
    if caption:
        payload["caption"] = True
    if markup_only:
        payload["markup_only"] = True
    lane = topic_lane(group_id) if group_id is not None else chat_lane(chat_id)
    outbox_service.enqueue(
        session, channel=CHANNEL, lane=lane, payload=payload, now=rt.clock.now(), kind="edit"
    )


def inline(rows: list[list[tuple[str, str]]]) -> dict[str, Any]:
    """An inline keyboard from rows of (label, callback data)."""
    return {
        "inline_keyboard": [[{"text": label, "callback_data": data} for label, data in row] for row in rows]
    }


def engine_buttons(message_id: int, buttons: list[str], locale: str) -> dict[str, Any] | None:
    """Inline buttons for the engine's button ids (feedback, person, ratings, booking actions)."""
    seen: set[str] = set()
    row: list[tuple[str, str]] = []
    extra: list[list[tuple[str, str]]] = []
    for button in buttons:
        if button == "talk_to_person":
            button = "person"
        if button in seen:
            continue
        seen.add(button)
        if button.startswith("rate:"):
            row.append(("★" * int(button.split(":", 1)[1]), f"b:{message_id}:{button}"))
        elif button in ("helpful", "not_helpful", "person"):
            row.append((t(f"button.{button}", locale), f"b:{message_id}:{button}"))
        elif button in ACTION_KINDS:
            kind = ACTION_KINDS[button]
            extra.append([(tx(f"kind.{kind}", locale), f"m:{kind}")])
    rows = ([row] if row else []) + extra
    return inline(rows) if rows else None


def customer_text(message: Message, locale: str) -> str:
    """A public message as the customer reads it: staff replies signed "Name · Role"."""
    staff = message.author_staff
    if message.author_kind == AuthorKind.STAFF and staff is not None:
        sig = signature(staff.display_name, staff.role, locale)
        return f"{sig}\n{message.body}" if message.body else sig
    return message.body


def topic_text(message: Message, customer: Customer, locale: str) -> str:
    """A message as the staff topic shows it."""
    if message.author_kind == AuthorKind.CUSTOMER:
        head = st("from_customer", locale, name=customer.display_name)
    elif message.author_kind == AuthorKind.STAFF and message.author_staff is not None:
        sig = signature(message.author_staff.display_name, message.author_staff.role, locale)
        head = st("from_staff", locale, signature=sig)
    else:
        head = st("from_bot", locale)
    edited = f" {st('edited', locale)}" if message.meta.get("edited_at") else ""
    return f"{head}{edited}\n{message.body}" if message.body else f"{head}{edited}"


def queue_message(
    session: AsyncSession,
    rt: Runtime,
    *,
    chat_id: int,
    text: str,
    attachments: list[dict[str, Any]],
    markup: dict[str, Any] | None,
    message_id: int | None,
    group_id: int | None = None,
) -> None:
    """Queue a message with its attachments: one captioned media row when that fits, else text first."""
    media = [a for a in attachments if a.get("type") in ("photo", "document", "voice", "location")]
    if len(media) == 1 and media[0]["type"] != "location" and len(text) <= CAPTION_LIMIT:
        send(
            session,
            rt,
            chat_id=chat_id,
            text=text,
            markup=markup,
            group_id=group_id,
            message_id=message_id,
            media=media[0],
        )
        return
    if text or not media:
        send(
            session,
            rt,
            chat_id=chat_id,
            text=text or "…",
            markup=markup,
            group_id=group_id,
            message_id=message_id,
        )
    for item in media:
        send(session, rt, chat_id=chat_id, group_id=group_id, message_id=message_id, media=item)


def topic_name(customer: Customer, vehicles: list[Vehicle]) -> str:
    """The topic title: customer name and first car, else the customer number."""
    name = (customer.display_name or "Customer")[:80]
    if vehicles:
        return f"{name} · {vehicles[0].model} …{vehicles[0].vin[-4:]}"
    return f"{name} #{customer.id}"


async def header_text(
    session: AsyncSession,
    rt: Runtime,
    *,
    group: ButlerGroup,
    customer: Customer,
    vehicles: list[Vehicle] | None = None,
) -> str:
    """The topic's opening message: who the customer is and who is on the team."""
    locale = rt.settings.default_locale
    members = await teams_service.active_members(session, group_id=group.id)
    lines = [
        f"• {signature(m.staff.display_name, m.role, locale)}{' ✓' if m.staff.telegram_user_id else ''}"
        for m in members
    ]
    if group.gaps:
        lines.append(st("gap", locale, roles=", ".join(role_name(r, locale) for r in group.gaps)))
    if vehicles is None:
        vehicles = await booking_service.customer_vehicles(session, customer_id=customer.id)
    cars = ", ".join(f"{v.model} ({v.vin})" for v in vehicles) or st("no_vehicle", locale)
    phone = f" · {customer.phone}" if customer.phone else ""
    return st(
        "header", locale, customer=customer.display_name, phone=phone, vehicles=cars, team="\n".join(lines)
    )


def _remember_topic(session: AsyncSession, known: set[int], group_id: int) -> None:
    """Skip the topic lookup for this group from now on, once the row is surely committed."""
    if len(known) >= TOPICS_KNOWN_MAX:  # a bound on memory; the lookups simply start again
        known.clear()
    metrics.after_commit(session, lambda: known.add(group_id))


def _ensured_here(session: AsyncSession) -> set[int]:
    """Groups whose topic row this transaction has seen or reserved.

    A first contact mirrors the question and then the bot's answer, and the reserved row is not in
    the session's identity map; the set belongs to one transaction, so a rollback forgets it.
    """
    transaction = session.sync_session.get_transaction()
    mark = session.info.get(TOPICS_KNOWN)
    if mark is None or mark[0] is not transaction:
        mark = session.info[TOPICS_KNOWN] = (transaction, set())
    ensured: set[int] = mark[1]
    return ensured


async def ensure_topic(session: AsyncSession, rt: Runtime, *, group: ButlerGroup) -> bool:
    """Queue the creation of the group's topic and its header, once; False if no staff chat."""
    chat_id = rt.settings.telegram_staff_chat_id
    if chat_id is None:
        return False
    known: set[int] = rt.extras.setdefault(TOPICS_KNOWN, set())
    ensured = _ensured_here(session)
    if group.id in known or group.id in ensured:
        return True
    ensured.add(group.id)
    if await session.get(TelegramTopic, group.id) is not None:
        _remember_topic(session, known, group.id)
        return True
    customer = await session.get(Customer, group.customer_id)
    assert customer is not None
    vehicles = await booking_service.customer_vehicles(session, customer_id=customer.id)
    name = topic_name(customer, vehicles)
    now = rt.clock.now()
    _remember_topic(session, known, group.id)  # reserved now or by a racing transaction: it exists
    if await tg_service.reserve_topic(session, group_id=group.id, chat_id=chat_id, name=name, now=now):
        # The create row is the first of the topic's lane: nothing can be sent there before it.
        outbox_service.enqueue(
            session,
            channel=CHANNEL,
            lane=topic_lane(group.id),
            payload={"chat_id": chat_id, "group_id": group.id, "name": name},
            now=now,
            kind="create_topic",
        )
        header = await header_text(session, rt, group=group, customer=customer, vehicles=vehicles)
        send(session, rt, chat_id=chat_id, group_id=group.id, text=header)
    return True


async def topic_notice(session: AsyncSession, rt: Runtime, *, group: ButlerGroup, text: str) -> None:
    """Post a bot notice into the group's staff topic (creating the topic first if needed)."""
    if await ensure_topic(session, rt, group=group):
        chat_id = rt.settings.telegram_staff_chat_id
        assert chat_id is not None
        send(session, rt, chat_id=chat_id, group_id=group.id, text=text)


class TelegramBridge:
    """Customer delivery, topic mirroring and staff notices for the Telegram channel."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    async def to_customer(
        self, session: AsyncSession, *, identity: ChannelIdentity, message: Message, buttons: list[str]
    ) -> None:
        """Queue a public message to the customer's private chat; mirror it to the topic too."""
        customer = await session.get(Customer, identity.customer_id)
        assert customer is not None and identity.chat_id is not None
        locale = customer.locale
        queue_message(
            session,
            self.rt,
            chat_id=int(identity.chat_id),
            text=customer_text(message, locale),
            attachments=list(message.attachments or []),
            markup=engine_buttons(message.id, buttons, locale),
            message_id=message.id,
        )
        from_topic = message.author_kind == AuthorKind.STAFF and message.channel == CHANNEL
        if not from_topic:
            group = await session.get(ButlerGroup, message.group_id)
            assert group is not None
            await self._to_topic(session, group=group, customer=customer, message=message)

    async def mirror(self, session: AsyncSession, *, group: ButlerGroup, message: Message) -> None:
        """Queue a customer message into the group's staff topic (the topic is created first)."""
        customer = await session.get(Customer, group.customer_id)
        assert customer is not None
        await self._to_topic(session, group=group, customer=customer, message=message)

    async def _to_topic(
        self, session: AsyncSession, *, group: ButlerGroup, customer: Customer, message: Message
    ) -> None:
        if not await ensure_topic(session, self.rt, group=group):
            return
        chat_id = self.rt.settings.telegram_staff_chat_id
        assert chat_id is not None
        queue_message(
            session,
            self.rt,
            chat_id=chat_id,
            text=topic_text(message, customer, self.rt.settings.default_locale),
            attachments=list(message.attachments or []),
            markup=None,
            message_id=message.id,
            group_id=group.id,
        )

    async def notify_staff(self, session: AsyncSession, *, staff: Staff, text: str) -> None:
        """Send a linked staff member a private notice."""
        if staff.telegram_user_id is None:
            return
        send(session, self.rt, chat_id=staff.telegram_user_id, text=st("notify", staff.ui_locale, text=text))
