"""Web chat sessions: the browser's identity as a customer channel."""

from __future__ import annotations

import secrets
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import lazyload

from bot.conversations import flows
from bot.conversations import service as conv_service
from bot.conversations.models import Case
from bot.errors import InvalidInput, NotFound
from bot.i18n import normalize_locale
from bot.runtime import Runtime
from bot.teams import service as teams_service
from bot.teams.enums import Channel
from bot.teams.models import ButlerGroup, ChannelIdentity, Customer, WebchatSession

# Every web chat message's first lookup, built once (bot.db.PerDialect says why).
_SESSION_ROW = (
    select(
        WebchatSession,
        Customer,
        ButlerGroup,
        Case,
        ChannelIdentity,
        teams_service.sole_identity(ChannelIdentity).label("sole"),
        conv_service.last_bot_answer_subquery(ButlerGroup.id).label("last_bot_answer"),
    )
    .join(Customer, Customer.id == WebchatSession.customer_id)
    .outerjoin(ButlerGroup, ButlerGroup.customer_id == Customer.id)
    .outerjoin(Case, Case.id == conv_service.newest_active_case_id(ButlerGroup.id))
    .outerjoin(
        ChannelIdentity,
        (ChannelIdentity.channel == Channel.WEBCHAT.value)
        & (ChannelIdentity.external_id == WebchatSession.id),
    )
    # The row's own Customer and group: no second join.
    .options(lazyload(ButlerGroup.customer), lazyload(Case.group))
)
_LIVE_SESSION = _SESSION_ROW.where(WebchatSession.id == bindparam("session_id"))
_LIVE_SESSIONS = _SESSION_ROW.where(WebchatSession.id.in_(bindparam("session_ids", expanding=True)))
_PREFETCHED = "webchat_sessions_prefetched"  # Session.info: {session id: row or None}


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
    prefetched = session.info.get(_PREFETCHED, {})
    if session_id in prefetched:  # used once: a second message of the session reads afresh
        found = prefetched.pop(session_id)
    else:
        found = (await session.execute(_LIVE_SESSION, {"session_id": session_id})).first()
        teams_service.remember_row(session, found)
    if found is None:
        raise NotFound("session.unknown", "unknown chat session; start a new one")
    chat, customer, group = found[:3]
    teams_service.remember_group(session, group)  # the message flow needs it next: no second query
    if chat.expires_at <= rt.clock.now():
        raise NotFound("session.expired", "this chat session has expired; start a new one")
    return chat, customer


async def prefetch(session: AsyncSession, keys: list[tuple[str | None, str, datetime]]) -> None:
    """A shared transaction's web chat messages, keyed (session id, client message id, now): their
    receipts in one INSERT, their sessions (named once in the transaction) in one query."""
    valid = [(sid, external, now) for sid, external, now in keys if sid and len(sid) <= 64]
    if not valid:
        return
    receipts = [(Channel.WEBCHAT.value, sid, external) for sid, external, _ in valid]
    await conv_service.record_receipts(session, receipts, now=valid[0][2])
    once = [sid for sid, n in Counter(sid for sid, _, _ in valid).items() if n == 1]
    if once:
        found: dict[str, Any] = dict.fromkeys(once, None)
        for row in await session.execute(_LIVE_SESSIONS, {"session_ids": once}):
            found[row[0].id] = row
            teams_service.remember_row(session, row)  # now: a unit before this one may still move the case
        session.info.setdefault(_PREFETCHED, {}).update(found)


async def post_message(
    rt: Runtime, *, session_id: str | None, external_id: str, text: str
) -> flows.InboundResult:
    """A customer's message from their browser, in a unit of work shared with others arriving meanwhile."""

    async def work(session: AsyncSession) -> flows.InboundResult:
        chat, customer = await require_session(session, rt, session_id=session_id)
        return await flows.receive_customer_message(
            session,
            rt,
            flows.InboundMessage(
                channel=Channel.WEBCHAT,
                external_user_id=chat.id,
                chat_id=chat.id,
                external_message_id=external_id,
                text=text,
                display_name=customer.display_name,
                locale=customer.locale,
                customer=customer,  # already loaded with the session: saves the identity lookup
            ),
        )

    return await rt.unit_of_work(work, prefetch=(prefetch, (session_id, external_id, rt.clock.now())))
