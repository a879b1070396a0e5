"""In-memory Telegram: bots, users, chats, messages, files and update queues, with no HTTP in it."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]

# Update types a bot receives when allowed_updates is empty or was never set (Bot API getUpdates docs).
OPT_IN_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
DEFAULT_TOPIC_COLOR = 7322096
# Every ChatMemberAdministrator right; the ones PTB requires must always be present in the JSON.
ADMIN_RIGHTS = (
    "can_manage_chat",
    "can_delete_messages",
    "can_manage_video_chats",
    "can_restrict_members",
    "can_promote_members",
    "can_change_info",
    "can_invite_users",
    "can_post_stories",
    "can_edit_stories",
    "can_delete_stories",
    "can_pin_messages",
    "can_manage_topics",
)


class ApiError(Exception):
    """A Bot API error answer: error_code, description and optional ResponseParameters."""

    def __init__(self, code: int, description: str, parameters: JSON | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters

    def to_api(self) -> JSON:
        """The JSON body Telegram answers with."""
        body: JSON = {"ok": False, "error_code": self.code, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(message: str) -> ApiError:
    """400 with Telegram's "Bad Request: " prefix."""
    return ApiError(400, f"Bad Request: {message}")


def forbidden(message: str) -> ApiError:
    """403 with Telegram's "Forbidden: " prefix."""
    return ApiError(403, f"Forbidden: {message}")


@dataclass
class UserInfo:
    """A Telegram user or bot account."""

    id: int
    first_name: str
    is_bot: bool = False
    username: str | None = None
    last_name: str | None = None
    language_code: str | None = None

    def to_api(self) -> JSON:
        """The User object."""
        data: JSON = {"id": self.id, "is_bot": self.is_bot, "first_name": self.first_name}
        for key in ("last_name", "username", "language_code"):
            if getattr(self, key):
                data[key] = getattr(self, key)
        return data


@dataclass
class StoredFile:
    """An uploaded file; its bytes are served at /file/bot<token>/<file_path>."""

    file_id: str
    file_unique_id: str
    kind: str
    data: bytes
    file_path: str
    file_name: str | None = None
    mime_type: str | None = None
    meta: JSON = field(default_factory=dict)  # width/height, duration...

    def to_api(self) -> JSON:
        """The File object getFile returns (file_path relative, as Telegram sends it)."""
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": len(self.data),
            "file_path": self.file_path,
        }


@dataclass
class Topic:
    """A forum topic; its id is the message_id of its forum_topic_created service message."""

    message_thread_id: int
    name: str
    icon_color: int = DEFAULT_TOPIC_COLOR
    icon_custom_emoji_id: str | None = None
    is_closed: bool = False

    def to_api(self) -> JSON:
        """The ForumTopic object."""
        data: JSON = {
            "message_thread_id": self.message_thread_id,
            "name": self.name,
            "icon_color": self.icon_color,
        }
        if self.icon_custom_emoji_id:
            data["icon_custom_emoji_id"] = self.icon_custom_emoji_id
        return data


@dataclass
class Member:
    """One chat membership: status plus administrator rights."""

    status: str
    rights: dict[str, bool] = field(default_factory=dict)


@dataclass
class Chat:
    """A private chat, group or supergroup with its messages, topics and members."""

    id: int
    type: str
    title: str | None = None
    username: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    is_forum: bool = False
    members: dict[int, Member] = field(default_factory=dict)
    messages: dict[int, JSON] = field(default_factory=dict)
    topics: dict[int, Topic] = field(default_factory=dict)
    next_message_id: int = 1

    def to_api(self) -> JSON:
        """The short Chat object embedded in messages."""
        data: JSON = {"id": self.id, "type": self.type}
        for key in ("title", "username", "first_name", "last_name"):
            if getattr(self, key):
                data[key] = getattr(self, key)
        if self.is_forum:
            data["is_forum"] = True
        return data

    def full_info(self) -> JSON:
        """The ChatFullInfo object getChat returns (fields PTB requires included)."""
        data = self.to_api()
        data.update(
            accent_color_id=0,
            max_reaction_count=11,
            accepted_gift_types={
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        )
        return data


@dataclass
class SentMessage:
    """One message the bot sent; `message` is live, so edits and deletion show up here."""

    method: str
    chat_id: int
    message_id: int
    thread_id: int | None
    message: JSON
    reply_markup: JSON | None
    params: JSON
    at: float
    deleted: bool = False

    @property
    def text(self) -> str | None:
        """Current plain text (or caption) as the user sees it."""
        return self.message.get("text", self.message.get("caption"))

    @property
    def buttons(self) -> list[str]:
        """callback_data of every inline button, row by row."""
        rows = (self.message.get("reply_markup") or {}).get("inline_keyboard", [])
        return [b["callback_data"] for row in rows for b in row if "callback_data" in b]


@dataclass
class WebhookConfig:
    """What setWebhook stored."""

    url: str
    secret_token: str | None = None
    max_connections: int = 40


@dataclass
class BotState:
    """One bot account and everything Telegram keeps for it."""

    token: str
    user: UserInfo
    queue: dict[int, JSON] = field(default_factory=dict)  # unconfirmed updates by update_id, ascending
    allowed_updates: list[str] = field(default_factory=list)
    webhook: WebhookConfig | None = None
    last_error_date: int | None = None
    last_error_message: str | None = None
    commands: dict[tuple[str, str], list[JSON]] = field(default_factory=dict)
    files: dict[str, StoredFile] = field(default_factory=dict)
    paths: dict[str, StoredFile] = field(default_factory=dict)
    started_by: set[int] = field(default_factory=set)
    blocked_by: set[int] = field(default_factory=set)
    callback_queries: dict[str, JSON] = field(default_factory=dict)
    callback_answers: dict[str, JSON] = field(default_factory=dict)
    sent: dict[int, list[SentMessage]] = field(default_factory=dict)
    poll_generation: int = 0
    new_update: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def id(self) -> int:
        """The bot's user id."""
        return self.user.id

    def wake(self) -> None:
        """Wake every long poll waiting on this bot."""
        self.new_update.set()
        self.new_update = asyncio.Event()

    def wants(self, update_type: str) -> bool:
        """Whether allowed_updates lets this update type be queued."""
        if not self.allowed_updates:
            return update_type not in OPT_IN_UPDATES
        return update_type in self.allowed_updates


def update_type_of(update: JSON) -> str | None:
    """The one optional field of an Update besides update_id."""
    return next((key for key in update if key != "update_id"), None)


class World:
    """The whole in-memory Telegram the server exposes; listeners hear about every change."""

    def __init__(
        self, wall_clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.bots: dict[str, BotState] = {}
        self.users: dict[int, UserInfo] = {}
        self.chats: dict[int, Chat] = {}
        self.wall_clock = wall_clock
        self.monotonic = monotonic
        self.next_update_id = 100_001
        self._file_seq = itertools.count(1)
        self._query_seq = itertools.count(1)
        self.listeners: list[Callable[[str, BotState | None, Any], None]] = []

    def emit(self, event: str, bot: BotState | None, payload: Any) -> None:
        """Tell listeners (the server: waiters, webhook delivery) that something changed."""
        for listener in list(self.listeners):
            listener(event, bot, payload)

    def now(self) -> int:
        """Unix time for `date` fields."""
        return int(self.wall_clock())

    def add_bot(self, token: str, username: str, first_name: str) -> BotState:
        """Register a bot; its id is the number before ':' in the token, as on Telegram."""
        head = token.split(":", 1)[0]
        bot_id = int(head) if head.isdigit() else int(hashlib.sha1(token.encode()).hexdigest()[:8], 16)
        user = UserInfo(id=bot_id, first_name=first_name, is_bot=True, username=username)
        bot = BotState(token=token, user=user)
        self.bots[token] = bot
        self.users[bot_id] = user
        return bot

    def add_user(self, user: UserInfo) -> UserInfo:
        """Register a user (or update their profile)."""
        self.users[user.id] = user
        return user

    def private_chat(self, user: UserInfo) -> Chat:
        """The private chat with a user; chat id equals user id on Telegram."""
        chat = self.chats.get(user.id)
        if chat is None:
            chat = Chat(
                id=user.id,
                type="private",
                first_name=user.first_name,
                last_name=user.last_name,
                username=user.username,
            )
            self.chats[user.id] = chat
        return chat

    def find_chat(self, chat_id: int | str) -> Chat:
        """Chat by id or @username, else 400 chat not found."""
        if isinstance(chat_id, str) and chat_id.startswith("@"):
            chat = next((c for c in self.chats.values() if c.username == chat_id[1:]), None)
        else:
            chat = self.chats.get(int(chat_id))
        if chat is None:
            raise bad_request("chat not found")
        return chat

    def new_message(
        self,
        chat: Chat,
        sender: UserInfo,
        content: JSON,
        *,
        thread_id: int | None = None,
        reply_to: JSON | None = None,
    ) -> JSON:
        """Create and store a message with the next message_id of the chat."""
        mid = chat.next_message_id
        chat.next_message_id += 1
        msg: JSON = {"message_id": mid, "from": sender.to_api(), "date": self.now(), "chat": chat.to_api()}
        if chat.is_forum and thread_id is not None:
            msg["message_thread_id"] = thread_id
            msg["is_topic_message"] = True
            if reply_to is None and thread_id in chat.messages:
                # Telegram marks a plain message in a topic as a reply to the topic's creation message.
                reply_to = chat.messages[thread_id]
        if reply_to is not None:
            msg["reply_to_message"] = {k: v for k, v in reply_to.items() if k != "reply_to_message"}
        msg.update(content)
        chat.messages[mid] = msg
        return msg

    def create_topic(
        self,
        chat: Chat,
        creator: UserInfo,
        name: str,
        icon_color: int = DEFAULT_TOPIC_COLOR,
        icon_custom_emoji_id: str | None = None,
    ) -> Topic:
        """Create a topic and its forum_topic_created service message."""
        created: JSON = {"name": name, "icon_color": icon_color}
        if icon_custom_emoji_id:
            created["icon_custom_emoji_id"] = icon_custom_emoji_id
        thread_id = chat.next_message_id
        msg = self.new_message(chat, creator, {"forum_topic_created": created}, thread_id=thread_id)
        topic = Topic(msg["message_id"], name, icon_color, icon_custom_emoji_id)
        chat.topics[topic.message_thread_id] = topic
        return topic

    def store_file(
        self,
        bot: BotState,
        kind: str,
        data: bytes,
        *,
        file_name: str | None = None,
        mime_type: str | None = None,
        meta: JSON | None = None,
    ) -> StoredFile:
        """Store uploaded bytes for one bot (file_ids are per bot on Telegram)."""
        seq = next(self._file_seq)
        digest = hashlib.sha1(data).hexdigest()
        folder = {"photo": "photos", "voice": "voice", "document": "documents"}.get(kind, kind + "s")
        ext = (
            (file_name or "").rsplit(".", 1)[-1]
            if file_name and "." in file_name
            else {"photo": "jpg", "voice": "oga"}.get(kind, "bin")
        )
        stored = StoredFile(
            file_id=f"{kind[:2].upper()}AC{bot.id}_{seq}_{digest[:16]}",
            file_unique_id=f"AQAD{digest[:12]}",
            kind=kind,
            data=data,
            file_path=f"{folder}/file_{seq}.{ext}",
            file_name=file_name,
            mime_type=mime_type,
            meta=dict(meta or {}),
        )
        bot.files[stored.file_id] = stored
        bot.paths[stored.file_path] = stored
        return stored

    @staticmethod
    def media_json(stored: StoredFile) -> JSON | list[JSON]:
        """The message field value for a stored file (PhotoSize list, Document, Voice...)."""
        base: JSON = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
        }
        if stored.kind == "photo":
            # One size only; real Telegram adds smaller thumbnails, bots usually take photo[-1].
            return [
                {**base, "width": stored.meta.get("width", 320), "height": stored.meta.get("height", 320)}
            ]
        if stored.file_name:
            base["file_name"] = stored.file_name
        if stored.mime_type:
            base["mime_type"] = stored.mime_type
        base.update(stored.meta)
        return base

    def push_update(self, bot: BotState, update_type: str, payload: Any) -> JSON | None:
        """Queue an update for a bot unless its allowed_updates filters the type out."""
        if not bot.wants(update_type):
            return None
        update = {"update_id": self.next_update_id, update_type: payload}
        self.next_update_id += 1
        self._enqueue(bot, update["update_id"], update)
        return update

    def push_raw(self, bot: BotState, update: JSON) -> JSON:
        """Queue any dict as an update (fuzzing); a missing or non-int update_id is assigned."""
        raw = dict(update)
        uid = raw.get("update_id")
        if not isinstance(uid, int) or isinstance(uid, bool):
            uid = self.next_update_id
            raw.setdefault("update_id", uid)
        self.next_update_id = max(self.next_update_id, uid + 1)
        self._enqueue(bot, uid, raw)
        return raw

    def _enqueue(self, bot: BotState, uid: int, update: JSON) -> None:
        """Append to the bot's queue and wake pollers and the webhook sender."""
        bot.queue[uid] = update
        bot.wake()
        self.emit("update", bot, update)

    def new_callback_query(self, bot: BotState, user: UserInfo, message: JSON, data: str) -> JSON:
        """Register a callback query the bot must answer."""
        query_id = f"{bot.id}{next(self._query_seq):08d}"
        chat_instance = str(
            int(hashlib.sha1(f"{bot.id}:{message['chat']['id']}".encode()).hexdigest()[:12], 16)
        )
        query = {
            "id": query_id,
            "from": user.to_api(),
            "message": message,
            "chat_instance": chat_instance,
            "data": data,
        }
        bot.callback_queries[query_id] = query
        return query

    def record_sent(self, bot: BotState, sent: SentMessage) -> None:
        """Log a message the bot sent and tell waiters."""
        bot.sent.setdefault(sent.chat_id, []).append(sent)
        self.emit("sent", bot, sent)

    def bots_in(self, chat: Chat) -> list[BotState]:
        """Bots that are members of a group and so receive its messages."""
        return [
            b
            for b in self.bots.values()
            if (m := chat.members.get(b.id)) is not None
            and m.status in ("member", "administrator", "creator")
        ]

    def member_json(self, chat: Chat, user: UserInfo) -> JSON:
        """The ChatMember object for a user in a chat."""
        member = chat.members.get(user.id)
        if chat.type == "private":
            member = Member("member")
        if member is None:
            return {"status": "left", "user": user.to_api()}
        data: JSON = {"status": member.status, "user": user.to_api()}
        if member.status == "administrator":
            data.update(can_be_edited=False, is_anonymous=False)
            data.update({right: bool(member.rights.get(right, False)) for right in ADMIN_RIGHTS})
        elif member.status == "creator":
            data["is_anonymous"] = False
        elif member.status == "kicked":
            data["until_date"] = 0
        return data
