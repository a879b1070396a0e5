"""Web chat sessions: the browser's identity as a customer channel."""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import lazyload

from bot.errors import InvalidInput, NotFound
from bot.i18n import normalize_locale
from bot.runtime import Runtime
from bot.teams import service as teams_service
from bot.teams.enums import Channel
from bot.teams.models import ButlerGroup, Customer, WebchatSession

# Every web chat message's first lookup, built once (bot.db.PerDialect says why).
_LIVE_SESSION = (
    select(WebchatSession, Customer, ButlerGroup)
    .join(Customer, Customer.id == WebchatSession.customer_id)
    .outerjoin(ButlerGroup, ButlerGroup.customer_id == Customer.id)
    .options(lazyload(ButlerGroup.customer))  # the row's own Customer: no second join
    .where(WebchatSession.id == bindparam("session_id"))
)


async def start_session(
    session: AsyncSession, rt: Runtime, *, display_name: str | None, locale: str | None
) -> WebchatSession:
    """Create a customer for a new browser and a session for them."""
    name = (display_name or "").strip()
    if len(name) > 100:
        raise InvalidInput("name.too_long", "name is longer than 100 characters")
    now = rt.clock.now()
    session_id = secrets.token_urlsafe(24)
    customer, _identity, _ = await teams_service.find_or_create_customer(
        session,
        channel=Channel.WEBCHAT,
        external_id=session_id,
        chat_id=session_id,
        display_name=name or "Web visitor",
        locale=normalize_locale(locale, rt.settings.default_locale),
        now=now,
    )
    chat = WebchatSession(
        id=session_id,
        customer_id=customer.id,
        created_at=now,
        expires_at=now + timedelta(hours=rt.settings.session_ttl_hours),
    )
    session.add(chat)
    await session.flush()
    return chat


async def require_session(
    session: AsyncSession, rt: Runtime, *, session_id: str | None
) -> tuple[WebchatSession, Customer]:
    """The live session and its customer; NotFound for unknown or expired sessions."""
    if not session_id or len(session_id) > 64:
        raise NotFound("session.unknown", "unknown chat session; start a new one")
    found = (await session.execute(_LIVE_SESSION, {"session_id": session_id})).first()
    if found is None:
        raise NotFound("session.unknown", "unknown chat session; start a new one")
    chat, customer, group = found
    teams_service.remember_group(session, group)  # the message flow needs it next: no second query
    if chat.expires_at <= rt.clock.now():
        raise NotFound("session.expired", "this chat session has expired; start a new one")
    return chat, customer
