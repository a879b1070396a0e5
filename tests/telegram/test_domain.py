"""The Telegram side of the engine without PTB: bookings, VINs, topics once, receipts, link tokens."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import event, func, select

from bot.bookings import flows as booking_flows
from bot.bookings.flows import Answer
from bot.bookings.vin import check_digit, validate_vin
from bot.clock import FrozenClock
from bot.conversations.models import Case
from bot.errors import InvalidInput
from bot.outbox.models import OutboxRow
from bot.runtime import Runtime
from bot.seed import seed_demo
from bot.teams.enums import Channel
from bot.teams.models import ButlerGroup, Customer
from bot.tg import bridge
from bot.tg import flows as tg_flows
from bot.tg import service as tg_service
from bot.tg.bridge import TelegramBridge
from bot.tg.flows import TgUser
from tests.live import DEMO_HASH

STAFF_CHAT = -1009000000001


@pytest.fixture
async def tg_rt(rt: Runtime) -> Runtime:
    """The test runtime with the Telegram bridge and a staff chat, and the demo staff."""
    rt.settings.telegram_staff_chat_id = STAFF_CHAT
    rt.bridges["telegram"] = TelegramBridge(rt)
    async with rt.transaction() as session:
        await seed_demo(session, password_hash=DEMO_HASH)
    return rt


async def customer_of(rt: Runtime, user: TgUser) -> Customer:
    """The customer behind a Telegram user (created on first use)."""
    async with rt.transaction() as session:
        return await tg_flows.customer_for(session, rt, user=user)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("LSVAB1234CD56789", "vin.length"),
        ("LSVAB1234CD56789O", "vin.letters"),
        ("LSVAB1234CD5678!9", "vin.characters"),
    ],
)
def test_vin_rules(raw: str, code: str) -> None:
    """17 characters, never I/O/Q, letters and digits only."""
    with pytest.raises(InvalidInput) as exc:
        validate_vin(raw)
    assert exc.value.code == code


def test_vin_check_digit_is_optional() -> None:
    """The ISO 3779 check digit is verified only on request; spaces and case are forgiven."""
    assert check_digit("1M8GDM9AXKP042788") == "X"
    assert validate_vin("1m8gdm9a xkp042788", require_check_digit=True) == "1M8GDM9AXKP042788"
    assert validate_vin("LSVAB1234CD567890") == "LSVAB1234CD567890"
    with pytest.raises(InvalidInput, match="check digit"):
        validate_vin("LSVAB1234CD567890", require_check_digit=True)


async def test_service_booking_opens_a_service_case_with_fields(tg_rt: Runtime, clock: FrozenClock) -> None:
    """Every step answered; stale presses and bad values are refused without losing the draft."""
    customer = await customer_of(tg_rt, TgUser(9101, 9101, "Ma Li", language_code="en"))
    async with tg_rt.transaction() as session:
        prompt = await booking_flows.start_booking(session, tg_rt, customer=customer, kind="service")
    assert prompt.step == "vehicle" and [c for c, _ in prompt.options] == ["none", "cancel"]

    async def answer(
        step: str, value: str | None = None, text: str | None = None
    ) -> booking_flows.BookingReply:
        async with tg_rt.transaction() as session:
            return await booking_flows.answer_booking(
                session,
                tg_rt,
                customer=customer,
                answer=Answer(value=value, text=text),
                channel=Channel.TELEGRAM,
                draft_id=prompt.draft_id if value is not None else None,
                step_key=step if value is not None else None,
            )

    assert (await answer("vehicle", "none")).prompt is not None
    assert (await answer("vehicle", "none")).stale  # the same button again
    assert (await answer("service_type", "teleport")).notice == "Please pick one of the buttons."
    await answer("service_type", "maintenance")
    days = (await answer("date", "20261102")).prompt  # today is not bookable: asked again
    assert days is not None and days.step == "date" and days.options[0][0] == "20261103"
    await answer("date", "20261105")
    await answer("slot", "1000")
    reply = await answer("notes", text="Rattle from the boot")
    assert reply.prompt is not None and reply.prompt.step == "confirm"
    assert "• Day: 2026-11-05" in reply.prompt.text and "• Notes: Rattle from the boot" in reply.prompt.text
    done = await answer("confirm", "confirm")
    assert done.done and done.case_id is not None
    async with tg_rt.maker() as session:
        case = await session.get(Case, done.case_id)
        rows = (await session.scalars(select(OutboxRow).order_by(OutboxRow.id))).all()
    assert case is not None and case.category == "service" and case.assignee is not None
    assert case.assignee.role == "service"
    assert (
        case.fields["slot_start"] == "2026-11-05T10:00:00+08:00"
        and case.fields["service_type"] == "maintenance"
    )
    assert [r.kind for r in rows if r.lane.startswith("tg:topic:")][:2] == ["create_topic", "send"]


async def test_topic_is_requested_once_even_concurrently(tg_rt: Runtime) -> None:
    """Two transactions mirroring for the same new group: one create_topic row, first in its lane."""
    user = TgUser(9102, 9102, "Xu Ying", language_code="zh-hans")
    async with tg_rt.transaction() as session:
        welcome = await tg_flows.start_customer(session, tg_rt, user=user)
    await asyncio.gather(*(ensure(tg_rt, welcome.group.id) for _ in range(4)))
    async with tg_rt.maker() as session:
        creates = await session.scalar(
            select(func.count()).select_from(OutboxRow).where(OutboxRow.kind == "create_topic")
        )
        first = await session.scalar(
            select(OutboxRow)
            .where(OutboxRow.lane == bridge.topic_lane(welcome.group.id))
            .order_by(OutboxRow.id)
        )
    assert creates == 1 and first is not None and first.kind == "create_topic"


async def test_a_known_topic_is_not_looked_up_again_unless_its_creation_rolled_back(tg_rt: Runtime) -> None:
    """The per-process memory of topic rows only learns from committed transactions."""
    user = TgUser(9103, 9103, "Lin Tao", language_code="en")
    async with tg_rt.transaction() as session:
        welcome = await tg_flows.start_customer(session, tg_rt, user=user)
    gid = welcome.group.id
    assert gid in tg_rt.extras[bridge.TOPICS_KNOWN]  # the transaction that reserved the row
    tg_rt.extras[bridge.TOPICS_KNOWN].clear()  # as a process that did not reserve it would start
    with topic_lookups(tg_rt) as lookups:
        with pytest.raises(RuntimeError):  # a unit of work that finds the row, then fails
            async with tg_rt.transaction() as session:
                group = await session.get(ButlerGroup, gid)
                assert group is not None and await bridge.ensure_topic(session, tg_rt, group=group)
                raise RuntimeError("rolled back")
        assert gid not in tg_rt.extras.get(bridge.TOPICS_KNOWN, set())
        await ensure(tg_rt, gid)  # finds the row and commits: remembered
        assert gid in tg_rt.extras[bridge.TOPICS_KNOWN]
        before = len(lookups)
        await ensure(tg_rt, gid)
        assert len(lookups) == before == 2


async def test_a_topic_reserved_in_a_rolled_back_transaction_is_reserved_again(tg_rt: Runtime) -> None:
    """Within a transaction the topic row is looked up once; a rollback teaches the process nothing."""
    user = TgUser(9104, 9104, "Wu Fang", language_code="en")
    with topic_lookups(tg_rt) as lookups:
        with pytest.raises(RuntimeError):
            async with tg_rt.transaction() as session:
                lost = (await tg_flows.start_customer(session, tg_rt, user=user)).group.id
                group = await session.get(ButlerGroup, lost)
                assert group is not None and await bridge.ensure_topic(session, tg_rt, group=group)
                assert len(lookups) == 1  # the second ensure_topic knew the row it had reserved
                raise RuntimeError("rolled back")
        assert lost not in tg_rt.extras.get(bridge.TOPICS_KNOWN, set())
        async with tg_rt.transaction() as session:
            gid = (await tg_flows.start_customer(session, tg_rt, user=user)).group.id
    async with tg_rt.maker() as session:
        kinds = await session.scalars(
            select(OutboxRow.kind).where(OutboxRow.lane == bridge.topic_lane(gid)).order_by(OutboxRow.id)
        )
        assert list(kinds)[:1] == ["create_topic"]
    assert gid in tg_rt.extras[bridge.TOPICS_KNOWN]


@contextmanager
def topic_lookups(rt: Runtime) -> Iterator[list[str]]:
    """The SELECTs of telegram_topics run inside the block."""
    lookups: list[str] = []

    def _seen(_c: object, _cur: object, statement: str, *_a: object) -> None:
        if "telegram_topics" in statement and statement.lstrip().upper().startswith("SELECT"):
            lookups.append(statement)

    event.listen(rt.engine.sync_engine, "before_cursor_execute", _seen)
    try:
        yield lookups
    finally:
        event.remove(rt.engine.sync_engine, "before_cursor_execute", _seen)


async def ensure(rt: Runtime, group_id: int) -> None:
    """ensure_topic in its own transaction."""
    async with rt.transaction() as session:
        group = await session.get(ButlerGroup, group_id)
        assert group is not None
        await bridge.ensure_topic(session, rt, group=group)


async def test_update_receipts_dedupe_and_give_up(tg_rt: Runtime) -> None:
    """A processed update is claimed once; failures are counted until the update is given up."""
    now = tg_rt.clock.now()
    async with tg_rt.transaction() as session:
        assert await tg_service.claim_update(session, update_id=1, kind="message", now=now)
        assert not await tg_service.claim_update(session, update_id=1, kind="message", now=now)
    for attempt in range(1, 4):
        async with tg_rt.transaction() as session:
            gave_up = await tg_service.note_failure(
                session, update_id=2, kind="message", error="boom", now=now, max_attempts=3
            )
        assert gave_up is (attempt == 3)
    async with tg_rt.transaction() as session:
        assert not await tg_service.claim_update(session, update_id=2, kind="message", now=now)
        await tg_service.note_failure(
            session, update_id=3, kind="message", error="x", now=now, max_attempts=3
        )
    async with tg_rt.transaction() as session:
        assert await tg_service.claim_update(session, update_id=3, kind="message", now=now)  # retry wins


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_link_tokens_are_one_time_and_expire(tg_rt: Runtime, clock: FrozenClock) -> None:
    """A deep link links once; a second use or an expired token does nothing."""
    from bot.teams import service as teams_service

    async with tg_rt.transaction() as session:
        staff = await teams_service.get_staff_by_username(session, username="sales1")
        assert staff is not None
        first = await tg_flows.issue_link_token(session, tg_rt, staff=staff)
        second = await tg_flows.issue_link_token(session, tg_rt, staff=staff)
    assert first.startswith("https://t.me/") and "?start=link_" in first
    user = TgUser(9103, 9103, "Zhang Wei")
    async with tg_rt.transaction() as session:
        linked = await tg_flows.link_staff(session, tg_rt, token=first.rsplit("link_", 1)[1], user=user)
        again = await tg_flows.link_staff(session, tg_rt, token=first.rsplit("link_", 1)[1], user=user)
    assert linked is not None and linked.telegram_user_id == 9103 and again is None
    clock.advance(timedelta(hours=25))
    async with tg_rt.transaction() as session:
        late = await tg_flows.link_staff(session, tg_rt, token=second.rsplit("link_", 1)[1], user=user)
    assert late is None
