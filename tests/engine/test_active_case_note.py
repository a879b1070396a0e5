"""The active case comes along with the sender's lookup; a case opened or moved meanwhile is read afresh."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from bot.conversations import service as conv_service
from bot.conversations.enums import CaseStatus
from bot.conversations.flows import open_case
from bot.conversations.routing import RoutingDecision
from bot.runtime import Runtime
from bot.seed import seed_demo
from bot.teams import service as teams_service
from bot.teams.models import ButlerGroup
from tests.inbound import webchat_customer, webchat_says
from tests.live import DEMO_HASH, DEMO_PASSWORD

_CASE_LOOKUP = "FROM cases LEFT OUTER JOIN staff"  # active_case's own statement


@contextmanager
def statements(rt: Runtime) -> Iterator[list[str]]:
    """The statements the engine runs inside the block, whitespace folded."""
    seen: list[str] = []

    def _seen(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(rt.engine.sync_engine, "before_cursor_execute", _seen)
    try:
        yield seen
    finally:
        event.remove(rt.engine.sync_engine, "before_cursor_execute", _seen)


async def _known(session: Any, rt: Runtime, *users: str) -> list[ButlerGroup]:
    """Look the senders up together, as a shared transaction's prefetch does; their groups."""
    await teams_service.prefetch_identities(session, channel="webchat", external_ids=list(users))
    groups = []
    for user in users:
        customer, _ = await webchat_customer(session, user, now=rt.clock.now())
        group = await teams_service.get_group_for_customer(session, customer_id=customer.id)
        assert group is not None
        groups.append(group)
    return groups


async def test_the_lookup_brings_the_case_and_an_open_or_a_move_drops_the_note(rt: Runtime) -> None:
    async with rt.transaction() as session:
        await seed_demo(session, password=DEMO_PASSWORD, password_hash=DEMO_HASH)
    await webchat_says(rt, "ann", "How long is the warranty?", message_id="a1")  # answered, no case
    await webchat_says(rt, "bob", "My brakes grind, please call me", message_id="b1")  # a case opens
    async with rt.transaction() as session:
        with statements(rt) as seen:
            ann_group, bob_group = await _known(session, rt, "ann", "bob")
            bob_case = await conv_service.active_case(session, group_id=bob_group.id)
            assert bob_case is not None and bob_case.status == CaseStatus.OPEN
            assert not [s for s in seen if _CASE_LOOKUP in s], "the case came with the sender"
            # A unit before Ann's opens a case in her group: her note is dropped, she reads afresh.
            decision = RoutingDecision("service", "normal", "test")
            opened = await open_case(session, rt, group=ann_group, decision=decision, subject="noise")
            assert await conv_service.active_case(session, group_id=ann_group.id) is opened
            assert [s for s in seen if _CASE_LOOKUP in s], "read afresh"
    async with rt.transaction() as session:
        (bob_group,) = await _known(session, rt, "bob")
        case = await conv_service.get_case(session, case_id=bob_case.id)
        assert case is not None
        await conv_service.transition_case(session, case=case, to=CaseStatus.RESOLVED, now=rt.clock.now())
        assert await conv_service.active_case(session, group_id=bob_group.id) is None, "resolved meanwhile"


async def test_a_message_after_a_case_opened_in_the_same_transaction_joins_it(rt: Runtime) -> None:
    async with rt.transaction() as session:
        await seed_demo(session, password=DEMO_PASSWORD, password_hash=DEMO_HASH)
    await webchat_says(rt, "cyd", "Hello", message_id="c0")
    first = await webchat_says(rt, "cyd", "My brakes grind, please call me", message_id="c1")
    second = await webchat_says(rt, "cyd", "It started on Monday", message_id="c2")
    assert first.case_id is not None and second.case_id == first.case_id
