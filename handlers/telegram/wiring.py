"""Puts the Telegram channel into an app: bridge, deliverer, webhook route, and the bot's worker."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from collections.abc import Callable, Coroutine
from datetime import timedelta

from fastapi import FastAPI
from telegram import BotCommand
from telegram.error import TelegramError

from bot.runtime import Runtime
from bot.settings import Settings
from bot.tg import service as tg_service
from bot.tg.bridge import TelegramBridge
from handlers.telegram.application import TelegramApp, build_application, build_sender_bot
from handlers.telegram.deliverer import TelegramDeliverer
from handlers.telegram.limiter import make_limiter
from handlers.telegram.runner import ALLOWED_UPDATES, UpdateRunner, nap
from handlers.telegram.webhook import WEBHOOK_PATH
from handlers.telegram.webhook import router as webhook_router

log = logging.getLogger(__name__)
Worker = Callable[[Runtime, asyncio.Event], Coroutine[None, None, None]]
RECEIPTS_KEPT = timedelta(days=7)

COMMANDS = {
    "en": [
        ("start", "Start and see your butler team"),
        ("menu", "Services"),
        ("team", "My butler team"),
        ("vehicle", "Register my car"),
        ("phone", "Share my phone number"),
        ("language", "中文 / English"),
        ("cancel", "Cancel a booking in progress"),
        ("help", "Help"),
    ],
    "zh": [
        ("start", "开始并查看我的管家团队"),
        ("menu", "服务菜单"),
        ("team", "我的管家团队"),
        ("vehicle", "登记车辆"),
        ("phone", "留下手机号"),
        ("language", "中文 / English"),
        ("cancel", "取消正在进行的预约"),
        ("help", "帮助"),
    ],
}


def telegram_mode(settings: Settings) -> str:
    """polling or webhook: `auto` means webhook when a public URL is configured."""
    mode = settings.telegram_mode.strip().lower()
    if mode not in ("auto", "polling", "webhook"):
        raise ValueError("BUTLER_TELEGRAM_MODE must be auto, polling or webhook")
    if mode == "auto":
        return "webhook" if settings.public_url else "polling"
    return mode


def webhook_secret(settings: Settings) -> str:
    """The configured secret, else one derived from BUTLER_SECRET_KEY (same in every process)."""
    if settings.telegram_webhook_secret:
        return settings.telegram_webhook_secret
    return hmac.new(settings.secret_key.encode(), b"telegram-webhook", hashlib.sha256).hexdigest()[:48]


class TelegramChannel:
    """The Telegram side of one process: PTB application, update runner and deliverer."""

    def __init__(self, rt: Runtime) -> None:
        settings = rt.settings
        self.rt = rt
        self.mode = telegram_mode(settings)
        self.webhook_secret = webhook_secret(settings)
        self.app: TelegramApp = build_application(settings)
        self.runner = UpdateRunner(rt, self.app)
        self.deliverer = TelegramDeliverer(rt, build_sender_bot(settings), make_limiter(settings.redis_url))
        self._lock = asyncio.Lock()
        self.ready = False

    async def ensure_ready(self) -> None:
        """Initialize the application once (getMe); the webhook route calls this too."""
        if self.ready:
            return
        async with self._lock:
            if not self.ready:
                await self.app.initialize()
                self.rt.extras["telegram_bot_username"] = self.app.bot.username
                self.ready = True

    async def start(self, stop: asyncio.Event) -> bool:
        """Initialize, retrying while Telegram is unreachable; False if stopped first."""
        delay = 2.0
        while not stop.is_set():
            try:
                await self.ensure_ready()
                return True
            except TelegramError as exc:
                log.warning("Telegram is not reachable yet (%s); retrying in %.0fs", exc, delay)
                await nap(stop, delay)
                delay = min(delay * 2, 60.0)
        return False

    async def configure(self) -> None:
        """Commands in both languages, the webhook (or none, for polling), and old receipts pruned."""
        bot = self.app.bot
        with contextlib.suppress(TelegramError):
            await bot.set_my_commands([BotCommand(c, d) for c, d in COMMANDS["en"]])
            await bot.set_my_commands([BotCommand(c, d) for c, d in COMMANDS["zh"]], language_code="zh")
        if self.mode == "polling":
            await bot.delete_webhook()
        elif self.rt.settings.public_url:
            url = f"{self.rt.settings.public_url.rstrip('/')}{WEBHOOK_PATH}"
            await bot.set_webhook(url, secret_token=self.webhook_secret, allowed_updates=ALLOWED_UPDATES)
            log.info("Telegram webhook set to %s", url)
        async with self.rt.transaction() as session:
            await tg_service.prune_updates(session, before=self.rt.clock.now() - RECEIPTS_KEPT)

    async def close(self) -> None:
        """Shut PTB down and close the deliverer's connections."""
        with contextlib.suppress(Exception):
            if self.ready:
                self.ready = False
                await self.app.shutdown()
        with contextlib.suppress(Exception):
            await self.deliverer.close()


def install_telegram(app: FastAPI, rt: Runtime) -> list[Worker]:
    """Register the bridge, the deliverer and the webhook route; returns the bot's worker."""
    channel = TelegramChannel(rt)
    rt.extras["telegram"] = channel
    rt.bridges["telegram"] = TelegramBridge(rt)
    rt.deliverers["telegram"] = channel.deliverer
    app.include_router(webhook_router)
    return [run_telegram]


async def run_telegram(rt: Runtime, stop: asyncio.Event) -> None:
    """The bot's lifetime in the lifespan: start, then poll (or wait for webhooks) until stopped."""
    channel: TelegramChannel = rt.extras["telegram"]
    try:
        if not await channel.start(stop):
            return
        try:
            await channel.configure()
        except TelegramError as exc:
            log.error("Telegram setup call failed: %s (run `butler telegram check`)", exc)
        log.info("Telegram bot @%s running (%s)", channel.app.bot.username, channel.mode)
        if channel.mode == "polling":
            await channel.runner.poll(stop)
        else:
            await stop.wait()
    finally:
        await channel.close()
