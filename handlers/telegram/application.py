"""The PTB Application: built with updater=None (our webhook route or our poller feed it updates)."""

from __future__ import annotations

import functools
import ssl
from typing import Any

import httpx
from telegram import Bot
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    MessageHandler,
    filters,
)

from bot.settings import Settings
from handlers.telegram import customer, staff
from handlers.telegram.aiohttp_request import AiohttpRequest
from handlers.telegram.runner import record_error

TelegramApp = Application[Any, Any, Any, Any, Any, Any]


def api_urls(settings: Settings) -> tuple[str, str]:
    """PTB's base_url and base_file_url for the configured Bot API root."""
    root = settings.telegram_api_base_url.rstrip("/")
    return f"{root}/bot", f"{root}/file/bot"


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One certificate store for every Bot API client of the process (loading it is slow)."""
    return httpx.create_ssl_context()


def http_request(*, pool: int, read_timeout: float = 15) -> AiohttpRequest:
    """PTB's HTTP client (on aiohttp: a fifth of httpx's CPU per call) with our timeouts and TLS context."""
    return AiohttpRequest(
        connection_pool_size=pool,
        connect_timeout=5,
        read_timeout=read_timeout,
        write_timeout=30,
        pool_timeout=10,
        ssl_context=tls_context(),
    )


def build_application(settings: Settings) -> TelegramApp:
    """The Application with every handler registered (no updater: see handlers.telegram.runner)."""
    assert settings.telegram_token
    base_url, base_file_url = api_urls(settings)
    app = (
        Application.builder()
        .token(settings.telegram_token)
        .base_url(base_url)
        .base_file_url(base_file_url)
        .request(http_request(pool=32))
        .get_updates_request(http_request(pool=1, read_timeout=40))
        .updater(None)
        .build()
    )
    register(app, settings)
    return app


def build_sender_bot(settings: Settings) -> Bot:
    """A separate Bot for the outbox deliverer, with a pool sized for 30 sends a second."""
    assert settings.telegram_token
    base_url, base_file_url = api_urls(settings)
    request = http_request(pool=64)
    return Bot(settings.telegram_token, base_url=base_url, base_file_url=base_file_url, request=request)


def register(app: TelegramApp, settings: Settings) -> None:
    """Private chats are customers; the staff supergroup's topics are staff; the rest is ignored."""
    private = filters.ChatType.PRIVATE
    content = filters.TEXT | filters.PHOTO | filters.Document.ALL | filters.VOICE | filters.LOCATION
    for name, callback in (
        ("start", customer.start),
        ("menu", customer.menu),
        ("team", customer.team),
        ("help", customer.help_command),
        ("language", customer.language),
        ("phone", customer.phone),
        ("vehicle", customer.vehicle),
        ("cancel", customer.cancel),
    ):
        app.add_handler(CommandHandler(name, callback, filters=private & filters.UpdateType.MESSAGE))
    app.add_handler(CallbackQueryHandler(customer.pressed))
    app.add_handler(ChatMemberHandler(customer.chat_member, ChatMemberHandler.MY_CHAT_MEMBER))
    app.add_handler(MessageHandler(private & filters.UpdateType.EDITED_MESSAGE, customer.edited))
    app.add_handler(MessageHandler(private & filters.UpdateType.MESSAGE & filters.CONTACT, customer.contact))
    app.add_handler(
        MessageHandler(private & filters.UpdateType.MESSAGE & content & ~filters.COMMAND, customer.message)
    )
    app.add_handler(
        MessageHandler(private & filters.UpdateType.MESSAGE & ~filters.COMMAND, customer.unsupported)
    )
    app.add_handler(
        MessageHandler(private & filters.UpdateType.MESSAGE & filters.COMMAND, customer.help_command)
    )
    if settings.telegram_staff_chat_id is not None:
        group = filters.Chat(settings.telegram_staff_chat_id)
        for name, callback in (
            ("note", staff.note),
            ("resolve", staff.resolve),
            ("invite", staff.invite),
            ("transfer", staff.transfer),
        ):
            app.add_handler(CommandHandler(name, callback, filters=group & filters.UpdateType.MESSAGE))
        app.add_handler(MessageHandler(group & filters.UpdateType.EDITED_MESSAGE, staff.edited))
        app.add_handler(
            MessageHandler(group & filters.UpdateType.MESSAGE & content & ~filters.COMMAND, staff.relay)
        )
    app.add_error_handler(record_error)
