"""Five days of customer service through the real flows, so every dashboard chart has data.

Customers write on the web chat; the bot answers what the demo knowledge base knows (some answers
marked not helpful), everything else becomes a case. Specialists answer some cases in time, some
late (the escalation worker records the breaches), resolve most and customers rate them; the last
day leaves cases open, waiting, at risk and breached. The clock is a FrozenClock moved by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import FrozenClock
from bot.conversations import staff_flows
from bot.conversations.buttons import press_button
from bot.conversations.models import Case
from bot.runtime import Runtime
from bot.teams.models import ChannelIdentity, Customer, Staff
from escalation.worker import drain
from tests.inbound import webchat_says

# 10:00 in Shanghai (the demo dealer's zone) on the first day; "now" is the fifth day at 17:00.
FIRST_DAY = datetime(2026, 10, 29, 2, 0, tzinfo=UTC)
DAYS = 5
FAQ = (
    "How often should I service my car?",
    "How long is the car warranty?",
    "How do I book a service?",
)
QUESTIONS = (
    "My brakes squeak when I stop at low speed, can someone check?",
    "I want a quote for the new SUV with the long-range battery.",
    "The infotainment screen reboots every few minutes since the update.",
    "I am not happy: my car came back from service with a scratch.",
)


@dataclass
class Story:
    """What happened, for the test's expectations."""

    now: datetime
    cases: list[int] = field(default_factory=list)
    bot_answers: int = 0


class Teller:
    """Runs the flows, one transaction each, at the clock's time."""

    def __init__(self, rt: Runtime, clock: FrozenClock) -> None:
        self.rt, self.clock, self.n = rt, clock, 0

    async def tick(self, **delta: float) -> None:
        """Move time on and let the escalation worker fire what came due."""
        self.clock.advance(timedelta(**delta))
        await drain(self.rt)

    async def write(self, text: str, *, person: bool = False) -> tuple[str, int | None, int | None]:
        """A new customer's first message: (customer key, case id, bot message id)."""
        self.n += 1
        key = f"story-{self.n}"
        name = f"Customer {key.split('-')[-1]}"
        result = await webchat_says(
            self.rt, key, text, message_id=f"m{self.n}", display_name=name, wants_person=person
        )
        return key, result.case_id, result.bot_message_id

    async def press(self, who: str, message_id: int, button: str) -> None:
        """The customer presses a button under a bot answer."""
        async with self.rt.transaction() as session:
            customer = await self._customer(session, who)
            await press_button(session, self.rt, customer=customer, message_id=message_id, button=button)

    async def reply(self, case_id: int, text: str = "Thanks, we are looking into it.") -> None:
        """The case's assignee answers publicly."""
        async with self.rt.transaction() as session:
            case = await session.get(Case, case_id)
            assert case is not None and case.assignee_id is not None
            staff = await session.get(Staff, case.assignee_id)
            assert staff is not None
            await staff_flows.staff_reply(session, self.rt, staff=staff, group_id=case.group_id, body=text)

    async def resolve(self, case_id: int, score: int | None = None) -> None:
        """The assignee resolves; the customer rates when given a score."""
        async with self.rt.transaction() as session:
            case = await session.get(Case, case_id)
            assert case is not None and case.assignee_id is not None
            staff = await session.get(Staff, case.assignee_id)
            assert staff is not None
            await staff_flows.resolve_case(session, self.rt, staff=staff, case_id=case_id)
            customer_id = case.group.customer_id
        if score is not None:
            async with self.rt.transaction() as session:
                await staff_flows.rate_case(
                    session, self.rt, customer_id=customer_id, case_id=case_id, score=score
                )

    async def _customer(self, session: AsyncSession, who: str) -> Customer:
        customer = await session.scalar(
            select(Customer)
            .join(ChannelIdentity, ChannelIdentity.customer_id == Customer.id)
            .where(ChannelIdentity.external_id == who)
        )
        assert customer is not None
        return customer


async def tell(rt: Runtime, clock: FrozenClock) -> Story:
    """Play the five days; leaves the clock at "now"."""
    clock.set(FIRST_DAY)
    teller = Teller(rt, clock)
    story = Story(now=FIRST_DAY)
    for day in range(DAYS):
        clock.set(FIRST_DAY + timedelta(days=day))
        last = day == DAYS - 1
        # Bot answers: one settles the question, one is marked not helpful on some days.
        for i, question in enumerate(FAQ[: 2 + day % 2]):
            who, _case, bot_id = await teller.write(question)
            if bot_id is not None:
                story.bot_answers += 1
                if i == 1 and day % 2 == 0:
                    await teller.press(who, bot_id, "not_helpful")
            await teller.tick(minutes=1)
        opened = []
        for question in QUESTIONS[: 3 + day % 2]:
            _who, case_id, _bot = await teller.write(question, person=True)
            assert case_id is not None
            opened.append(case_id)
            story.cases.append(case_id)
            await teller.tick(seconds=30)
        # The first is answered at once, the second late (a first-response breach), the rest later.
        await teller.reply(opened[0])
        await teller.tick(minutes=7)
        await teller.reply(opened[1], "Sorry for the wait, a colleague will call you today.")
        await teller.tick(minutes=20 + 10 * day)
        if not last:
            await teller.reply(opened[2])
            await teller.tick(hours=2)
            await teller.resolve(opened[0], score=5)
            await teller.resolve(opened[1], score=2 + day % 3)
            await teller.tick(hours=1)
            if len(opened) > 3:
                await teller.reply(opened[3])
                await teller.resolve(opened[3])  # asked to rate, never rated
    # The last day, late afternoon: one more case comes in and is about to miss its first response.
    clock.set(FIRST_DAY + timedelta(days=DAYS - 1, hours=7))
    await drain(rt)
    _who, case_id, _bot = await teller.write(QUESTIONS[0], person=True)
    assert case_id is not None
    story.cases.append(case_id)
    await teller.tick(minutes=4)
    await teller.resolve(story.cases[-3], score=4)  # today's rating
    story.now = clock.now()
    return story
