"""Bot API methods for updates, webhooks, files, chats, members, forum topics and commands."""

from __future__ import annotations

import asyncio
import json
import re

from tests.botapi.api import Ctx, Params, WithDescription, method
from tests.botapi.methods_send import check_can_write
from tests.botapi.model import DEFAULT_TOPIC_COLOR, JSON, ApiError, Chat, Topic, WebhookConfig, bad_request

WEBHOOK_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
POLL_CONFLICT = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
)
_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")
_COMMAND_RE = re.compile(r"[a-z0-9_]{1,32}")


@method("getMe")
async def get_me(ctx: Ctx, p: Params) -> JSON:
    """The bot's own User object with the bot-only flags."""
    return {
        **ctx.bot.user.to_api(),
        "can_join_groups": True,
        "can_read_all_group_messages": False,
        "supports_inline_queries": False,
        "can_connect_to_business": False,
        "has_main_web_app": False,
    }


def _set_allowed(ctx: Ctx, p: Params) -> None:
    """Store allowed_updates when given; omitted keeps the previous setting, as documented."""
    allowed = p.parsed("allowed_updates")
    if allowed is not None:
        if not isinstance(allowed, list):
            raise bad_request("can't parse allowed_updates JSON array")
        ctx.bot.allowed_updates = [str(a) for a in allowed]


@method("getUpdates")
async def get_updates(ctx: Ctx, p: Params) -> list[JSON]:
    """Long polling: confirm by offset, then return up to limit updates, waiting up to timeout."""
    bot = ctx.bot
    if bot.webhook is not None:
        raise ApiError(409, WEBHOOK_CONFLICT)
    offset = p.integer("offset") or 0
    # Telegram clamps limit into 1..100 rather than rejecting it.
    limit = p.integer("limit")
    limit = 100 if limit is None else min(max(limit, 1), 100)
    timeout = max(p.number("timeout") or 0.0, 0.0)
    _set_allowed(ctx, p)
    if offset > 0:
        for uid in [u for u in bot.queue if u < offset]:
            del bot.queue[uid]
    elif offset < 0:
        # A negative offset keeps only the last -offset updates and forgets the rest.
        for uid in list(bot.queue)[: max(len(bot.queue) + offset, 0)]:
            del bot.queue[uid]
    # A newer getUpdates ends an older one that is still waiting, like Telegram's 409.
    bot.poll_generation += 1
    generation = bot.poll_generation
    bot.wake()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        batch = [u for uid, u in bot.queue.items() if uid >= offset][:limit]
        remaining = deadline - loop.time()
        if batch or remaining <= 0:
            if batch:
                ctx.world.emit("delivered", bot, ("getUpdates", batch))
            return batch
        event = bot.new_update
        try:
            await asyncio.wait_for(event.wait(), remaining)
        except TimeoutError:
            pass
        if bot.poll_generation != generation:
            raise ApiError(409, POLL_CONFLICT)
        if bot.webhook is not None:
            raise ApiError(409, WEBHOOK_CONFLICT)


@method("setWebhook")
async def set_webhook(ctx: Ctx, p: Params) -> WithDescription:
    """Set (or with an empty url remove) the webhook; plain http and any port are allowed here."""
    bot = ctx.bot
    url = p.string("url") or ""
    if not url:
        return await delete_webhook(ctx, p)
    if not re.match(r"https?://[^/\s]+", url):
        raise bad_request("bad webhook: Failed to resolve host: Name or service not known")
    secret = p.string("secret_token")
    if secret is not None and not _SECRET_RE.fullmatch(secret):
        raise bad_request("secret token contains unallowed characters")
    max_connections = min(max(p.integer("max_connections") or 40, 1), 100)
    _set_allowed(ctx, p)
    if p.flag("drop_pending_updates"):
        bot.queue.clear()
    config = WebhookConfig(url=url, secret_token=secret, max_connections=max_connections)
    if bot.webhook == config:
        return WithDescription(True, "Webhook is already set")
    bot.webhook = config
    bot.last_error_date = bot.last_error_message = None
    bot.wake()
    ctx.world.emit("webhook", bot, config)
    return WithDescription(True, "Webhook was set")


@method("deleteWebhook")
async def delete_webhook(ctx: Ctx, p: Params) -> WithDescription:
    """Remove the webhook so getUpdates works again."""
    bot = ctx.bot
    if p.flag("drop_pending_updates"):
        bot.queue.clear()
    if bot.webhook is None:
        return WithDescription(True, "Webhook is already deleted")
    bot.webhook = None
    ctx.world.emit("webhook", bot, None)
    return WithDescription(True, "Webhook was deleted")


@method("getWebhookInfo")
async def get_webhook_info(ctx: Ctx, p: Params) -> JSON:
    """WebhookInfo: url, pending_update_count, last error."""
    bot = ctx.bot
    info: JSON = {
        "url": bot.webhook.url if bot.webhook else "",
        "has_custom_certificate": False,
        "pending_update_count": len(bot.queue),
    }
    if bot.webhook:
        info.update(max_connections=bot.webhook.max_connections, ip_address="127.0.0.1")
        if bot.allowed_updates:
            info["allowed_updates"] = list(bot.allowed_updates)
    if bot.last_error_date is not None:
        info.update(last_error_date=bot.last_error_date, last_error_message=bot.last_error_message)
    return info


@method("getFile")
async def get_file(ctx: Ctx, p: Params) -> JSON:
    """File info with a file_path for /file/bot<token>/<file_path>."""
    stored = ctx.bot.files.get(p.string("file_id", required=True, empty="invalid file_id") or "")
    if stored is None:
        raise bad_request("invalid file_id")
    return stored.to_api()


def _known_chat(ctx: Ctx, p: Params) -> Chat:
    """A chat the bot can see: private chats of users who started it, groups it is in."""
    chat = ctx.world.find_chat(p.chat_id())
    if chat.type == "private":
        if chat.id not in ctx.bot.started_by and chat.id not in ctx.bot.blocked_by:
            raise bad_request("chat not found")
    elif chat.members.get(ctx.bot.id) is None:
        raise bad_request("chat not found")
    return chat


@method("getChat")
async def get_chat(ctx: Ctx, p: Params) -> JSON:
    """ChatFullInfo (type, is_forum, title...)."""
    return _known_chat(ctx, p).full_info()


@method("getChatMember")
async def get_chat_member(ctx: Ctx, p: Params) -> JSON:
    """ChatMember of a user, including the bot's own administrator rights."""
    chat = _known_chat(ctx, p)
    user = ctx.world.users.get(p.integer("user_id", required=True) or 0)
    if user is None:
        raise bad_request("user not found")
    return ctx.world.member_json(chat, user)


@method("getChatAdministrators")
async def get_chat_administrators(ctx: Ctx, p: Params) -> list[JSON]:
    """Creator and administrators of a group."""
    chat = _known_chat(ctx, p)
    if chat.type == "private":
        raise bad_request("there are no administrators in the private chat")
    return [
        ctx.world.member_json(chat, ctx.world.users[uid])
        for uid, m in chat.members.items()
        if m.status in ("creator", "administrator") and uid in ctx.world.users
    ]


@method("getChatMemberCount")
async def get_chat_member_count(ctx: Ctx, p: Params) -> int:
    """Number of members (present ones only)."""
    chat = _known_chat(ctx, p)
    if chat.type == "private":
        return 2
    return sum(1 for m in chat.members.values() if m.status not in ("left", "kicked"))


def _forum(ctx: Ctx, p: Params, action: str) -> Chat:
    """A forum supergroup where the bot may manage topics, else the 400 Telegram gives."""
    chat = ctx.world.find_chat(p.chat_id())
    check_can_write(ctx, chat)
    if chat.type != "supergroup" or not chat.is_forum:
        raise bad_request("the chat is not a forum")
    member = chat.members.get(ctx.bot.id)
    if member is None or not (
        member.status == "creator"
        or (member.status == "administrator" and member.rights.get("can_manage_topics"))
    ):
        raise bad_request(f"not enough rights to {action} a topic")
    return chat


def _topic(chat: Chat, p: Params) -> Topic:
    """The topic named by message_thread_id."""
    topic = chat.topics.get(p.integer("message_thread_id", required=True) or 0)
    if topic is None:
        raise bad_request("message thread not found")
    return topic


@method("createForumTopic")
async def create_forum_topic(ctx: Ctx, p: Params) -> JSON:
    """Create a topic; needs a forum and an administrator bot with can_manage_topics."""
    chat = _forum(ctx, p, "create")
    name = p.string("name") or ""
    if not 1 <= len(name) <= 128:
        raise bad_request("TOPIC_TITLE_EMPTY" if not name else "TOPIC_TITLE_INVALID")
    topic = ctx.world.create_topic(
        chat,
        ctx.bot.user,
        name,
        p.integer("icon_color") or DEFAULT_TOPIC_COLOR,
        p.string("icon_custom_emoji_id"),
    )
    ctx.world.emit("topic", ctx.bot, (chat.id, topic))
    return topic.to_api()


@method("editForumTopic")
async def edit_forum_topic(ctx: Ctx, p: Params) -> bool:
    """Rename a topic or change its icon."""
    topic = _topic(_forum(ctx, p, "edit"), p)
    if p.has("name"):
        topic.name = p.string("name") or topic.name
    if p.has("icon_custom_emoji_id"):
        topic.icon_custom_emoji_id = p.string("icon_custom_emoji_id")
    return True


@method("closeForumTopic")
async def close_forum_topic(ctx: Ctx, p: Params) -> bool:
    """Close a topic; sending into it then fails with TOPIC_CLOSED."""
    topic = _topic(_forum(ctx, p, "close"), p)
    if topic.is_closed:
        raise bad_request("TOPIC_NOT_MODIFIED")
    topic.is_closed = True
    return True


@method("reopenForumTopic")
async def reopen_forum_topic(ctx: Ctx, p: Params) -> bool:
    """Reopen a closed topic."""
    topic = _topic(_forum(ctx, p, "reopen"), p)
    if not topic.is_closed:
        raise bad_request("TOPIC_NOT_MODIFIED")
    topic.is_closed = False
    return True


@method("deleteForumTopic")
async def delete_forum_topic(ctx: Ctx, p: Params) -> bool:
    """Delete a topic and every message in it."""
    chat = _forum(ctx, p, "delete")
    topic = _topic(chat, p)
    del chat.topics[topic.message_thread_id]
    for mid in [
        m for m, msg in chat.messages.items() if msg.get("message_thread_id") == topic.message_thread_id
    ]:
        del chat.messages[mid]
    return True


def _commands_key(p: Params) -> tuple[str, str]:
    """Commands are stored per (scope, language_code)."""
    scope = p.parsed("scope") or {"type": "default"}
    return json.dumps(scope, sort_keys=True), p.string("language_code") or ""


@method("setMyCommands")
async def set_my_commands(ctx: Ctx, p: Params) -> bool:
    """Store the command list for a scope and language."""
    commands = p.parsed("commands")
    if not isinstance(commands, list) or len(commands) > 100:
        raise bad_request("can't parse commands JSON array")
    for cmd in commands:
        if not isinstance(cmd, dict) or not _COMMAND_RE.fullmatch(str(cmd.get("command", ""))):
            raise bad_request("BOT_COMMAND_INVALID")
        if not 1 <= len(str(cmd.get("description", ""))) <= 256:
            raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
    ctx.bot.commands[_commands_key(p)] = [
        {"command": c["command"], "description": c["description"]} for c in commands
    ]
    return True


@method("getMyCommands")
async def get_my_commands(ctx: Ctx, p: Params) -> list[JSON]:
    """The command list for exactly this scope and language (empty if unset)."""
    return list(ctx.bot.commands.get(_commands_key(p), []))


@method("deleteMyCommands")
async def delete_my_commands(ctx: Ctx, p: Params) -> bool:
    """Forget the command list for a scope and language."""
    ctx.bot.commands.pop(_commands_key(p), None)
    return True
