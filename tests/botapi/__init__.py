"""Telegram Bot API test server: real HTTP, in-memory Telegram, test-side users and groups.

Usage::

    async with BotApiServer() as server:
        app = (Application.builder().token(server.token)
               .base_url(f"{server.url}/bot").base_file_url(f"{server.url}/file/bot").build())
        user = server.user(1001, "Li Lei")
        await user.send_text("hello")
"""

from tests.botapi.client import CallbackQueryHandle, GroupClient, UserClient
from tests.botapi.limits import Faults, RateLimitConfig, RateLimitEvent
from tests.botapi.model import ApiError, SentMessage, Topic, UserInfo
from tests.botapi.server import DEFAULT_TOKEN, BotApiServer, CallRecord, DeliveredUpdate
from tests.botapi.webhook import SECRET_HEADER, DeliveryAttempt

__all__ = [
    "DEFAULT_TOKEN",
    "SECRET_HEADER",
    "ApiError",
    "BotApiServer",
    "CallRecord",
    "CallbackQueryHandle",
    "DeliveredUpdate",
    "DeliveryAttempt",
    "Faults",
    "GroupClient",
    "RateLimitConfig",
    "RateLimitEvent",
    "SentMessage",
    "Topic",
    "UserClient",
    "UserInfo",
]
