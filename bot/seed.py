"""Demo data: one dealer, a full staff roster, and the demo knowledge base."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.security import hash_password
from bot.teams.models import Dealer, Staff
from knowledge import service as knowledge_service

DEMO_DEALER = ("DM-SH01", "Demo Motors Shanghai Pudong")

# username, display name, role, languages
DEMO_STAFF: list[tuple[str, str, str, list[str]]] = [
    ("butler1", "Li Na", "butler", ["zh-CN", "en"]),
    ("butler2", "Zhao Lei", "butler", ["zh-CN"]),
    ("butler3", "Emma Chen", "butler", ["en", "zh-CN"]),
    ("sales1", "Zhang Wei", "sales", ["zh-CN", "en"]),
    ("sales2", "Liu Yang", "sales", ["zh-CN"]),
    ("sales3", "Jack Wu", "sales", ["en"]),
    ("service1", "Wang Fang", "service", ["zh-CN", "en"]),
    ("service2", "Chen Jie", "service", ["zh-CN"]),
    ("service3", "Tom Huang", "service", ["en"]),
    ("factory1", "Sun Hao", "factory", ["zh-CN", "en"]),
    ("factory2", "Zhou Min", "factory", ["zh-CN"]),
    ("factory3", "Grace Lin", "factory", ["en"]),
    ("lead1", "Ma Jun", "lead", ["zh-CN", "en"]),
    ("manager1", "Xu Ying", "manager", ["zh-CN", "en"]),
    ("admin", "Admin", "admin", ["en", "zh-CN"]),
]


@dataclass(frozen=True)
class Login:
    """A demo login to print once."""

    username: str
    password: str
    role: str
    display_name: str


async def seed_demo(
    session: AsyncSession,
    *,
    now_iso: str | None = None,
    password: str | None = None,
    password_hash: str | None = None,
) -> list[Login]:
    """Create the demo dealer and staff if missing; returns the logins created (empty if seeded)."""
    from datetime import UTC, datetime

    now = datetime.fromisoformat(now_iso) if now_iso else datetime.now(UTC)
    dealer = await session.scalar(select(Dealer).where(Dealer.code == DEMO_DEALER[0]))
    if dealer is None:
        dealer = Dealer(code=DEMO_DEALER[0], name=DEMO_DEALER[1], timezone="Asia/Shanghai")
        session.add(dealer)
        await session.flush()
    existing = set((await session.scalars(select(Staff.username))).all())
    logins: list[Login] = []
    # Hashing is slow on purpose: one shared password is hashed once (tests may pass a ready hash).
    shared_hash = password_hash or (hash_password(password) if password else None)
    for username, name, role, languages in DEMO_STAFF:
        if username in existing:
            continue
        pw = password or secrets.token_urlsafe(9)
        session.add(
            Staff(
                username=username,
                display_name=name,
                role=role,
                languages=languages,
                dealer_id=dealer.id,
                capacity=30,
                on_duty=True,
                active=True,
                password_hash=shared_hash or hash_password(pw),
                created_at=now,
            )
        )
        logins.append(Login(username, pw, role, name))
    await session.flush()
    await knowledge_service.load_demo_if_empty(session, now=now)
    return logins
