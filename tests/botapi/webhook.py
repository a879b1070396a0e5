"""Webhook delivery: POST each pending update until the receiver answers 2xx, retrying with backoff."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from tests.botapi.model import JSON, BotState, WebhookConfig, World, update_type_of

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# Scanning the whole backlog on every completion would be quadratic under load; Telegram also only
# looks at the head of the queue.
SCAN_WINDOW = 1000


@dataclass
class DeliveryAttempt:
    """One POST of an update to a webhook."""

    update_id: int
    at: float
    status: int | None
    error: str | None
    duration: float

    @property
    def ok(self) -> bool:
        """Whether the receiver accepted the update."""
        return self.status is not None and 200 <= self.status < 300


def chat_key(update: JSON) -> int | None:
    """The chat an update belongs to; updates of one chat are delivered strictly in order."""
    kind = update_type_of(update)
    body = update.get(kind) if kind else None
    if not isinstance(body, dict):
        return None
    chat = body.get("chat") or (body.get("message") or {}).get("chat") or body.get("from")
    return chat.get("id") if isinstance(chat, dict) and isinstance(chat.get("id"), int) else None


class WebhookSender:
    """Delivers one bot's queue to its webhook: per-chat order, up to max_connections at a time."""

    def __init__(
        self,
        world: World,
        bot: BotState,
        config: WebhookConfig,
        session: aiohttp.ClientSession,
        *,
        retry_base: float,
        retry_max: float,
        timeout: float,
        record: Callable[[DeliveryAttempt], None],
    ) -> None:
        self.world = world
        self.bot = bot
        self.config = config
        self.session = session
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.record = record
        self._wake = asyncio.Event()
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._busy_chats: set[int] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the dispatch loop."""
        self._task = asyncio.create_task(self._run(), name=f"webhook:{self.bot.user.username}")

    def kick(self) -> None:
        """New work may be ready."""
        self._wake.set()

    async def stop(self) -> None:
        """Cancel the loop and every in-flight delivery; undelivered updates stay queued."""
        tasks = [t for t in (self._task, *self._in_flight.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        """Start deliveries whenever a slot and an eligible update are available."""
        while True:
            self._wake.clear()
            self._schedule()
            await self._wake.wait()

    def _schedule(self) -> None:
        """Pick the oldest updates whose chat has nothing in flight."""
        for scanned, (uid, update) in enumerate(self.bot.queue.items()):
            if len(self._in_flight) >= self.config.max_connections or scanned >= SCAN_WINDOW:
                return
            if uid in self._in_flight:
                continue
            key = chat_key(update)
            if key is not None:
                if key in self._busy_chats:
                    continue
                self._busy_chats.add(key)
            self._in_flight[uid] = asyncio.create_task(self._deliver(uid, update, key))

    async def _deliver(self, uid: int, update: JSON, key: int | None) -> None:
        """POST until 2xx; failures are recorded and retried with growing backoff."""
        delay = self.retry_base
        headers = {SECRET_HEADER: self.config.secret_token} if self.config.secret_token else {}
        try:
            while True:
                status, error = await self._post(update, headers)
                if status is not None and 200 <= status < 300:
                    self.bot.queue.pop(uid, None)
                    self.world.emit("delivered", self.bot, ("webhook", [update]))
                    return
                self.bot.last_error_date = self.world.now()
                self.bot.last_error_message = error or f"Wrong response from the webhook: {status}"
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max)
        finally:
            self._in_flight.pop(uid, None)
            if key is not None:
                self._busy_chats.discard(key)
            self._wake.set()

    async def _post(self, update: JSON, headers: dict[str, str]) -> tuple[int | None, str | None]:
        """One attempt; returns (status, error message Telegram would show in getWebhookInfo)."""
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        try:
            async with self.session.post(
                self.config.url, json=update, headers=headers, timeout=self.timeout, allow_redirects=False
            ) as resp:
                await resp.read()
                status = resp.status
                if not 200 <= status < 300:
                    error = f"Wrong response from the webhook: {status} {resp.reason or ''}".rstrip()
        except TimeoutError:
            error = "Connection timed out"
        except aiohttp.ClientConnectorError:
            error = "Connection refused"
        except aiohttp.ClientError as exc:
            error = f"Connection error: {exc.__class__.__name__}"
        uid: Any = update.get("update_id")
        self.record(
            DeliveryAttempt(
                uid if isinstance(uid, int) else -1,
                self.world.monotonic(),
                status,
                error,
                time.monotonic() - started,
            )
        )
        return status, error
