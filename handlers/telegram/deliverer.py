"""The outbox Deliverer for Telegram: one row -> one Bot API call, within Telegram's flood limits.

Results map onto the sender's retry rules: 429 -> retry_after (not an attempt, the limiter also
pauses the chat or the whole bot); 403 from a customer -> channel inactive, team told, permanent;
other 4xx -> permanent; 5xx and timeouts -> retry with backoff.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import warnings
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

from telegram import (
    Bot,
    InlineKeyboardMarkup,
    InputFile,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    ReplyParameters,
)
from telegram import (
    Message as TgMessage,
)
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError
from telegram.warnings import PTBDeprecationWarning

from bot import metrics
from bot.conversations import service as conv_service
from bot.conversations.models import Message
from bot.outbox.models import OutboxRow
from bot.outbox.sender import DeliveryResult
from bot.runtime import Runtime
from bot.tg import flows as tg_flows
from bot.tg import service as tg_service
from handlers.telegram.limiter import Limiter, Rule

log = logging.getLogger(__name__)
CHAT_PATIENCE = 1.5  # a chat or group full for longer: the row goes back to the outbox (retry_after)
MAX_WAIT = 10.0  # the bot-wide window is waited for (a pass of 50 rows needs under 2 s of it)
OVERALL_PERIOD = 1.03  # seconds per `overall` window: 3% head room for network jitter
MAX_WIDENING = 1.10  # after 429s the window may widen to 1.13 s ...
CALM_SECONDS = 30.0  # ... and eases back once no 429 came for this long
BURST_PARTS = 10
ACTIVE_TTL = 10.0  # seconds a chat's "customer still reachable" answer is reused
CHAT_SLACK = 1.2  # 1 msg/s per chat plus head room for arrival jitter
GROUP_PERIOD = 61.0
# A group takes 20 messages a minute for all its topics. Rows handed back because their group is
# busy come back one chat period apart (at most a group period ahead), not all together: with
# hundreds of topics waiting, every one had come back each 1.2 s and the sender spent its time
# claiming and recording them (seen: 499 topic rows cycling, the worker at 40% of a core).
GROUP_DEFER_MAX = GROUP_PERIOD
LATE_REF_WAIT = 0.3  # a reply whose target's id is still being recorded waits this long ...
LATE_REF_PATIENCE = 5.0  # ... while the row is younger than this; then it goes without the quote


def retry_seconds(exc: RetryAfter) -> float:
    """RetryAfter.retry_after in seconds (PTB 22 may give int or timedelta)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def reply_markup(data: dict[str, Any] | None) -> Any:
    """A PTB reply markup from its Bot API JSON."""
    if not data:
        return None
    if "inline_keyboard" in data:
        return InlineKeyboardMarkup.de_json(data, None)
    if "keyboard" in data:
        return ReplyKeyboardMarkup.de_json(data, None)
    if data.get("remove_keyboard"):
        return ReplyKeyboardRemove()
    return None


class TelegramDeliverer:
    """Sends outbox rows of the telegram channel through PTB's Bot."""

    def __init__(self, rt: Runtime, bot: Bot, limiter: Limiter) -> None:
        self.rt = rt
        self.bot = bot
        self.limiter = limiter
        self._ready = asyncio.Lock()
        self._initialized = False
        self._blocked_until: dict[str, float] = {}
        self._active: dict[int, tuple[bool, float]] = {}
        # group id -> its topic's thread id. A thread id only changes when Telegram says the topic is
        # gone (see _bad_request), so every mirrored message need not read it from the database.
        self._threads: dict[int, int] = {}
        self._waiting_groups: set[int] = set()
        self._group_promised: dict[int, float] = {}  # group -> the latest slot a handed-back row got
        settings = rt.settings
        self._overall_limit = max(1, int(settings.telegram_overall_per_second))
        # At most a tenth of the second's budget at once: bursts of 30 queue up at Telegram and
        # arrive compressed, which a strict per-second window counts as a flood.
        self._burst = max(1, self._overall_limit // BURST_PARTS)
        self._period = OVERALL_PERIOD  # widened after a 429, eased back when quiet
        self._last_429 = 0.0
        self._chat_period = CHAT_SLACK / max(settings.telegram_chat_per_second, 0.001)
        self._group_limit = max(1, settings.telegram_group_per_minute)

    def rules(self, chat_id: int) -> list[Rule]:
        """The windows a send to this chat counts against (the overall one also evens out bursts)."""
        if self._period > OVERALL_PERIOD and time.monotonic() - self._last_429 > CALM_SECONDS:
            self._period = max(OVERALL_PERIOD, self._period * 0.995)
        rules = [
            Rule("overall", self._overall_limit, self._period),
            Rule("overall:burst", self._burst, self._period * self._burst / self._overall_limit),
            Rule(f"chat:{chat_id}", 1, self._chat_period, hand_back=True),
        ]
        if chat_id < 0:
            rules.append(Rule(f"group:{chat_id}", self._group_limit, GROUP_PERIOD, hand_back=True))
        return rules

    async def _init(self) -> None:
        if self._initialized:
            return
        async with self._ready:
            if not self._initialized:
                await self.bot.initialize()
                self._initialized = True

    async def close(self) -> None:
        """Release the HTTP pool and the limiter."""
        if self._initialized:
            await self.bot.shutdown()
        await self.limiter.close()

    async def deliver(self, row: OutboxRow) -> DeliveryResult:
        """Deliver one row; never raises for Telegram answers."""
        payload = row.payload
        chat_id = int(payload["chat_id"])
        try:
            await self._init()
            if row.kind == "create_topic":
                await self._thread(int(payload["group_id"]), chat_id, str(payload.get("name") or "Customer"))
                return DeliveryResult(ok=True)
            if row.kind == "edit":
                waited = await self._reserve(chat_id)
                return waited or await self._edit(payload, chat_id)
            prepared = await self._prepare(row, payload, chat_id)
            if isinstance(prepared, DeliveryResult):
                return prepared
            # Admission comes last, right before the call: a window records when a send really left.
            waited = await self._reserve(chat_id)
            if waited is not None:
                return waited
            sent = await self._call(payload, prepared)
            after = None
            if row.message_id is not None:
                after = functools.partial(
                    tg_flows.copy_sent,
                    rt=self.rt,
                    message_id=row.message_id,
                    chat_id=chat_id,
                    external_id=sent.message_id,
                    queued_at=row.created_at,
                )
            return DeliveryResult(ok=True, external_id=str(sent.message_id), after=after)
        except RetryAfter as exc:
            return await self._rate_limited(chat_id, retry_seconds(exc), exc)
        except Forbidden as exc:
            return await self._forbidden(chat_id, exc)
        except BadRequest as exc:
            return await self._bad_request(row, chat_id, exc)
        except TelegramError as exc:  # NetworkError (5xx), TimedOut, InvalidToken...: retry with backoff
            return DeliveryResult(ok=False, error=f"{type(exc).__name__}: {exc}")

    async def _reserve(self, chat_id: int) -> DeliveryResult | None:
        """Wait for a slot under every limit, or hand the row back when the wait is long."""
        rules = self.rules(chat_id)
        blocked = max((self._blocked_until.get(r.key, 0.0) for r in rules), default=0.0) - time.monotonic()
        if blocked > 0:
            return DeliveryResult(ok=False, retry_after=blocked, error="waiting out a 429")
        if chat_id < 0:
            # Topics of one group share its limits: one of them waits for the group, the others
            # go back to the outbox at once instead of queueing behind it (and holding the pass).
            if chat_id in self._waiting_groups:
                return self._group_busy(chat_id, self._chat_period)
            self._waiting_groups.add(chat_id)
        try:
            slot = await self.limiter.reserve(rules, max_wait=MAX_WAIT, patience=CHAT_PATIENCE)
        finally:
            self._waiting_groups.discard(chat_id)
        if not slot.granted:
            if chat_id < 0:
                return self._group_busy(chat_id, slot.wait)
            return DeliveryResult(ok=False, retry_after=slot.wait, error="rate limit: deferred")
        # A 429 seen while this send waited means its slot is void: go back to the queue.
        blocked = max((self._blocked_until.get(r.key, 0.0) for r in rules), default=0.0) - time.monotonic()
        if blocked > 0:
            return DeliveryResult(ok=False, retry_after=blocked, error="waiting out a 429")
        return None

    def _group_busy(self, chat_id: int, wait: float) -> DeliveryResult:
        """Hand a topic row back until a slot of its own, one chat period after the last one promised."""
        now = time.monotonic()
        slot = max(now + wait, self._group_promised.get(chat_id, 0.0) + self._chat_period)
        slot = min(slot, now + max(wait, GROUP_DEFER_MAX))
        self._group_promised[chat_id] = slot
        return DeliveryResult(ok=False, retry_after=slot - now, error="group busy")

    async def _prepare(
        self, row: OutboxRow, payload: dict[str, Any], chat_id: int
    ) -> dict[str, Any] | DeliveryResult:
        """Where and how a send goes (chat, topic, reply, keyboard), or why it must not go."""
        thread_id: int | None = payload.get("thread_id")
        reply_to: int | None = payload.get("reply_to_external")
        if chat_id > 0 and not await self._reachable(chat_id):
            return DeliveryResult(ok=False, permanent=True, error="customer blocked the bot")
        if row.message_id is not None and reply_to is None:
            async with self.rt.maker() as session:
                message = await session.get(Message, row.message_id)
                meta = message.meta if message is not None else {}
                replied = meta.get("reply_to")
                late = meta.get("reply_to_ref")
                if message is not None and replied is None and isinstance(late, list) and len(late) == 2:
                    found = await conv_service.message_by_ref(
                        session, channel="telegram", chat_id=str(late[0]), external_id=str(late[1])
                    )
                    if found is None and self._young(row):
                        # The quoted copy was sent a moment ago and its id is being recorded.
                        return DeliveryResult(
                            ok=False, retry_after=LATE_REF_WAIT, error="reply target unknown yet"
                        )
                    replied = found.id if found is not None and found.group_id == message.group_id else None
                if isinstance(replied, int):
                    reply_to = await tg_service.ref_in_chat(session, message_id=replied, chat_id=chat_id)
        if "group_id" in payload:
            thread_id = await self._thread(int(payload["group_id"]), chat_id, None)
            if thread_id is None:
                return DeliveryResult(ok=False, error="the customer's topic does not exist yet")
        common: dict[str, Any] = {"chat_id": chat_id, "message_thread_id": thread_id}
        if reply_to:
            common["reply_parameters"] = ReplyParameters(reply_to, allow_sending_without_reply=True)
        markup = reply_markup(payload.get("markup"))
        if markup is not None:
            common["reply_markup"] = markup
        return common

    def _young(self, row: OutboxRow) -> bool:
        """Queued less than LATE_REF_PATIENCE seconds ago."""
        created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
        return (self.rt.clock.now() - created).total_seconds() < LATE_REF_PATIENCE

    async def _reachable(self, chat_id: int) -> bool:
        """False once the customer behind a private chat blocked the bot (cached for a few seconds)."""
        cached = self._active.get(chat_id)
        if cached is not None and time.monotonic() - cached[1] < ACTIVE_TTL:
            return cached[0]
        async with self.rt.maker() as session:
            identity = await tg_service.identity_by_chat(session, chat_id=chat_id)
        active = identity is None or identity.active
        self._active[chat_id] = (active, time.monotonic())
        if len(self._active) > 10_000:
            self._active.clear()
        return active

    async def _call(self, payload: dict[str, Any], common: dict[str, Any]) -> TgMessage:
        """The Bot API call for a payload's content."""
        text = str(payload.get("text") or "")
        media = payload.get("media")
        if not media:
            return await self.bot.send_message(text=text or "…", **common)
        kind = media.get("type")
        if kind == "location":
            return await self.bot.send_location(
                latitude=float(media["latitude"]), longitude=float(media["longitude"]), **common
            )
        source: Any = media.get("file_id")
        if not source and media.get("path"):
            path = Path(self.rt.settings.media_dir) / str(media["path"])
            source = InputFile(path.read_bytes(), filename=media.get("file_name") or path.name)
        caption = text or None
        if kind == "photo":
            return await self.bot.send_photo(photo=source, caption=caption, **common)
        if kind == "voice":
            return await self.bot.send_voice(voice=source, caption=caption, **common)
        return await self.bot.send_document(document=source, caption=caption, **common)

    async def _edit(self, payload: dict[str, Any], chat_id: int) -> DeliveryResult:
        """editMessageText (or the caption of a media message)."""
        markup = reply_markup(payload.get("markup"))
        message_id = int(payload["external_id"])
        text = str(payload.get("text") or "…")
        try:
            if payload.get("markup_only"):
                await self.bot.edit_message_reply_markup(
                    chat_id=chat_id, message_id=message_id, reply_markup=markup
                )
            elif payload.get("caption"):
                await self.bot.edit_message_caption(
                    chat_id=chat_id, message_id=message_id, caption=text, reply_markup=markup
                )
            else:
                await self.bot.edit_message_text(
                    text=text, chat_id=chat_id, message_id=message_id, reply_markup=markup
                )
        except BadRequest as exc:
            if "not modified" in str(exc).lower():
                return DeliveryResult(ok=True)
            raise
        return DeliveryResult(ok=True)

    async def _thread(self, group_id: int, chat_id: int, name: str | None) -> int | None:
        """The topic's thread id, creating the topic now if it does not exist yet."""
        known = self._threads.get(group_id)
        if known is not None:
            return known
        async with self.rt.maker() as session:
            topic = await tg_service.get_topic(session, group_id=group_id)
        if topic is None:
            return None
        if topic.thread_id is not None:
            return self._remember_thread(group_id, topic.thread_id)
        created = await self.bot.create_forum_topic(chat_id=chat_id, name=(name or topic.name)[:128])
        async with self.rt.transaction() as session:
            await tg_service.set_topic_thread(
                session, group_id=group_id, thread_id=created.message_thread_id, now=self.rt.clock.now()
            )
        return self._remember_thread(group_id, created.message_thread_id)

    def _remember_thread(self, group_id: int, thread_id: int) -> int:
        if len(self._threads) >= 100_000:  # a bound on memory; lookups simply start again
            self._threads.clear()
        self._threads[group_id] = thread_id
        return thread_id

    async def _rate_limited(self, chat_id: int, seconds: float, exc: Exception) -> DeliveryResult:
        """Honour a 429: nothing goes to the chat, nor from the bot at all, before retry_after.

        Telegram does not say which limit a 429 is for. We never send faster than a chat allows, so
        it is almost always the bot-wide one, and a send inside its window only earns another 429:
        the whole bot waits (every process, through the shared limiter), the row goes back to the
        outbox without counting an attempt.
        """
        seconds = max(seconds, 0.5)
        metrics.TELEGRAM_429.inc()
        # Sends arrive with jitter: after a 429, keep a wider margin for a while.
        self._last_429 = time.monotonic()
        self._period = min(OVERALL_PERIOD * MAX_WIDENING, self._period * 1.02)
        until = time.monotonic() + seconds
        for key in (f"chat:{chat_id}", "overall"):
            self._blocked_until[key] = max(self._blocked_until.get(key, 0.0), until)
            await self.limiter.penalize(key, seconds)
        log.info("Telegram 429 for chat %s: the bot waits %.1fs", chat_id, seconds)
        return DeliveryResult(ok=False, retry_after=seconds, error=f"429: {exc}")

    async def _forbidden(self, chat_id: int, exc: Forbidden) -> DeliveryResult:
        """403: a customer blocked the bot (mark the channel, tell the team) or the bot left a chat."""
        if chat_id > 0:
            self._active[chat_id] = (False, time.monotonic())
            async with self.rt.transaction() as session:
                changed = await tg_flows.mark_blocked(session, self.rt, chat_id=chat_id)
            if changed:
                log.info("customer chat %s blocked the bot; channel marked inactive", chat_id)
        return DeliveryResult(ok=False, permanent=True, error=f"403: {exc}")

    async def _bad_request(self, row: OutboxRow, chat_id: int, exc: BadRequest) -> DeliveryResult:
        """400s are permanent, except a deleted topic (re-created on the retry) and topic creation."""
        text = str(exc).lower()
        if "thread not found" in text and "group_id" in row.payload:
            group_id = int(row.payload["group_id"])
            gone = self._threads.pop(group_id, None)
            async with self.rt.transaction() as session:
                # Only the thread we sent to: another sender may have created the new one already.
                await tg_service.clear_topic_thread(session, group_id=group_id, thread_id=gone)
            return DeliveryResult(ok=False, error=f"400: {exc}; topic will be created again")
        if row.kind == "create_topic":
            # Usually missing rights or topics disabled: retry with backoff while an admin fixes it.
            log.warning("cannot create a staff topic: %s (run `butler telegram check`)", exc)
            return DeliveryResult(ok=False, error=f"400: {exc}")
        return DeliveryResult(ok=False, permanent=True, error=f"400: {exc}")
