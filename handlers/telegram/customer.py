"""Customer handlers (private chat): parse the update, call one flow, queue the answer."""

from __future__ import annotations

import logging
from typing import Any

from telegram import Message as TgMessage
from telegram import Update
from telegram.ext import ContextTypes

from bot.bookings import flows as booking_flows
from bot.bookings.flows import Answer, BookingReply
from bot.bookings.texts import tx
from bot.conversations.views import signature
from bot.i18n import role_name, t
from bot.teams.enums import Channel
from bot.tg import bridge
from bot.tg import flows as tg_flows
from bot.tg.flows import TgUser, Welcome
from bot.tg.texts import st
from handlers.telegram import keyboards
from handlers.telegram.media import attachments_of, is_unsupported, store_copies
from handlers.telegram.runner import Unit, current_unit
from handlers.telegram.texts import ct

log = logging.getLogger(__name__)


def tg_user(update: Update) -> TgUser:
    """The sender and chat of an update."""
    user, chat = update.effective_user, update.effective_chat
    assert user is not None and chat is not None
    return TgUser(user.id, chat.id, user.first_name, user.last_name, user.username, user.language_code)


def team_lines(welcome: Welcome, locale: str) -> list[str]:
    """The team as "Name · Role" lines."""
    return [signature(m.staff.display_name, m.role, locale) for m in welcome.members]


def _say(unit: Unit, chat_id: int, text: str, markup: dict[str, Any] | None = None) -> None:
    bridge.send(unit.session, unit.rt, chat_id=chat_id, text=text, markup=markup)


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/start: greeting in the user's language with the team and the menu; /start link_<token> links staff."""
    unit, user = current_unit(), tg_user(update)
    args = context.args or []
    if args and args[0].startswith("link_"):
        staff = await tg_flows.link_staff(unit.session, unit.rt, token=args[0][5:], user=user)
        if staff is None:
            _say(unit, user.chat_id, st("link_invalid", unit.rt.settings.default_locale))
        else:
            locale = staff.ui_locale
            _say(
                unit,
                user.chat_id,
                st("linked", locale, name=staff.display_name, role=role_name(staff.role, locale)),
            )
        return
    welcome = await tg_flows.start_customer(unit.session, unit.rt, user=user)
    locale = welcome.customer.locale
    team = (
        "、".join(team_lines(welcome, locale))
        if locale == "zh-CN"
        else ", ".join(team_lines(welcome, locale))
    )
    greeting = t("welcome", locale, name=welcome.customer.display_name, team=team)
    _say(unit, user.chat_id, f"{greeting}\n\n{ct('menu.title', locale)}", keyboards.menu(locale))


async def menu(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/menu."""
    unit, user = current_unit(), tg_user(update)
    customer = await tg_flows.customer_for(unit.session, unit.rt, user=user)
    _say(unit, user.chat_id, ct("menu.title", customer.locale), keyboards.menu(customer.locale))


async def team(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/team: who is on the customer's butler team."""
    unit, user = current_unit(), tg_user(update)
    await _show_team(unit, user)


async def _show_team(unit: Unit, user: TgUser) -> None:
    welcome = await tg_flows.start_customer(unit.session, unit.rt, user=user)
    locale = welcome.customer.locale
    lines = "\n".join(f"• {line}" for line in team_lines(welcome, locale))
    text = ct("team", locale, team=lines)
    if welcome.group.gaps:
        text += "\n" + ct(
            "team.gaps", locale, roles=", ".join(role_name(r, locale) for r in welcome.group.gaps)
        )
    _say(unit, user.chat_id, text)


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/help."""
    unit, user = current_unit(), tg_user(update)
    customer = await tg_flows.customer_for(unit.session, unit.rt, user=user)
    _say(unit, user.chat_id, ct("help", customer.locale))


async def language(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/language: offer zh-CN / en."""
    unit, user = current_unit(), tg_user(update)
    customer = await tg_flows.customer_for(unit.session, unit.rt, user=user)
    _say(unit, user.chat_id, ct("language.pick", customer.locale), keyboards.languages())


async def phone(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/phone: the share-contact button."""
    unit, user = current_unit(), tg_user(update)
    customer = await tg_flows.customer_for(unit.session, unit.rt, user=user)
    _say(unit, user.chat_id, ct("phone.ask", customer.locale), keyboards.share_phone(customer.locale))


async def vehicle(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/vehicle: register a car (VIN, then model)."""
    unit, user = current_unit(), tg_user(update)
    customer = await tg_flows.customer_for(unit.session, unit.rt, user=user)
    prompt = await booking_flows.start_booking(unit.session, unit.rt, customer=customer, kind="vehicle")
    _say(unit, user.chat_id, prompt.text, keyboards.booking(prompt))


async def cancel(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/cancel: drop the booking in progress."""
    unit, user = current_unit(), tg_user(update)
    customer = await tg_flows.customer_for(unit.session, unit.rt, user=user)
    done = await booking_flows.cancel_booking(unit.session, unit.rt, customer=customer)
    _say(unit, user.chat_id, tx("cancelled", customer.locale) if done else ct("no_booking", customer.locale))


async def contact(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A shared contact: the customer's own phone number."""
    unit, user = current_unit(), tg_user(update)
    message = update.effective_message
    assert message is not None and message.contact is not None
    if message.contact.user_id != user.id:
        customer = await tg_flows.customer_for(unit.session, unit.rt, user=user)
        _say(unit, user.chat_id, ct("phone.not_own", customer.locale), keyboards.share_phone(customer.locale))
        return
    customer = await tg_flows.save_phone(unit.session, unit.rt, user=user, phone=message.contact.phone_number)
    _say(unit, user.chat_id, ct("phone.saved", customer.locale, phone=customer.phone), keyboards.remove())


async def message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Text, photo, document, voice or location: a booking answer or a message for the team."""
    unit, user = current_unit(), tg_user(update)
    msg = update.effective_message
    assert msg is not None
    attachments = attachments_of(msg)
    await store_copies(context.bot, attachments, unit.rt.settings)
    location = next(
        (
            {"latitude": a["latitude"], "longitude": a["longitude"]}
            for a in attachments
            if a["type"] == "location"
        ),
        None,
    )
    reply_to = msg.reply_to_message.message_id if msg.reply_to_message else None
    outcome = await tg_flows.customer_message(
        unit.session,
        unit.rt,
        user=user,
        message_id=msg.message_id,
        text=msg.text or msg.caption or "",
        attachments=attachments,
        reply_to_external=reply_to,
        location=location,
    )
    if outcome.booking is not None:
        _render_booking(unit, user.chat_id, outcome.booking, locale=outcome.customer.locale)


async def unsupported(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Stickers, videos, polls...: say what we take (service messages are ignored)."""
    msg = update.effective_message
    if msg is None or not is_unsupported(msg):
        return
    unit, user = current_unit(), tg_user(update)
    customer = await tg_flows.customer_for(unit.session, unit.rt, user=user)
    _say(unit, user.chat_id, ct("unsupported", customer.locale))


async def edited(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The customer edited a message: the copy in the staff topic follows."""
    unit, user = current_unit(), tg_user(update)
    msg = update.edited_message
    assert msg is not None
    await tg_flows.edit_from_chat(
        unit.session,
        unit.rt,
        chat_id=user.chat_id,
        external_id=msg.message_id,
        editor_id=user.id,
        text=msg.text or msg.caption or "",
    )


async def chat_member(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The customer blocked or unblocked the bot."""
    unit = current_unit()
    change = update.my_chat_member
    assert change is not None
    if change.chat.type != "private":
        return
    status = change.new_chat_member.status
    if status in ("kicked", "left"):
        await tg_flows.mark_blocked(unit.session, unit.rt, chat_id=change.chat.id)
    elif status == "member":
        await tg_flows.mark_unblocked(unit.session, unit.rt, chat_id=change.chat.id)


async def pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """An inline button: menu item, engine button, booking option or language."""
    unit, user = current_unit(), tg_user(update)
    query = update.callback_query
    assert query is not None
    prefix, _, rest = (query.data or "").partition(":")
    source = query.message if isinstance(query.message, TgMessage) else None
    note: str | None = None
    if prefix == "m":
        await _menu_item(unit, user, rest)
    elif prefix == "b":
        note = await _engine_button(unit, user, rest, source)
    elif prefix == "bk":
        note = await _booking_button(unit, user, rest, source)
    elif prefix == "lang":
        customer = await tg_flows.set_language(unit.session, unit.rt, user=user, locale=rest)
        _say(unit, user.chat_id, ct("language.set", customer.locale), keyboards.menu(customer.locale))
    else:
        log.info("unknown callback data (%s characters) ignored", len(query.data or ""))
    unit.after_commit.append(lambda: query.answer(note))


async def _menu_item(unit: Unit, user: TgUser, item: str) -> None:
    customer = await tg_flows.customer_for(unit.session, unit.rt, user=user)
    locale = customer.locale
    if item in keyboards.BOOKING_ITEMS:
        prompt = await booking_flows.start_booking(unit.session, unit.rt, customer=customer, kind=item)
        _say(unit, user.chat_id, prompt.text, keyboards.booking(prompt))
    elif item == "team":
        await _show_team(unit, user)
    elif item == "person":
        _, result = await tg_flows.press(unit.session, unit.rt, user=user, message_id=None, button="person")
        if result.action == "already_open":
            _say(unit, user.chat_id, ct("person.open", locale))
    else:
        _say(unit, user.chat_id, ct("ask", locale))


async def _engine_button(unit: Unit, user: TgUser, rest: str, source: TgMessage | None) -> str | None:
    message_id, _, button = rest.partition(":")
    customer, result = await tg_flows.press(
        unit.session,
        unit.rt,
        user=user,
        message_id=int(message_id) if message_id.isdigit() else None,
        button=button,
    )
    if source is not None and (button.startswith("rate:") or result.action in ("thanked", "case_opened")):
        bridge.edit(
            unit.session,
            unit.rt,
            chat_id=user.chat_id,
            external_id=source.message_id,
            text="",
            markup_only=True,
        )
    if result.action == "already_open":
        _say(unit, user.chat_id, ct("person.open", customer.locale))
    return ct("feedback.thanks", customer.locale) if result.action == "thanked" else None


async def _booking_button(unit: Unit, user: TgUser, rest: str, source: TgMessage | None) -> str | None:
    draft_id, _, tail = rest.partition(":")
    step, _, value = tail.partition(":")
    customer = await tg_flows.customer_for(unit.session, unit.rt, user=user)
    reply = await booking_flows.answer_booking(
        unit.session,
        unit.rt,
        customer=customer,
        answer=Answer(value=value),
        channel=Channel.TELEGRAM,
        draft_id=int(draft_id) if draft_id.isdigit() else -1,
        step_key=step,
    )
    if reply.stale:
        return reply.notice
    _render_booking(
        unit, user.chat_id, reply, locale=customer.locale, edit_id=source.message_id if source else None
    )
    return None


def _render_booking(
    unit: Unit, chat_id: int, reply: BookingReply, *, locale: str, edit_id: int | None = None
) -> None:
    """Show the next question (editing the pressed message in place), or the outcome."""
    if reply.prompt is not None:
        text = f"{reply.notice}\n\n{reply.prompt.text}" if reply.notice else reply.prompt.text
        markup = keyboards.booking(reply.prompt)
        if edit_id is not None:
            bridge.edit(unit.session, unit.rt, chat_id=chat_id, external_id=edit_id, text=text, markup=markup)
        else:
            _say(unit, chat_id, text, markup)
    elif reply.notice:
        if edit_id is not None:
            bridge.edit(unit.session, unit.rt, chat_id=chat_id, external_id=edit_id, text=reply.notice)
        else:
            _say(unit, chat_id, reply.notice)
