"""Many customers writing at once: exactly one group each, no duplicate members, no deadlock."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select, update

from bot.conversations.flows import InboundMessage, receive_customer_message
from bot.runtime import Runtime
from bot.seed import seed_demo
from bot.teams.models import ButlerGroup, ChannelIdentity, Customer, Membership, Staff
from tests.live import DEMO_HASH, DEMO_PASSWORD


async def _write(rt: Runtime, user: int, attempt: int) -> None:
    msg = InboundMessage(
        channel="webchat",
        external_user_id=f"user-{user}",
        chat_id=f"user-{user}",
        external_message_id=f"first-{user}",
        text="你好，我想问一下保养",
        display_name=f"客户{user}",
        locale="zh-CN",
    )
    async with rt.transaction() as session:
        await receive_customer_message(session, rt, msg)


@pytest.mark.integration
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_hundred_customers_concurrently(rt: Runtime) -> None:
    async with rt.transaction() as session:
        await seed_demo(session, password=DEMO_PASSWORD, password_hash=DEMO_HASH)
        # Room for everyone: 100 cases over 3 specialists per role would otherwise hit the demo
        # capacity (30) and leave later teams a gap, depending on how the transactions interleave.
        await session.execute(update(Staff).values(capacity=1000))
    # Each customer's first message arrives twice at once (a redelivery race) on top of 100-way concurrency.
    jobs = [_write(rt, user, attempt) for user in range(100) for attempt in range(2)]
    results = await asyncio.wait_for(asyncio.gather(*jobs, return_exceptions=True), timeout=120)
    # The redelivery waits on the receipt's unique key and then sees a duplicate: no errors, no deadlock.
    assert [r for r in results if isinstance(r, BaseException)] == []
    async with rt.maker() as session:
        assert await session.scalar(select(func.count()).select_from(Customer)) == 100
        assert await session.scalar(select(func.count()).select_from(ChannelIdentity)) == 100
        assert await session.scalar(select(func.count()).select_from(ButlerGroup)) == 100
        per_group = (
            await session.execute(
                select(
                    Membership.group_id, func.count(), func.count(func.distinct(Membership.role))
                ).group_by(Membership.group_id)
            )
        ).all()
    assert len(per_group) == 100
    assert all(n == 4 and roles == 4 for _gid, n, roles in per_group)
