"""Test-side actors: users in private chats and supergroups whose actions become real updates."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from tests.botapi import formatting
from tests.botapi.media import image_size
from tests.botapi.model import JSON, BotState, Chat, Member, SentMessage, Topic, UserInfo, World

if TYPE_CHECKING:
    from tests.botapi.server import BotApiServer

MessageRef = JSON | SentMessage | int


def _text_content(text: str, key: str = "text") -> JSON:
    """Text or caption with the entities a Telegram client would detect."""
    content: JSON = {key: text}
    entities = formatting.detect_entities(text)
    if entities:
        content["entities" if key == "text" else "caption_entities"] = entities
    return content


def _resolve(chat: Chat, ref: MessageRef | None) -> JSON | None:
    """The current stored message for a dict, SentMessage or message_id."""
    if ref is None:
        return None
    if isinstance(ref, SentMessage):
        mid = ref.message_id
    elif isinstance(ref, int):
        mid = ref
    else:
        mid = ref["message_id"]
    msg = chat.messages.get(mid)
    if msg is None:
        raise ValueError(f"message {mid} does not exist (anymore) in chat {chat.id}")
    return msg


def _post(
    world: World,
    chat: Chat,
    sender: UserInfo,
    content: JSON,
    bots: list[BotState],
    *,
    thread_id: int | None = None,
    reply_to: JSON | None = None,
) -> JSON:
    """Create a user's message and queue a message update for each receiving bot."""
    if reply_to is not None and thread_id is None and chat.is_forum:
        thread_id = reply_to.get("message_thread_id")
    if thread_id is not None and thread_id not in chat.topics:
        raise ValueError(f"chat {chat.id} has no topic {thread_id}")
    msg = world.new_message(chat, sender, content, thread_id=thread_id, reply_to=reply_to)
    for bot in bots:
        world.push_update(bot, "message", msg)
    return msg


def _store_media(
    world: World, bots: list[BotState], kind: str, data: bytes, **kwargs: Any
) -> JSON | list[JSON]:
    """Store a user's upload; the same file_id is made valid for every receiving bot."""
    stored = world.store_file(bots[0], kind, data, **kwargs)
    for bot in bots[1:]:
        bot.files[stored.file_id] = stored
        bot.paths[stored.file_path] = stored
    return world.media_json(stored)


def _photo_meta(data: bytes) -> JSON:
    """PhotoSize dimensions from the image header."""
    width, height = image_size(data) or (320, 320)
    return {"width": width, "height": height}


class CallbackQueryHandle:
    """A pressed inline button: the callback_query sent to the bot and the answer it gives."""

    def __init__(self, server: BotApiServer, bot: BotState, query: JSON, update: JSON | None) -> None:
        self.server = server
        self.bot = bot
        self.query = query
        self.update = update

    @property
    def id(self) -> str:
        """callback_query id."""
        return str(self.query["id"])

    @property
    def answer(self) -> JSON | None:
        """The answerCallbackQuery parameters, once answered."""
        return self.bot.callback_answers.get(self.id)

    async def wait_answer(self, timeout: float = 5.0) -> JSON:  # noqa: ASYNC109 - a plain timeout keeps the test API short
        """Wait for the bot's answerCallbackQuery."""
        await self.server.wait_until(lambda: self.answer is not None, timeout=timeout)
        assert self.answer is not None
        return self.answer


class UserClient:
    """A user in a private chat with a bot."""

    def __init__(self, server: BotApiServer, info: UserInfo, bot: BotState) -> None:
        self.server = server
        self.info = info
        self.bot = bot

    @property
    def id(self) -> int:
        """User id (also the private chat id)."""
        return self.info.id

    @property
    def chat(self) -> Chat:
        """The private chat with the bot."""
        return self.server.world.private_chat(self.info)

    async def _send(self, content: JSON, reply_to: MessageRef | None = None) -> JSON:
        """Post into the private chat; writing to the bot also "starts" it."""
        if self.id in self.bot.blocked_by:
            raise RuntimeError(f"user {self.id} blocked the bot; call unblock_bot() first")
        self.bot.started_by.add(self.id)
        msg = _post(
            self.server.world,
            self.chat,
            self.info,
            content,
            [self.bot],
            reply_to=_resolve(self.chat, reply_to),
        )
        await asyncio.sleep(0)
        return msg

    async def send_text(self, text: str, *, reply_to: MessageRef | None = None) -> JSON:
        """Write a text message to the bot."""
        return await self._send(_text_content(text), reply_to)

    async def send_command(self, command: str, args: str = "") -> JSON:
        """Send /command [args] (with its bot_command entity)."""
        command = command if command.startswith("/") else f"/{command}"
        return await self._send(_text_content(f"{command} {args}".strip()))

    async def send_photo(self, data: bytes, caption: str | None = None) -> JSON:
        """Send a photo (PNG/JPEG bytes)."""
        content: JSON = {
            "photo": _store_media(self.server.world, [self.bot], "photo", data, meta=_photo_meta(data))
        }
        if caption:
            content.update(_text_content(caption, "caption"))
        return await self._send(content)

    async def send_document(
        self,
        data: bytes,
        file_name: str = "document.pdf",
        mime_type: str = "application/pdf",
        caption: str | None = None,
    ) -> JSON:
        """Send a file as a document."""
        content: JSON = {
            "document": _store_media(
                self.server.world, [self.bot], "document", data, file_name=file_name, mime_type=mime_type
            )
        }
        if caption:
            content.update(_text_content(caption, "caption"))
        return await self._send(content)

    async def send_voice(self, data: bytes, duration: int = 1, caption: str | None = None) -> JSON:
        """Send a voice note (OGG/Opus on Telegram)."""
        content: JSON = {
            "voice": _store_media(
                self.server.world,
                [self.bot],
                "voice",
                data,
                mime_type="audio/ogg",
                meta={"duration": duration},
            )
        }
        if caption:
            content.update(_text_content(caption, "caption"))
        return await self._send(content)

    async def send_location(self, latitude: float, longitude: float) -> JSON:
        """Share a location."""
        return await self._send({"location": {"latitude": latitude, "longitude": longitude}})

    async def share_contact(self, phone: str, first_name: str | None = None) -> JSON:
        """Share the user's own contact (the "share phone number" keyboard button)."""
        return await self._send(
            {
                "contact": {
                    "phone_number": phone,
                    "first_name": first_name or self.info.first_name,
                    "user_id": self.id,
                }
            }
        )

    async def press(
        self, message: MessageRef, callback_data: str, *, check: bool = True
    ) -> CallbackQueryHandle:
        """Press an inline button; check=False allows data that is not on the keyboard (fuzzing)."""
        chat_id = (
            message.chat_id
            if isinstance(message, SentMessage)
            else (self.id if isinstance(message, int) else message["chat"]["id"])
        )
        chat = self.server.world.chats[chat_id]
        current = _resolve(chat, message)
        assert current is not None
        if check:
            rows = (current.get("reply_markup") or {}).get("inline_keyboard", [])
            datas = [b.get("callback_data") for row in rows for b in row]
            if callback_data not in datas:
                raise ValueError(
                    f"message {current['message_id']} has no button {callback_data!r}; buttons: {datas}"
                )
        query = self.server.world.new_callback_query(self.bot, self.info, dict(current), callback_data)
        update = self.server.world.push_update(self.bot, "callback_query", query)
        await asyncio.sleep(0)
        return CallbackQueryHandle(self.server, self.bot, query, update)

    async def edit(self, message: MessageRef, new_text: str) -> JSON:
        """Edit one of the user's own messages (edited_message update)."""
        msg = _resolve(self.chat, message)
        assert msg is not None
        return await _edit(self.server.world, msg, self.info, new_text, [self.bot])

    def block_bot(self) -> None:
        """Block the bot."""
        self.server.block_bot(self.id, bot=self.bot)

    def unblock_bot(self) -> None:
        """Unblock the bot."""
        self.server.unblock_bot(self.id, bot=self.bot)

    def received(self) -> list[SentMessage]:
        """Messages the bot sent to this user."""
        return self.server.sent(self.id, bot=self.bot)

    async def wait_for_reply(
        self,
        count: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109 - a plain timeout keeps the test API short
    ) -> list[SentMessage]:
        """Wait until the bot has sent this user `count` messages in total."""
        return await self.server.wait_for_sent(self.id, count, timeout=timeout, bot=self.bot)


async def _edit(world: World, msg: JSON, editor: UserInfo, new_text: str, bots: list[BotState]) -> JSON:
    """Apply a user's edit and queue edited_message updates."""
    if msg.get("from", {}).get("id") != editor.id:
        raise ValueError("users can only edit their own messages")
    if "text" not in msg:
        raise ValueError("only text messages can be edited here")
    msg.pop("entities", None)
    msg.update(_text_content(new_text), edit_date=world.now())
    for bot in bots:
        world.push_update(bot, "edited_message", dict(msg))
    await asyncio.sleep(0)
    return msg


class GroupClient:
    """A group or supergroup (optionally a forum) where users and staff write."""

    def __init__(self, server: BotApiServer, bot: BotState, chat: Chat) -> None:
        self.server = server
        self.bot = bot
        self.chat = chat

    @classmethod
    def create(
        cls,
        server: BotApiServer,
        bot: BotState,
        chat_id: int,
        title: str,
        *,
        chat_type: str,
        is_forum: bool,
        bot_rights: dict[str, bool] | None,
        bot_status: str | None,
        username: str | None,
    ) -> GroupClient:
        """Create (or reconfigure) the chat and put the bot in it."""
        chat = server.world.chats.get(chat_id) or Chat(id=chat_id, type=chat_type)
        chat.title, chat.is_forum, chat.username = title, is_forum, username
        server.world.chats[chat_id] = chat
        group = cls(server, bot, chat)
        group.set_bot_rights(bot_rights, status=bot_status)
        return group

    @property
    def chat_id(self) -> int:
        """The (negative) chat id."""
        return self.chat.id

    def set_bot_rights(
        self, rights: dict[str, bool] | None, *, status: str | None = None, bot: BotState | None = None
    ) -> None:
        """Make the bot an administrator with `rights`, a member (None), or set any status."""
        state = bot or self.bot
        self.chat.members[state.id] = Member(
            status or ("administrator" if rights is not None else "member"), dict(rights or {})
        )

    def add_member(
        self, user: Any, status: str = "member", rights: dict[str, bool] | None = None
    ) -> UserInfo:
        """Add a user (UserClient, UserInfo or id) with a status: member, administrator, creator..."""
        info = self._user(user)
        self.chat.members[info.id] = Member(status, dict(rights or {}))
        return info

    def _user(self, user: Any) -> UserInfo:
        """Resolve a user argument to its UserInfo."""
        if isinstance(user, UserClient):
            return user.info
        if isinstance(user, UserInfo):
            return user
        return self.server.world.users[int(user)]

    def _author(self, user: Any) -> UserInfo:
        """The sender; users who are not members yet join as members first."""
        info = self._user(user)
        if info.id not in self.chat.members:
            self.chat.members[info.id] = Member("member")
        return info

    async def _send(
        self, user: Any, content: JSON, thread_id: int | None, reply_to: MessageRef | None
    ) -> JSON:
        """Post into the group; every bot in it receives the message."""
        author = self._author(user)
        msg = _post(
            self.server.world,
            self.chat,
            author,
            content,
            self.server.world.bots_in(self.chat),
            thread_id=thread_id,
            reply_to=_resolve(self.chat, reply_to),
        )
        await asyncio.sleep(0)
        return msg

    async def send_text(
        self, from_user: Any, text: str, *, thread_id: int | None = None, reply_to: MessageRef | None = None
    ) -> JSON:
        """A member writes text, optionally in a topic and/or as a reply."""
        return await self._send(from_user, _text_content(text), thread_id, reply_to)

    async def send_command(
        self, from_user: Any, command: str, args: str = "", *, thread_id: int | None = None
    ) -> JSON:
        """A member sends /command [args]."""
        command = command if command.startswith("/") else f"/{command}"
        return await self._send(from_user, _text_content(f"{command} {args}".strip()), thread_id, None)

    async def send_photo(
        self, from_user: Any, data: bytes, caption: str | None = None, *, thread_id: int | None = None
    ) -> JSON:
        """A member posts a photo."""
        bots = self.server.world.bots_in(self.chat) or [self.bot]
        content: JSON = {
            "photo": _store_media(self.server.world, bots, "photo", data, meta=_photo_meta(data))
        }
        if caption:
            content.update(_text_content(caption, "caption"))
        return await self._send(from_user, content, thread_id, None)

    async def edit(self, from_user: Any, message: MessageRef, new_text: str) -> JSON:
        """A member edits their own message."""
        msg = _resolve(self.chat, message)
        assert msg is not None
        return await _edit(
            self.server.world, msg, self._user(from_user), new_text, self.server.world.bots_in(self.chat)
        )

    async def create_topic(self, from_user: Any, name: str) -> Topic:
        """A member creates a topic; bots receive the forum_topic_created service message."""
        if not self.chat.is_forum:
            raise ValueError("topics need a forum supergroup")
        topic = self.server.world.create_topic(self.chat, self._author(from_user), name)
        for bot in self.server.world.bots_in(self.chat):
            self.server.world.push_update(bot, "message", self.chat.messages[topic.message_thread_id])
        await asyncio.sleep(0)
        return topic

    def topics(self) -> list[Topic]:
        """Topics of this forum."""
        return list(self.chat.topics.values())

    def sent(self, thread_id: int | None = None) -> list[SentMessage]:
        """Messages the bot sent here (optionally one topic)."""
        return self.server.sent(self.chat_id, thread_id, bot=self.bot)

    async def wait_for_sent(
        self,
        count: int = 1,
        *,
        thread_id: int | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109 - a plain timeout keeps the test API short
    ) -> list[SentMessage]:
        """Wait until the bot has sent `count` messages here (optionally in one topic)."""
        return await self.server.wait_for_sent(
            self.chat_id, count, thread_id=thread_id, timeout=timeout, bot=self.bot
        )
