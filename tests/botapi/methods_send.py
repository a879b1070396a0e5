"""Bot API methods that send, copy, edit and delete messages, and answer callback queries."""

from __future__ import annotations

import mimetypes
from typing import Any

from tests.botapi import formatting
from tests.botapi.api import Ctx, Params, Upload, method
from tests.botapi.media import image_size
from tests.botapi.model import (
    JSON,
    Chat,
    SentMessage,
    StoredFile,
    bad_request,
    forbidden,
)

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
# Message fields copyMessage/forwardMessage carry over; service messages have none of them.
CONTENT_KEYS = (
    "text",
    "entities",
    "photo",
    "document",
    "voice",
    "audio",
    "video",
    "animation",
    "sticker",
    "video_note",
    "location",
    "venue",
    "contact",
    "caption",
    "caption_entities",
)
CHAT_ACTIONS = {
    "typing",
    "upload_photo",
    "record_video",
    "upload_video",
    "record_voice",
    "upload_voice",
    "upload_document",
    "choose_sticker",
    "find_location",
    "record_video_note",
    "upload_video_note",
}
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
QUERY_INVALID = "query is too old and response timeout expired or query ID is invalid"


def check_can_write(ctx: Ctx, chat: Chat) -> None:
    """403s Telegram gives when the bot may not post in a chat."""
    bot = ctx.bot
    if chat.type == "private":
        if chat.id in bot.blocked_by:
            raise forbidden("bot was blocked by the user")
        user = ctx.world.users.get(chat.id)
        if user is not None and user.is_bot:
            raise forbidden("bot can't send messages to bots")
        if chat.id not in bot.started_by:
            raise forbidden("bot can't initiate conversation with a user")
        return
    kind = "supergroup chat" if chat.type == "supergroup" else "group chat"
    member = chat.members.get(bot.id)
    if member is None or member.status == "left":
        raise forbidden(f"bot is not a member of the {kind}")
    if member.status == "kicked":
        raise forbidden(f"bot was kicked from the {kind}")


def target(ctx: Ctx, p: Params) -> tuple[Chat, int | None]:
    """Resolve chat_id and message_thread_id of an outgoing message."""
    chat = ctx.world.find_chat(p.chat_id())
    check_can_write(ctx, chat)
    thread = p.integer("message_thread_id")
    if not chat.is_forum:
        # Outside forums the thread id does not place the message anywhere.
        return chat, None
    if thread is not None:
        topic = chat.topics.get(thread)
        if topic is None:
            raise bad_request("message thread not found")
        if topic.is_closed:
            raise bad_request("TOPIC_CLOSED")
    return chat, thread


def reply_target(ctx: Ctx, p: Params, chat: Chat) -> JSON | None:
    """The message replied to, from reply_parameters or the legacy reply_to_message_id."""
    rp = p.parsed("reply_parameters")
    if rp is None and p.has("reply_to_message_id"):
        rp = {
            "message_id": p.integer("reply_to_message_id"),
            "allow_sending_without_reply": p.flag("allow_sending_without_reply"),
        }
    if rp is None:
        return None
    if not isinstance(rp, dict) or "message_id" not in rp:
        raise bad_request("can't parse reply parameters JSON object")
    if rp.get("chat_id") not in (None, chat.id, str(chat.id)):
        raise bad_request("replies to other chats are not supported by the test server")
    msg = chat.messages.get(int(rp["message_id"]))
    if msg is None:
        if rp.get("allow_sending_without_reply"):
            return None
        raise bad_request("message to be replied not found")
    return msg


def parse_markup(p: Params) -> JSON | None:
    """Validate reply_markup: inline keyboard, reply keyboard, keyboard removal or force reply."""
    markup = p.parsed("reply_markup")
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in markup:
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise bad_request("can't parse inline keyboard markup JSON object")
        for row in rows:
            for button in row:
                _check_inline_button(button)
    elif "keyboard" in markup:
        if not isinstance(markup["keyboard"], list):
            raise bad_request("can't parse reply keyboard markup JSON object")
    elif not ("remove_keyboard" in markup or "force_reply" in markup):
        raise bad_request("can't parse reply keyboard markup JSON object")
    return markup


def _check_inline_button(button: Any) -> None:
    """Inline buttons need text and exactly one action; callback_data is 1-64 bytes."""
    if not isinstance(button, dict) or not button.get("text"):
        raise bad_request("can't parse inline keyboard button: Text must be non-empty")
    actions = [k for k in button if k != "text"]
    if not actions:
        raise bad_request(
            "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
        )
    data = button.get("callback_data")
    if data is not None and not 1 <= len(str(data).encode()) <= 64:
        raise bad_request("BUTTON_DATA_INVALID")


def inline_only(markup: JSON | None) -> JSON | None:
    """The reply_markup a Message shows: only inline keyboards are echoed back."""
    if markup and "inline_keyboard" in markup:
        return {"inline_keyboard": markup["inline_keyboard"]}
    return None


def formatted(p: Params, field: str, limit: int, *, required: bool) -> tuple[str | None, list[JSON]]:
    """Text or caption with parse_mode/entities applied, length-checked after parsing."""
    raw = p.string(field)
    if raw is None:
        if required:
            raise bad_request("message text is empty")
        return None, []
    entities_field = "entities" if field == "text" else "caption_entities"
    text, entities = formatting.parse(raw, p.string("parse_mode"), p.parsed(entities_field))
    if required and not text.strip():
        raise bad_request("message text is empty")
    if len(text) > limit:
        raise bad_request("message is too long" if field == "text" else "message caption is too long")
    return text, entities


def emit(ctx: Ctx, p: Params, name: str, chat: Chat, thread: int | None, content: JSON) -> JSON:
    """Apply flood limits, create the bot's message and log it."""
    reply = reply_target(ctx, p, chat)
    if reply is not None and thread is None and chat.is_forum:
        thread = reply.get("message_thread_id")
    markup = parse_markup(p)
    ctx.limiter.check(ctx.bot.id, chat.id, chat.type, name)
    shown = inline_only(markup)
    if shown:
        content = {**content, "reply_markup": shown}
    if p.flag("protect_content"):
        content = {**content, "has_protected_content": True}
    msg = ctx.world.new_message(chat, ctx.bot.user, content, thread_id=thread, reply_to=reply)
    ctx.world.record_sent(
        ctx.bot,
        SentMessage(
            method=name,
            chat_id=chat.id,
            message_id=msg["message_id"],
            thread_id=msg.get("message_thread_id"),
            message=msg,
            reply_markup=markup,
            params=p.loggable(),
            at=ctx.world.monotonic(),
        ),
    )
    return msg


def _text_content(text: str, entities: list[JSON], key: str = "text") -> JSON:
    """Message fields for a text or caption plus its entities."""
    content: JSON = {key: text}
    if entities:
        content["entities" if key == "text" else "caption_entities"] = entities
    return content


@method("sendMessage")
async def send_message(ctx: Ctx, p: Params) -> JSON:
    """Send a text message."""
    chat, thread = target(ctx, p)
    text, entities = formatted(p, "text", TEXT_LIMIT, required=True)
    return emit(ctx, p, "sendMessage", chat, thread, _text_content(text or "", entities))


def media(ctx: Ctx, p: Params, kind: str) -> StoredFile:
    """The file of a send* call: a new upload or a file_id this bot already knows."""
    value = p.file(kind)
    if value is None:
        raise bad_request(f"there is no {kind} in the request")
    if isinstance(value, Upload):
        meta: JSON = {}
        mime = value.content_type if value.content_type not in (None, "application/octet-stream") else None
        if kind == "photo":
            size = image_size(value.data)
            if size is None:
                raise bad_request("IMAGE_PROCESS_FAILED")
            meta = {"width": size[0], "height": size[1]}
            return ctx.world.store_file(ctx.bot, kind, value.data, meta=meta)
        if kind == "voice":
            meta = {"duration": p.integer("duration") or 0}
            mime = mime or "audio/ogg"
        elif kind == "document":
            mime = mime or (mimetypes.guess_type(value.filename or "")[0]) or "application/octet-stream"
        return ctx.world.store_file(
            ctx.bot,
            kind,
            value.data,
            file_name=value.filename if kind == "document" else None,
            mime_type=mime,
            meta=meta,
        )
    stored = ctx.bot.files.get(value)
    if stored is None:
        raise bad_request("wrong file identifier/HTTP URL specified")
    if stored.kind != kind:
        raise bad_request("type of file mismatch")
    return stored


async def _send_media(ctx: Ctx, p: Params, name: str, kind: str) -> JSON:
    """Shared body of sendPhoto, sendDocument and sendVoice."""
    chat, thread = target(ctx, p)
    caption, entities = formatted(p, "caption", CAPTION_LIMIT, required=False)
    stored = media(ctx, p, kind)
    content: JSON = {kind: ctx.world.media_json(stored)}
    if caption:
        content.update(_text_content(caption, entities, "caption"))
    return emit(ctx, p, name, chat, thread, content)


@method("sendPhoto")
async def send_photo(ctx: Ctx, p: Params) -> JSON:
    """Send a photo (multipart upload or file_id)."""
    return await _send_media(ctx, p, "sendPhoto", "photo")


@method("sendDocument")
async def send_document(ctx: Ctx, p: Params) -> JSON:
    """Send a document (multipart upload or file_id)."""
    return await _send_media(ctx, p, "sendDocument", "document")


@method("sendVoice")
async def send_voice(ctx: Ctx, p: Params) -> JSON:
    """Send a voice note (multipart upload or file_id)."""
    return await _send_media(ctx, p, "sendVoice", "voice")


@method("sendLocation")
async def send_location(ctx: Ctx, p: Params) -> JSON:
    """Send a point on the map."""
    chat, thread = target(ctx, p)
    lat, lon = p.number("latitude", required=True), p.number("longitude", required=True)
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise bad_request("wrong location specified")
    return emit(ctx, p, "sendLocation", chat, thread, {"location": {"latitude": lat, "longitude": lon}})


@method("sendContact")
async def send_contact(ctx: Ctx, p: Params) -> JSON:
    """Send a phone contact."""
    chat, thread = target(ctx, p)
    contact: JSON = {
        "phone_number": p.string("phone_number", required=True),
        "first_name": p.string("first_name", required=True),
    }
    if p.has("last_name"):
        contact["last_name"] = p.string("last_name")
    return emit(ctx, p, "sendContact", chat, thread, {"contact": contact})


def _source(ctx: Ctx, p: Params, what: str) -> JSON:
    """The message named by from_chat_id + message_id."""
    src_chat = ctx.world.find_chat(p.chat_id("from_chat_id"))
    mid = p.integer("message_id", required=True, empty="message identifier is not specified")
    src = src_chat.messages.get(mid or 0)
    if src is None:
        raise bad_request(f"message to {what} not found")
    content = {k: src[k] for k in CONTENT_KEYS if k in src}
    if not content:
        raise bad_request(f"message can't be {'copied' if what == 'copy' else 'forwarded'}")
    return src


@method("copyMessage")
async def copy_message(ctx: Ctx, p: Params) -> JSON:
    """Copy a message without a link to the original; returns a MessageId."""
    src = _source(ctx, p, "copy")
    chat, thread = target(ctx, p)
    content = {k: src[k] for k in CONTENT_KEYS if k in src}
    if p.has("caption") and "text" not in content:
        caption, entities = formatted(p, "caption", CAPTION_LIMIT, required=False)
        content.pop("caption_entities", None)
        content.update(_text_content(caption or "", entities, "caption"))
    msg = emit(ctx, p, "copyMessage", chat, thread, content)
    return {"message_id": msg["message_id"]}


@method("forwardMessage")
async def forward_message(ctx: Ctx, p: Params) -> JSON:
    """Forward a message; the copy carries forward_origin."""
    src = _source(ctx, p, "forward")
    chat, thread = target(ctx, p)
    content = {k: src[k] for k in CONTENT_KEYS if k in src}
    origin = src.get("forward_origin") or {"type": "user", "sender_user": src["from"], "date": src["date"]}
    if "forward_origin" not in src and src["chat"]["type"] == "channel":
        origin = {
            "type": "channel",
            "chat": src["chat"],
            "message_id": src["message_id"],
            "date": src["date"],
        }
    content["forward_origin"] = origin
    return emit(ctx, p, "forwardMessage", chat, thread, content)


def _editable(ctx: Ctx, p: Params) -> tuple[Chat, JSON]:
    """The bot's own message an edit* call targets."""
    if p.has("inline_message_id"):
        # No inline mode here, so no inline message can exist.
        raise bad_request("MESSAGE_ID_INVALID")
    chat = ctx.world.find_chat(p.chat_id())
    mid = p.integer("message_id", required=True, empty="message identifier is not specified")
    msg = chat.messages.get(mid or 0)
    if msg is None:
        raise bad_request("message to edit not found")
    if msg["from"]["id"] != ctx.bot.id:
        raise bad_request("message can't be edited")
    return chat, msg


def _apply_edit(ctx: Ctx, p: Params, chat: Chat, msg: JSON, changes: JSON) -> JSON:
    """Apply an edit in place; an edit that changes nothing is 400 like on Telegram."""
    markup = parse_markup(p)
    if markup is not None and "inline_keyboard" not in markup:
        raise bad_request("inline keyboard expected")
    candidate = {k: v for k, v in msg.items() if k != "edit_date"}
    for key, value in changes.items():
        if value is None:
            candidate.pop(key, None)
        else:
            candidate[key] = value
    # Omitting reply_markup in an edit removes the inline keyboard, as on Telegram.
    candidate.pop("reply_markup", None)
    if markup is not None:
        candidate["reply_markup"] = inline_only(markup)
    if candidate == {k: v for k, v in msg.items() if k != "edit_date"}:
        raise bad_request(NOT_MODIFIED)
    msg.clear()
    msg.update(candidate, edit_date=ctx.world.now())
    ctx.world.emit("edited", ctx.bot, msg)
    return dict(msg)


@method("editMessageText")
async def edit_message_text(ctx: Ctx, p: Params) -> JSON:
    """Edit the text of a bot message (returns the edited Message)."""
    chat, msg = _editable(ctx, p)
    text, entities = formatted(p, "text", TEXT_LIMIT, required=True)
    if "text" not in msg:
        raise bad_request("there is no text in the message to edit")
    return _apply_edit(ctx, p, chat, msg, {"text": text, "entities": entities or None})


@method("editMessageCaption")
async def edit_message_caption(ctx: Ctx, p: Params) -> JSON:
    """Edit the caption of a bot media message."""
    chat, msg = _editable(ctx, p)
    if "text" in msg:
        raise bad_request("there is no caption in the message to edit")
    caption, entities = formatted(p, "caption", CAPTION_LIMIT, required=False)
    return _apply_edit(ctx, p, chat, msg, {"caption": caption or None, "caption_entities": entities or None})


@method("editMessageReplyMarkup")
async def edit_message_reply_markup(ctx: Ctx, p: Params) -> JSON:
    """Replace or remove the inline keyboard of a bot message."""
    chat, msg = _editable(ctx, p)
    return _apply_edit(ctx, p, chat, msg, {})


@method("deleteMessage")
async def delete_message(ctx: Ctx, p: Params) -> bool:
    """Delete a message (others' messages in groups need can_delete_messages)."""
    chat = ctx.world.find_chat(p.chat_id())
    mid = p.integer("message_id", required=True, empty="message identifier is not specified") or 0
    msg = chat.messages.get(mid)
    if msg is None:
        raise bad_request("message to delete not found")
    if chat.type != "private" and msg.get("from", {}).get("id") != ctx.bot.id:
        member = chat.members.get(ctx.bot.id)
        allowed = member is not None and (
            member.status == "creator"
            or (member.status == "administrator" and member.rights.get("can_delete_messages"))
        )
        if not allowed:
            raise bad_request("message can't be deleted")
    del chat.messages[mid]
    for sent in ctx.bot.sent.get(chat.id, []):
        if sent.message_id == mid:
            sent.deleted = True
    ctx.world.emit("deleted", ctx.bot, msg)
    return True


@method("sendChatAction")
async def send_chat_action(ctx: Ctx, p: Params) -> bool:
    """Show "typing..." and friends; no message is created."""
    target(ctx, p)
    if p.string("action") not in CHAT_ACTIONS:
        raise bad_request("wrong parameter action in request")
    return True


@method("answerCallbackQuery")
async def answer_callback_query(ctx: Ctx, p: Params) -> bool:
    """Answer a callback query once; unknown or already answered ids are 400."""
    qid = p.string("callback_query_id", required=True, empty=QUERY_INVALID) or ""
    if qid not in ctx.bot.callback_queries or qid in ctx.bot.callback_answers:
        raise bad_request(QUERY_INVALID)
    text = p.string("text")
    if text and len(text) > 200:
        raise bad_request("MESSAGE_TOO_LONG")
    answer: JSON = {
        "text": text,
        "show_alert": p.flag("show_alert"),
        "url": p.string("url"),
        "cache_time": p.integer("cache_time") or 0,
        "at": ctx.world.monotonic(),
    }
    ctx.bot.callback_answers[qid] = answer
    ctx.world.emit("answer", ctx.bot, (qid, answer))
    return True
