"""Staff handlers (the customers' topics in the staff supergroup): relay, notes, case commands."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from telegram import Message as TgMessage
from telegram import Update
from telegram.ext import ContextTypes

from bot.tg import bridge
from bot.tg import flows as tg_flows
from bot.tg.flows import TopicOutcome
from bot.tg.texts import st
from handlers.telegram.media import attachments_of, store_copies
from handlers.telegram.runner import Unit, current_unit

NOTE_PREFIXES = ("#note", "!")


def _topic_message(update: Update) -> tuple[TgMessage, int, int] | None:
    """The message, its topic thread and its author, if it was written by a person in a topic."""
    msg = update.effective_message
    user = update.effective_user
    if (
        msg is None
        or user is None
        or user.is_bot
        or not msg.is_topic_message
        or msg.message_thread_id is None
    ):
        return None
    return msg, msg.message_thread_id, user.id


async def _notice(unit: Unit, outcome: TopicOutcome | None) -> None:
    if outcome is not None and outcome.notice:
        await bridge.topic_notice(unit.session, unit.rt, group=outcome.group, text=outcome.notice)


def split_note(text: str) -> tuple[str, bool]:
    """Strip an internal-note prefix ("#note ..." or "!..."); returns (text, is_note)."""
    for prefix in NOTE_PREFIXES:
        if text.startswith(prefix):
            return text[len(prefix) :].strip(), True
    return text, False


async def relay(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A staff message in a topic: to the customer, signed "Name · Role" (or an internal note)."""
    found = _topic_message(update)
    if found is None:
        return
    unit = current_unit()
    msg, thread_id, user_id = found
    attachments = attachments_of(msg)
    await store_copies(context.bot, attachments, unit.rt.settings)
    text, internal = split_note(msg.text or msg.caption or "")
    reply_to = msg.reply_to_message.message_id if msg.reply_to_message else None
    outcome = await tg_flows.relay_from_topic(
        unit.session,
        unit.rt,
        chat_id=msg.chat_id,
        thread_id=thread_id,
        telegram_user_id=user_id,
        message_id=msg.message_id,
        text=text,
        attachments=attachments,
        internal=internal,
        reply_to_external=reply_to,
    )
    await _notice(unit, outcome)


async def note(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/note <text>: an internal note (the customer never sees it)."""
    found = _topic_message(update)
    if found is None:
        return
    unit = current_unit()
    msg, thread_id, user_id = found
    text = " ".join(context.args or []).strip()
    if not text:
        bridge.send(
            unit.session,
            unit.rt,
            chat_id=msg.chat_id,
            text=st("usage.note", unit.rt.settings.default_locale),
            reply_to_external=msg.message_id,
        )
        return
    outcome = await tg_flows.relay_from_topic(
        unit.session,
        unit.rt,
        chat_id=msg.chat_id,
        thread_id=thread_id,
        telegram_user_id=user_id,
        message_id=msg.message_id,
        text=text,
        attachments=[],
        internal=True,
    )
    await _notice(unit, outcome)


async def resolve(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/resolve: resolve the open case; the customer gets the rating buttons."""
    await _topic_command(update, tg_flows.resolve_from_topic)


async def invite(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/invite <role>: seat another specialist of that role."""
    await _topic_command(update, tg_flows.invite_from_topic, role=(context.args or [""])[0])


async def transfer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/transfer <username>: hand the open case to another staff member."""
    await _topic_command(update, tg_flows.transfer_from_topic, username=(context.args or [""])[0])


async def _topic_command(update: Update, flow: Callable[..., Awaitable[TopicOutcome]], **args: str) -> None:
    """Run a case command written in a customer's topic and post its notice there."""
    found = _topic_message(update)
    if found is None:
        return
    unit = current_unit()
    msg, thread_id, user_id = found
    outcome = await flow(
        unit.session, unit.rt, chat_id=msg.chat_id, thread_id=thread_id, telegram_user_id=user_id, **args
    )
    await _notice(unit, outcome)


async def edited(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A staff member edited a relayed message: the customer's copy follows."""
    msg = update.edited_message
    user = update.effective_user
    if msg is None or user is None or user.is_bot:
        return
    unit = current_unit()
    text, _ = split_note(msg.text or msg.caption or "")
    await tg_flows.edit_from_chat(
        unit.session, unit.rt, chat_id=msg.chat_id, external_id=msg.message_id, editor_id=user.id, text=text
    )
