"""The Bot API test server: real HTTP on 127.0.0.1 in front of the in-memory Telegram."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from tests.botapi import methods_admin, methods_send
from tests.botapi.api import METHODS, Ctx, Params, Upload, WithDescription
from tests.botapi.control import add_control_routes
from tests.botapi.limits import Faults, RateLimitConfig, RateLimiter, RateLimitEvent
from tests.botapi.model import JSON, ApiError, BotState, SentMessage, Topic, UserInfo, World, bad_request
from tests.botapi.webhook import DeliveryAttempt, WebhookSender

if TYPE_CHECKING:
    from tests.botapi.client import GroupClient, UserClient

# The method modules register themselves in METHODS when imported; keep the imports referenced.
_METHOD_MODULES = (methods_admin, methods_send)
log = logging.getLogger(__name__)

DEFAULT_TOKEN = "7000000001:TEST-butler-default-bot-token"
MAX_UPLOAD = 50 * 1024 * 1024  # the Bot API's upload limit for bots


@dataclass
class CallRecord:
    """One Bot API request as the server saw it."""

    method: str
    token: str
    params: JSON
    at: float
    wall: float
    status: int | None = None
    description: str | None = None


@dataclass
class DeliveredUpdate:
    """An update handed to the bot, by getUpdates (possibly again, until confirmed) or webhook."""

    via: str
    update: JSON
    at: float

    @property
    def update_id(self) -> Any:
        """The update's update_id."""
        return self.update.get("update_id")


class BotApiServer:
    """Bot API test server; `async with BotApiServer() as server:` then point PTB at `server.url`."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        rate_limits: bool = False,
        limits: RateLimitConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        token: str = DEFAULT_TOKEN,
        username: str = "butler_test_bot",
        first_name: str = "Butler",
        webhook_retry_base: float = 0.2,
        webhook_retry_max: float = 2.0,
        webhook_timeout: float = 5.0,
        max_calls_logged: int = 100_000,
    ) -> None:
        self.host = host
        self.port = port
        self.world = World()
        self.limiter = RateLimiter(limits, enabled=rate_limits, clock=clock)
        self.faults = Faults()
        self.webhook_retry_base = webhook_retry_base
        self.webhook_retry_max = webhook_retry_max
        self.webhook_timeout = webhook_timeout
        self.bot = self.world.add_bot(token, username, first_name)
        self.internal_errors: list[BaseException] = []
        self._calls: deque[CallRecord] = deque(maxlen=max_calls_logged)
        self._delivered: list[DeliveredUpdate] = []
        self._attempts: dict[int, list[DeliveryAttempt]] = {}
        self._senders: dict[str, WebhookSender] = {}
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._stopping: list[asyncio.Task[Any]] = []
        self.world.listeners.append(self._on_event)

    # ---- lifecycle -------------------------------------------------------------------------------

    @property
    def token(self) -> str:
        """Token of the default bot."""
        return self.bot.token

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:40123 (PTB: base_url=f"{url}/bot")."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> BotApiServer:
        """Bind (port 0 picks a free port) and serve."""
        app = web.Application(client_max_size=MAX_UPLOAD + 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_method)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        add_control_routes(app, self)
        # Cancel handlers of disconnected clients so abandoned long polls and hangs end with them.
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        return self

    async def stop(self) -> None:
        """Stop webhook delivery and the HTTP server; wakes any long poll still waiting."""
        for sender in self._senders.values():
            self._stopping.append(asyncio.create_task(sender.stop()))
        self._senders.clear()
        for bot in self.world.bots.values():
            bot.poll_generation += 1
            bot.wake()
        for task in self._stopping:
            with contextlib.suppress(Exception):
                await task
        self._stopping.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> BotApiServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- world setup -----------------------------------------------------------------------------

    def add_bot(self, token: str, username: str, first_name: str) -> BotState:
        """Register another bot token."""
        return self.world.add_bot(token, username, first_name)

    def _bot(self, bot: BotState | str | None) -> BotState:
        """Resolve a bot argument (state, token or None for the default bot)."""
        if bot is None:
            return self.bot
        if isinstance(bot, BotState):
            return bot
        return self.world.bots[bot]

    def user(
        self,
        user_id: int,
        first_name: str = "User",
        *,
        language_code: str | None = "zh-hans",
        username: str | None = None,
        last_name: str | None = None,
        started: bool = False,
        bot: BotState | str | None = None,
    ) -> UserClient:
        """A user in private chat with a bot; the bot may write once the user did (or started=True)."""
        from tests.botapi.client import UserClient

        info = self.world.add_user(
            UserInfo(user_id, first_name, username=username, last_name=last_name, language_code=language_code)
        )
        state = self._bot(bot)
        self.world.private_chat(info)
        if started:
            state.started_by.add(user_id)
        return UserClient(self, info, state)

    def supergroup(
        self,
        chat_id: int,
        title: str,
        *,
        is_forum: bool = True,
        bot_rights: dict[str, bool] | None = None,
        bot_status: str | None = None,
        username: str | None = None,
        bot: BotState | str | None = None,
    ) -> GroupClient:
        """A supergroup with the bot in it: administrator with bot_rights, else a plain member."""
        from tests.botapi.client import GroupClient

        return GroupClient.create(
            self,
            self._bot(bot),
            chat_id,
            title,
            chat_type="supergroup",
            is_forum=is_forum,
            bot_rights=bot_rights,
            bot_status=bot_status,
            username=username,
        )

    def block_bot(self, user_id: int, *, bot: BotState | str | None = None) -> None:
        """The user blocks the bot: sends then get 403 and the bot receives my_chat_member."""
        self._set_blocked(user_id, True, self._bot(bot))

    def unblock_bot(self, user_id: int, *, bot: BotState | str | None = None) -> None:
        """The user unblocks the bot (my_chat_member back to member)."""
        self._set_blocked(user_id, False, self._bot(bot))

    def _set_blocked(self, user_id: int, blocked: bool, state: BotState) -> None:
        """Flip the blocked flag and queue the my_chat_member update Telegram sends."""
        if (user_id in state.blocked_by) == blocked:
            return
        user = self.world.users[user_id]
        chat = self.world.private_chat(user)
        old: JSON
        new: JSON
        if blocked:
            state.blocked_by.add(user_id)
            old, new = {"status": "member"}, {"status": "kicked", "until_date": 0}
        else:
            state.blocked_by.discard(user_id)
            state.started_by.add(user_id)
            old, new = {"status": "kicked", "until_date": 0}, {"status": "member"}
        self.world.push_update(
            state,
            "my_chat_member",
            {
                "chat": chat.to_api(),
                "from": user.to_api(),
                "date": self.world.now(),
                "old_chat_member": {**old, "user": state.user.to_api()},
                "new_chat_member": {**new, "user": state.user.to_api()},
            },
        )

    def push_raw_update(self, update: JSON, *, bot: BotState | str | None = None) -> JSON:
        """Queue any dict as an update (fuzzing); update_id is assigned when missing."""
        return self.world.push_raw(self._bot(bot), update)

    # ---- inspection ------------------------------------------------------------------------------

    def sent(
        self,
        chat_id: int,
        thread_id: int | None = None,
        *,
        bot: BotState | str | None = None,
        include_deleted: bool = False,
    ) -> list[SentMessage]:
        """Messages the bot sent to a chat (optionally one topic), oldest first."""
        return [
            s
            for s in self._bot(bot).sent.get(chat_id, [])
            if (thread_id is None or s.thread_id == thread_id) and (include_deleted or not s.deleted)
        ]

    async def wait_for_sent(
        self,
        chat_id: int,
        until: int | Callable[[SentMessage], bool] = 1,
        *,
        thread_id: int | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109 - a plain timeout keeps the test API short
        bot: BotState | str | None = None,
    ) -> list[SentMessage]:
        """Wait until `until` messages were sent to the chat, or one matches a predicate; returns them."""

        def matching() -> list[SentMessage]:
            msgs = self.sent(chat_id, thread_id, bot=bot)
            return msgs if isinstance(until, int) else [m for m in msgs if until(m)]

        def ready() -> bool:
            found = matching()
            return len(found) >= until if isinstance(until, int) else bool(found)

        try:
            await self.wait_until(ready, timeout=timeout)
        except TimeoutError:
            texts = [s.text for s in self.sent(chat_id, bot=bot)]
            raise TimeoutError(
                f"wait_for_sent({chat_id}, thread {thread_id}) timed out; sent there: {texts}"
            ) from None
        return matching()

    async def wait_until(
        self,
        condition: Callable[[], bool],
        *,
        timeout: float = 5.0,  # noqa: ASYNC109 - a plain timeout keeps the test API short
    ) -> None:
        """Wait until a condition over server state holds; re-checked after every change."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not condition():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError("condition not met in time")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))

    def topics(self, chat_id: int) -> list[Topic]:
        """Forum topics of a chat, in creation order."""
        return list(self.world.chats[chat_id].topics.values())

    def calls(self, method: str | None = None, *, bot: BotState | str | None = None) -> list[CallRecord]:
        """The request log (all bots unless `bot` given), optionally for one method."""
        token = self._bot(bot).token if bot is not None else None
        return [
            c
            for c in self._calls
            if (method is None or c.method.lower() == method.lower()) and (token is None or c.token == token)
        ]

    @property
    def updates_delivered(self) -> list[DeliveredUpdate]:
        """Every hand-over of an update to a bot, in order."""
        return list(self._delivered)

    def delivery_attempts(self, update_id: int | None = None) -> list[DeliveryAttempt]:
        """Webhook POST attempts, for one update or all."""
        if update_id is not None:
            return list(self._attempts.get(update_id, []))
        return [a for attempts in self._attempts.values() for a in attempts]

    def pending_updates(self, *, bot: BotState | str | None = None) -> list[JSON]:
        """Updates not yet confirmed (getUpdates) or accepted (webhook)."""
        return list(self._bot(bot).queue.values())

    def callback_answer(self, query_id: str, *, bot: BotState | str | None = None) -> JSON | None:
        """The answerCallbackQuery a query got, if any."""
        return self._bot(bot).callback_answers.get(query_id)

    @property
    def rate_limit_stats(self) -> dict[str, int]:
        """429 counters: issued, honoured, not_honoured, pending, early_retries."""
        return self.limiter.stats

    @property
    def rate_limit_events(self) -> list[RateLimitEvent]:
        """Every 429 issued."""
        return list(self.limiter.events)

    # ---- events ----------------------------------------------------------------------------------

    def _on_event(self, event: str, bot: BotState | None, payload: Any) -> None:
        """React to world changes: wake waiters, feed webhook senders, log deliveries."""
        self._changed.set()
        self._changed = asyncio.Event()
        if bot is None:
            return
        if event == "delivered":
            via, updates = payload
            now = time.monotonic()
            self._delivered.extend(DeliveredUpdate(via, u, now) for u in updates)
        elif event == "update" and bot.token in self._senders:
            self._senders[bot.token].kick()
        elif event == "webhook":
            old = self._senders.pop(bot.token, None)
            if old is not None:
                self._stopping.append(asyncio.create_task(old.stop()))
            if payload is not None and self._session is not None:
                sender = WebhookSender(
                    self.world,
                    bot,
                    payload,
                    self._session,
                    retry_base=self.webhook_retry_base,
                    retry_max=self.webhook_retry_max,
                    timeout=self.webhook_timeout,
                    record=self._record_attempt,
                )
                self._senders[bot.token] = sender
                sender.start()

    def _record_attempt(self, attempt: DeliveryAttempt) -> None:
        """Keep a webhook attempt and wake waiters."""
        self._attempts.setdefault(attempt.update_id, []).append(attempt)
        self._changed.set()
        self._changed = asyncio.Event()

    # ---- HTTP ------------------------------------------------------------------------------------

    async def _handle_method(self, request: web.Request) -> web.Response:
        """POST|GET /bot<token>/<method>."""
        token, name = request.match_info["token"], request.match_info["method"]
        record = CallRecord(name, token, {}, time.monotonic(), time.time())
        self._calls.append(record)
        try:
            bot = self.world.bots.get(token)
            if bot is None:
                raise ApiError(401, "Unauthorized")
            entry = METHODS.get(name.lower())
            if entry is None:
                raise ApiError(404, "Not Found")
            record.method, handler = entry
            params = await self._read_params(request)
            record.params = params.loggable()
            fault = self.faults.take(record.method)
            if fault is not None and fault.kind == "fail":
                raise Faults.error_for(fault)
            if fault is not None and not fault.execute:
                await asyncio.sleep(fault.seconds)
            result = await handler(Ctx(self.world, bot, self.limiter), params)
            if fault is not None and fault.execute:
                await asyncio.sleep(fault.seconds)
        except asyncio.CancelledError:
            # handler_cancellation: the client went away (its timeout, or PTB stopping a long poll).
            record.description = "client disconnected"
            raise
        except ApiError as err:
            record.status, record.description = err.code, err.description
            return web.json_response(err.to_api(), status=err.code)
        except Exception as exc:  # a bug in the test server itself: make it loud and visible to tests
            log.exception("Bot API test server failed on %s", name)
            self.internal_errors.append(exc)
            record.status, record.description = 500, repr(exc)
            return web.json_response(
                {"ok": False, "error_code": 500, "description": f"Internal Server Error: {exc!r}"}, status=500
            )
        body: JSON = {"ok": True, "result": result}
        if isinstance(result, WithDescription):
            body = {"ok": True, "result": result.result, "description": result.description}
        record.status = 200
        return web.json_response(body)

    async def _read_params(self, request: web.Request) -> Params:
        """Merge query string and body (JSON, form-urlencoded or multipart)."""
        values: dict[str, Any] = dict(request.query)
        uploads: dict[str, Upload] = {}
        if not request.body_exists:
            return Params(values, uploads)
        ctype = request.content_type
        if ctype == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise bad_request("can't parse JSON object") from None
            if not isinstance(body, dict):
                raise bad_request("can't parse JSON object")
            values.update(body)
        elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            try:
                form = await request.post()
            except web.HTTPRequestEntityTooLarge:
                raise ApiError(413, "Request Entity Too Large") from None
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    uploads[key] = Upload(value.filename, value.content_type, value.file.read())
                else:
                    values[key] = value
        return Params(values, uploads)

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        """GET /file/bot<token>/<file_path>: the stored bytes."""
        bot = self.world.bots.get(request.match_info["token"])
        if bot is None:
            return web.json_response(ApiError(401, "Unauthorized").to_api(), status=401)
        stored = bot.paths.get(request.match_info["path"])
        if stored is None:
            return web.json_response(ApiError(404, "Not Found").to_api(), status=404)
        return web.Response(body=stored.data, content_type=stored.mime_type or "application/octet-stream")
