"""Helpers for SLA tests: a small staff pool, customers writing, the worker, and what was recorded."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime

import pytest
from sqlalchemy import select

from bot.conversations.flows import InboundResult
from bot.conversations.models import Case, Message
from bot.runtime import Runtime
from bot.teams.models import Dealer, Staff
from escalation import worker
from escalation.models import SlaEvent, SlaTimer
from tests.inbound import webchat_says

_ids = itertools.count(1)


@dataclass
class Team:
    """The staff pool of one dealer, by handle."""

    dealer_id: int
    staff: dict[str, Staff]

    def __getitem__(self, key: str) -> Staff:
        return self.staff[key]


STAFF = [
    # handle, display name, role
    ("butler", "Li Na", "butler"),
    ("sales", "Chen Jie", "sales"),
    ("service", "Wang Fang", "service"),
    ("service2", "Zhao Lei", "service"),
    ("factory", "Sun Hao", "factory"),
    ("lead", "Zhou Min", "lead"),
    ("manager", "Liu Yang", "manager"),
]


async def make_team(rt: Runtime) -> Team:
    """One dealer and its staff; the first of each role joins new teams (lowest id wins ties)."""
    now = rt.clock.now()
    async with rt.transaction() as session:
        dealer = Dealer(code="SH01", name="Demo Motors Shanghai", timezone="Asia/Shanghai")
        session.add(dealer)
        await session.flush()
        staff = {}
        for handle, name, role in STAFF:
            member = Staff(
                username=handle,
                display_name=name,
                role=role,
                languages=["zh-CN", "en"],
                dealer_id=dealer.id,
                password_hash="x",
                created_at=now,
            )
            session.add(member)
            staff[handle] = member
        await session.flush()
    return Team(dealer_id=dealer.id, staff=staff)


@pytest.fixture
async def team(rt: Runtime) -> Team:
    """The staff pool, created directly (no seed module)."""
    return await make_team(rt)


async def customer_writes(
    rt: Runtime,
    text: str,
    *,
    user: str = "u1",
    locale: str = "en",
    category: str | None = None,
) -> InboundResult:
    """A customer message through the real inbound flow, asking for a person."""
    return await webchat_says(
        rt, user, text, message_id=f"m{next(_ids)}", locale=locale, wants_person=True, category=category
    )


async def drain(rt: Runtime, limit: int = 200) -> int:
    """Run worker passes until nothing is due."""
    return await worker.drain(rt, limit=limit)


async def timers(rt: Runtime, case_id: int) -> list[SlaTimer]:
    """All clocks of a case, oldest first."""
    async with rt.maker() as session:
        rows = await session.scalars(
            select(SlaTimer).where(SlaTimer.case_id == case_id).order_by(SlaTimer.id)
        )
        return list(rows.all())


async def live_timer(rt: Runtime, case_id: int, metric: str) -> SlaTimer | None:
    """The live clock of a metric, if any."""
    return next((t for t in await timers(rt, case_id) if t.metric == metric and t.active), None)


async def events(rt: Runtime, case_id: int, metric: str | None = None) -> list[SlaEvent]:
    """SLA events of a case in order, optionally of one metric."""
    async with rt.maker() as session:
        query = select(SlaEvent).where(SlaEvent.case_id == case_id).order_by(SlaEvent.id)
        if metric is not None:
            query = query.where(SlaEvent.metric == metric)
        return list((await session.scalars(query)).all())


async def kinds(rt: Runtime, case_id: int, metric: str | None = None) -> list[str]:
    """Just the event kinds."""
    return [e.kind for e in await events(rt, case_id, metric)]


async def get_case(rt: Runtime, case_id: int) -> Case:
    """A fresh copy of a case."""
    async with rt.maker() as session:
        case = await session.get(Case, case_id)
        assert case is not None
        return case


async def system_texts(rt: Runtime, group_id: int) -> list[str]:
    """Bodies of the system messages a group's customer got, oldest first."""
    async with rt.maker() as session:
        rows = await session.scalars(
            select(Message.body)
            .where(Message.group_id == group_id, Message.author_kind == "system")
            .order_by(Message.id)
        )
        return list(rows.all())


def minutes(a: datetime, b: datetime) -> float:
    """b - a in minutes."""
    return (b - a).total_seconds() / 60
