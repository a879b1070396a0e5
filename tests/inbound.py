"""Customer messages through the real inbound flow, for tests that set up conversations."""

from __future__ import annotations

from typing import Any

from bot.conversations.flows import InboundMessage, InboundResult, receive_customer_message
from bot.runtime import Runtime


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
