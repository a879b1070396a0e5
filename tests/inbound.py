"""Customer messages through the real inbound flow, for tests that set up conversations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.conversations.flows import InboundMessage, InboundResult, receive_customer_message
from bot.runtime import Runtime
from bot.teams import service as teams_service
from bot.teams.models import ChannelIdentity, Customer


async def webchat_says(
    rt: Runtime,
    user: str,
    text: str,
    *,
    message_id: str,
    locale: str = "en",
    display_name: str | None = None,
    **fields: Any,
) -> InboundResult:
    """One web chat message from `user`, committed in its own unit of work."""
    msg = InboundMessage(
        channel="webchat",
        external_user_id=user,
        chat_id=user,
        external_message_id=message_id,
        text=text,
        display_name=user if display_name is None else display_name,
        locale=locale,
        **fields,
    )
    async with rt.transaction() as session:
        return await receive_customer_message(session, rt, msg)


async def webchat_customer(
    session: AsyncSession, user: str, *, now: datetime
) -> tuple[Customer, ChannelIdentity]:
    """Find (or create) the web chat customer `user` in the session, as a message's flow does."""
    customer, identity, _ = await teams_service.find_or_create_customer(
        session, channel="webchat", external_id=user, chat_id=user, display_name=user, locale="en", now=now
    )
    return customer, identity
