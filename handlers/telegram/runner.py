"""One update = one transaction: PTB's handlers run inside it, and it commits before Telegram hears 200.

The update_id is claimed in the same transaction, so a redelivered update is a no-op; a failure
before commit rolls everything back and is re-raised (the webhook answers 5xx, the poller retries),
until `max_attempts` failures give the update up with an apology. Domain refusals roll back too,
then record the update and answer politely. Callback answers wait until after the commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import warnings
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import SQLAlchemyError, StatementError
from sqlalchemy.ext.asyncio import AsyncSession
from telegram import Update
from telegram.error import BadRequest, Conflict, Forbidden, InvalidToken, TelegramError
from telegram.ext import Application, ContextTypes
from telegram.warnings import PTBUserWarning

from bot.conversations import service as conv_service
from bot.errors import DomainError
from bot.runtime import Runtime
from bot.teams import service as teams_service
from bot.teams.enums import Channel
from bot.tg import bridge
from bot.tg import service as tg_service
from bot.tg.texts import st
from handlers.telegram.texts import ct, size_text

log = logging.getLogger(__name__)
ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]


@dataclass
class Unit:
    """The transaction an update's handlers share, and what to do once it committed."""

    rt: Runtime
    session: AsyncSession
    after_commit: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)
    error: BaseException | None = None
    handled: bool = False


_UNIT: ContextVar[Unit | None] = ContextVar("telegram_unit", default=None)
# A shared transaction's prefetch key per update: id, kind, private sender, its message's receipt key.
_Key = tuple[int, str, int | None, tuple[str, str, str] | None]


def current_unit() -> Unit:
    """The unit of the update being handled (handlers only run inside one)."""
    unit = _UNIT.get()
    if unit is None:
        raise RuntimeError("Telegram handler called outside UpdateRunner.process")
    unit.handled = True
    return unit


async def record_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """PTB error handler: keep the handler's exception so the runner can roll back and re-raise."""
    unit = _UNIT.get()
    if unit is not None and unit.error is None:
        unit.error = context.error
    elif unit is None:
        log.error("Telegram handler failed outside a unit", exc_info=context.error)


def malformed(data: dict[str, Any], kind: str) -> str | None:
    """What is missing from an update the handlers rely on (None: fine or of a kind we ignore)."""
    body = data.get(kind)
    if kind in ("message", "edited_message", "channel_post", "edited_channel_post"):
        if not isinstance(body, dict) or not isinstance(body.get("message_id"), int):
            return "no message_id"
        chat = body.get("chat")
        if not isinstance(chat, dict) or not isinstance(chat.get("id"), int) or "type" not in chat:
            return "no chat"
    elif kind == "callback_query":
        if not isinstance(body, dict) or "id" not in body or not isinstance(body.get("from"), dict):
            return "no query id or sender"
    elif kind == "my_chat_member":
        if not isinstance(body, dict) or not isinstance(body.get("chat"), dict):
            return "no chat"
    return None


def shape(data: Any) -> str:
    """What an update looks like, for logs: its type and top-level field names, never its values."""
    if isinstance(data, dict):
        return f"object with fields {', '.join(sorted(str(k) for k in data)[:8])}"
    return type(data).__name__


def hide_content(exc: BaseException) -> None:
    """Keep SQL parameters (message texts, names, phones) out of a logged database error."""
    if isinstance(exc, StatementError):
        exc.hide_parameters = True


def transient(exc: BaseException) -> bool:
    """Worth retrying: network, Telegram 5xx/timeouts, the database. Bugs and 4xx fail the same way again."""
    if isinstance(exc, (BadRequest, Forbidden, InvalidToken)):
        return False
    return isinstance(exc, (TelegramError, OSError, TimeoutError, SQLAlchemyError))


class UpdateRunner:
    """Runs raw updates (from the webhook or the poller) through the PTB application."""

    def __init__(self, rt: Runtime, app: Application[Any, Any, Any, Any, Any, Any], *, max_attempts: int = 5):
        self.rt = rt
        self.app = app
        self.max_attempts = max_attempts

    async def process(self, data: Any) -> str:
        """Handle one update; returns processed | duplicate | ignored | refused | failed, or raises."""
        update_id = data.get("update_id") if isinstance(data, dict) else None
        # Telegram's ids are positive and fit a BIGINT; anything else cannot be claimed (or retried).
        if not isinstance(update_id, int) or isinstance(update_id, bool) or not 0 <= update_id < 2**63:
            log.warning("ignoring an update without a valid update_id (%s)", shape(data))
            return "ignored"
        kind = next((k for k in data if k != "update_id"), "unknown")
        try:
            problem = malformed(data, kind)
            update = Update.de_json(data, self.app.bot)
        except Exception as exc:  # wrong types PTB cannot read
            problem = f"unreadable: {type(exc).__name__}"  # its message may quote the content
        if problem:  # retrying will not help: record it as seen and move on
            log.warning("ignoring malformed update %s (%s): %s", update_id, kind, problem)
            await self._claim_only(update_id, kind)
            return "ignored"
        try:
            outcome, after = await self._run(update, update_id, kind)
        except DomainError as exc:
            await self._refuse(update, update_id, kind, exc)
            return "refused"
        except Exception as exc:
            if not await self._failed(update_id, kind, exc, final=not transient(exc)):
                raise
            await self._apologize(update, update_id)
            return "failed"
        for callback in after:
            try:
                await callback()
            except TelegramError as exc:  # e.g. a callback query answered too late
                log.info("after-commit call for update %s failed: %s", update_id, exc)
        return outcome

    async def _run(
        self, update: Update, update_id: int, kind: str
    ) -> tuple[str, list[Callable[[], Awaitable[Any]]]]:
        message = update.message
        private = message is not None and message.chat.type == "private"
        sender = message.from_user if message is not None and private else None
        # A customer's message (not a command): its receipt goes with the claim (see claim_update).
        receipt = None
        if message is not None and private and not (message.text or "").startswith("/"):
            receipt = (Channel.TELEGRAM.value, str(message.chat.id), str(message.message_id))

        async def work(session: AsyncSession) -> Unit | None:
            if not await tg_service.claim_update(
                session, update_id=update_id, kind=kind, now=self.rt.clock.now(), receipt=receipt
            ):
                return None
            unit = Unit(self.rt, session)
            token = _UNIT.set(unit)
            try:
                await self.app.process_update(update)
            finally:
                _UNIT.reset(token)
            if unit.error is not None:
                raise unit.error
            return unit

        key = (update_id, kind, sender.id if sender is not None else None, receipt)
        unit = await self.rt.unit_of_work(work, prefetch=(self._prefetch, key))
        if unit is None:
            return "duplicate", []
        if not unit.handled:
            log.info("update %s (%s) had no handler; ignored", update_id, kind)
        return "processed", unit.after_commit

    async def _prefetch(self, session: AsyncSession, keys: list[_Key]) -> None:
        """A shared transaction's updates: their claims and their messages' receipts in one INSERT
        each, their senders in one query."""
        now = self.rt.clock.now()
        await tg_service.claim_updates(session, [(uid, kind) for uid, kind, _, _ in keys], now=now)
        receipts = [receipt for _, _, _, receipt in keys if receipt is not None]
        if receipts:
            await conv_service.record_receipts(session, receipts, now=now)
        senders = [str(user_id) for _, _, user_id, _ in keys if user_id is not None]
        if len(senders) > 1:
            await teams_service.prefetch_identities(session, channel=Channel.TELEGRAM, external_ids=senders)

    async def _claim_only(self, update_id: int, kind: str) -> None:
        async with self.rt.transaction() as session:
            await tg_service.claim_update(session, update_id=update_id, kind=kind, now=self.rt.clock.now())

    async def _failed(self, update_id: int, kind: str, exc: Exception, *, final: bool) -> bool:
        """Count the failure; True once the update is given up (at once when retrying cannot help)."""
        hide_content(exc)
        log.error(
            "update %s (%s) failed before commit: %s", update_id, kind, type(exc).__name__, exc_info=exc
        )
        async with self.rt.transaction() as session:
            return await tg_service.note_failure(
                session,
                update_id=update_id,
                kind=kind,
                error=f"{type(exc).__name__}: {exc}",
                now=self.rt.clock.now(),
                max_attempts=1 if final else self.max_attempts,
            )

    async def _refuse(self, update: Update, update_id: int, kind: str, exc: DomainError) -> None:
        """Nothing of the update is kept but its receipt; the sender hears why, politely."""
        log.info("update %s (%s) refused: %s", update_id, kind, exc.code)
        message = update.effective_message
        chat = update.effective_chat
        async with self.rt.transaction() as session:
            if not await tg_service.claim_update(
                session, update_id=update_id, kind=kind, now=self.rt.clock.now()
            ):
                return
            if chat is None:
                return
            if chat.type == "private":
                locale = await self._locale(session, chat.id, update)
                text = self._refusal_text(exc, locale)
                if update.callback_query is not None:
                    query = update.callback_query
                    with contextlib.suppress(TelegramError):
                        await query.answer(text[:200], show_alert=True)
                    return
                bridge.send(session, self.rt, chat_id=chat.id, text=text)
            elif chat.id == self.rt.settings.telegram_staff_chat_id and message is not None:
                reply = (
                    exc.message
                    if exc.code == "staff.unlinked"
                    else st("refused", self.rt.settings.default_locale, reason=exc.message)
                )
                bridge.send(
                    session,
                    self.rt,
                    chat_id=chat.id,
                    text=reply,
                    reply_to_external=message.message_id,
                )

    def _refusal_text(self, exc: DomainError, locale: str) -> str:
        """A refusal in the customer's language."""
        if exc.code == "media.too_large":
            return ct("error.media.too_large", locale, limit=size_text(self.rt.settings.media_max_bytes))
        if exc.code == "message.too_long":
            return ct("error.message.too_long", locale, limit=self.rt.settings.max_message_chars)
        if exc.code in ("message.empty", "phone.invalid"):
            return ct(f"error.{exc.code}", locale)
        return ct("error.generic", locale, reason=exc.message)

    async def _locale(self, session: AsyncSession, chat_id: int, update: Update) -> str:
        """The customer's language, else the Telegram client's."""
        from bot.i18n import normalize_locale
        from bot.teams.models import Customer

        identity = await tg_service.identity_by_chat(session, chat_id=chat_id)
        if identity is not None:
            customer = await session.get(Customer, identity.customer_id)
            if customer is not None:
                return customer.locale
        user = update.effective_user
        return normalize_locale(user.language_code if user else None, self.rt.settings.default_locale)

    async def _apologize(self, update: Update, update_id: int) -> None:
        """After the last failed attempt: tell a private chat that it did not work."""
        chat = update.effective_chat
        if chat is None or chat.type != "private":
            return
        try:
            async with self.rt.transaction() as session:
                locale = await self._locale(session, chat.id, update)
                bridge.send(session, self.rt, chat_id=chat.id, text=ct("error.failed", locale))
        except Exception:
            log.exception("could not apologize for update %s", update_id)

    async def poll(self, stop: asyncio.Event, *, long_poll: int = 25) -> None:
        """Long-poll getUpdates; an update is confirmed (offset) only after it was committed."""
        offset: int | None = None
        delay = 1.0
        while not stop.is_set():
            try:
                batch = await self._get_updates(stop, offset, long_poll)
                delay = 1.0
            except Conflict as exc:
                log.error("getUpdates conflict (%s): another poller or a webhook is active", exc)
                await nap(stop, 5.0)
                continue
            except TelegramError as exc:
                log.warning("getUpdates failed (%s); retrying in %.0fs", exc, delay)
                await nap(stop, delay)
                delay = min(delay * 2, 30.0)
                continue
            confirmed = offset
            for data in batch or []:
                if stop.is_set():
                    return
                await self._process_until_done(data, stop)
                if isinstance(data, dict) and isinstance(data.get("update_id"), int):
                    offset = data["update_id"] + 1
            if batch and offset == confirmed:
                await nap(stop, 1.0)  # nothing confirmable (no integer update_id): do not spin

    async def _get_updates(self, stop: asyncio.Event, offset: int | None, long_poll: int) -> list[Any]:
        """One getUpdates as raw JSON (a malformed update must not break the batch); [] on stop."""

        async def fetch() -> Any:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", PTBUserWarning)  # raw JSON is the point here
                return await self.app.bot.do_api_request(
                    "getUpdates",
                    api_kwargs={"offset": offset, "timeout": long_poll, "allowed_updates": ALLOWED_UPDATES},
                    read_timeout=long_poll + 10,
                )

        call = asyncio.ensure_future(fetch())
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({call, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not call.done():
            call.cancel()
            with contextlib.suppress(BaseException):
                await call
            return []
        result = call.result()
        return result if isinstance(result, list) else []

    async def _process_until_done(self, data: Any, stop: asyncio.Event) -> None:
        """Retry one update (with backoff) until it is committed, refused or given up."""
        delay = 0.5
        while not stop.is_set():
            try:
                await self.process(data)
                return
            except Exception:
                await nap(stop, delay)
                delay = min(delay * 2, 30.0)


async def nap(stop: asyncio.Event, seconds: float) -> None:
    """Sleep for `seconds`, waking early when stop is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
