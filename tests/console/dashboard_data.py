"""Hand-built dashboard data with known answers (now = Monday 2026-11-02 09:00 UTC, the FrozenClock).

Two dealers: A (groups g1, g2, g3, g5, g6) and B (g4). Cases, SLA clocks and events, bot answers:

| case | group | opened       | first reply  | resolved     | status           | CSAT asked / score |
| c1   | g1 A  | 10-31 10:00  | 10:03        | 10-31 12:00  | closed           | 10-31 12:00 / 5    |
| c2   | g2 A  | 11-01 08:00  | 08:10 (late) | 11-01 20:00  | closed           | 11-01 20:00 / 2    |
| c4   | g4 B  | 11-01 09:00  | 09:01        | -            | waiting_customer |                    |
| c3   | g3 A  | 11-02 08:56  | -            | -            | open (at risk)   |                    |
| c5   | g1 A  | 11-02 08:30  | -            | -            | open (breached)  |                    |
| c6   | g2 A  | 11-02 06:00  | -            | 11-02 07:00  | resolved         | 11-02 07:00 / -    |
| c7   | g5 A  | 11-02 05:00  | -            | 11-02 06:00  | closed           | 11-02 06:00 / 4    |
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.clock import FrozenClock
from bot.conversations.models import Case, Message
from bot.migrate import upgrade_async
from bot.runtime import Runtime
from bot.settings import Settings
from bot.teams.models import ButlerGroup, Customer, Dealer, Staff
from escalation.models import SlaEvent, SlaTimer
from tests.conftest import PG_URL, drop_pg_database, make_pg_database, need, settings_for


@contextlib.asynccontextmanager
async def migrated_settings(backend: str, folder: Path) -> AsyncIterator[Settings]:
    """Settings on a fresh migrated database of a backend, for module-scoped fixtures."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{folder / 'butler.db'}"
        await upgrade_async(url)
    else:
        base = need(PG_URL, "BUTLER_TEST_DATABASE_URL")
        url = await make_pg_database(base)
        await upgrade_async(url)
    try:
        yield settings_for(url)
    finally:
        if backend != "sqlite":
            await drop_pg_database(PG_URL or "", url)


def frozen() -> FrozenClock:
    """The tests' clock: Monday 2026-11-02 09:00 UTC."""
    return FrozenClock()


def at(day: int, hh: int, mm: int = 0, month: int = 11) -> datetime:
    """An instant in Oct/Nov 2026, UTC."""
    return datetime(2026, month, day, hh, mm, tzinfo=UTC)


@dataclass
class World:
    """Ids of what was built."""

    dealer_a: int
    dealer_b: int
    staff: dict[str, int]
    groups: dict[str, int]
    cases: dict[str, int]


async def build_world(rt: Runtime, *, password_hash: str = "x") -> World:
    """Insert the table above with its clocks, events and messages."""
    async with rt.transaction() as session:
        dealer_a = Dealer(code="DA", name="Dealer A", timezone="UTC")
        dealer_b = Dealer(code="DB", name="Dealer B", timezone="UTC")
        session.add_all([dealer_a, dealer_b])
        await session.flush()
        staff: dict[str, Staff] = {}
        for handle, role, dealer in (
            ("w_butler", "butler", dealer_a),
            ("w_service", "service", dealer_a),
            ("w_sales", "sales", dealer_b),
            ("w_lead", "lead", dealer_a),
            ("w_lead_b", "lead", dealer_b),
            ("w_manager", "manager", dealer_a),
            ("w_admin", "admin", None),
        ):
            staff[handle] = Staff(
                username=handle,
                display_name=f"Staff {handle}",
                role=role,
                languages=["en"],
                dealer_id=dealer.id if dealer else None,
                capacity=10,
                on_duty=True,
                active=True,
                password_hash=password_hash,
                created_at=at(1, 0, month=10),
            )
        session.add_all(staff.values())
        await session.flush()
        groups: dict[str, ButlerGroup] = {}
        for name, dealer in (
            ("g1", dealer_a),
            ("g2", dealer_a),
            ("g3", dealer_a),
            ("g4", dealer_b),
            ("g5", dealer_a),
            ("g6", dealer_a),
        ):
            customer = Customer(
                display_name=f"Customer {name}",
                locale="en",
                dealer_id=dealer.id,
                created_at=at(1, 0, month=10),
            )
            session.add(customer)
            await session.flush()
            groups[name] = ButlerGroup(
                customer_id=customer.id, dealer_id=dealer.id, created_at=at(1, 0, month=10)
            )
            session.add(groups[name])
        await session.flush()
        butler, service, sales = staff["w_butler"].id, staff["w_service"].id, staff["w_sales"].id

        def new_case(group: str, opened: datetime, status: str, assignee: int, **kw: Any) -> Case:
            c = Case(
                group_id=groups[group].id,
                subject=f"case in {group} at {opened:%m-%d %H:%M}",
                category="service",
                priority="normal",
                status=status,
                assignee_id=assignee,
                routing_reason="test",
                fields={},
                opened_at=opened,
                **kw,
            )
            session.add(c)
            return c

        cases = {
            "c1": new_case(
                "g1",
                at(31, 10, month=10),
                "closed",
                butler,
                first_response_at=at(31, 10, 3, month=10),
                resolved_at=at(31, 12, month=10),
                closed_at=at(31, 13, month=10),
                csat_asked_at=at(31, 12, month=10),
                csat_score=5,
            ),
            "c2": new_case(
                "g2",
                at(1, 8),
                "closed",
                butler,
                first_response_at=at(1, 8, 10),
                resolved_at=at(1, 20),
                closed_at=at(1, 21),
                csat_asked_at=at(1, 20),
                csat_score=2,
            ),
            "c4": new_case("g4", at(1, 9), "waiting_customer", sales, first_response_at=at(1, 9, 1)),
            "c3": new_case("g3", at(2, 8, 56), "open", service),
            "c5": new_case("g1", at(2, 8, 30), "open", service),
            "c6": new_case("g2", at(2, 6), "resolved", butler, resolved_at=at(2, 7), csat_asked_at=at(2, 7)),
            "c7": new_case(
                "g5",
                at(2, 5),
                "closed",
                butler,
                resolved_at=at(2, 6),
                closed_at=at(2, 6, 30),
                csat_asked_at=at(2, 6),
                csat_score=4,
            ),
        }
        await session.flush()

        async def clock(
            case: str,
            metric: str,
            started: datetime,
            target: float,
            state: str,
            *,
            staff_id: int,
            ended: datetime | None = None,
            breached: datetime | None = None,
            business: float | None = None,
            replaces: int | None = None,
        ) -> SlaTimer:
            from datetime import timedelta

            due = started + timedelta(seconds=target)
            timer = SlaTimer(
                case_id=cases[case].id,
                metric=metric,
                cycle=0,
                policy="default",
                calendar="24x7",
                target_seconds=target,
                started_at=started,
                due_at=due,
                paused_seconds=0.0,
                pauses=[],
                pause_when_waiting=True,
                state=state,
                breached_at=breached,
                ended_at=ended,
                ladder=[],
                next_step=0,
            )
            session.add(timer)
            await session.flush()
            data: dict[str, Any] = {"policy": "default", "target": target}
            if replaces is not None:
                data["replaces"] = replaces
            event = SlaEvent(case_id=timer.case_id, timer_id=timer.id, metric=metric, kind="applied")
            event.at, event.staff_id, event.data, event.step = started, staff_id, data, None
            session.add(event)
            if breached is not None:
                session.add(
                    SlaEvent(
                        case_id=timer.case_id,
                        timer_id=timer.id,
                        metric=metric,
                        kind="breached",
                        step=1,
                        at=breached,
                        staff_id=staff_id,
                        data={},
                    )
                )
            if state == "met" and ended is not None:
                elapsed = business if business is not None else (ended - started).total_seconds()
                session.add(
                    SlaEvent(
                        case_id=timer.case_id,
                        timer_id=timer.id,
                        metric=metric,
                        kind="met",
                        at=ended,
                        staff_id=staff_id,
                        data={"elapsed": elapsed, "target": target},
                    )
                )
            return timer

        await clock(
            "c1",
            "first_response",
            at(31, 10, month=10),
            300,
            "met",
            staff_id=butler,
            ended=at(31, 10, 3, month=10),
        )
        await clock(
            "c1",
            "resolution",
            at(31, 10, month=10),
            86400,
            "met",
            staff_id=butler,
            ended=at(31, 12, month=10),
        )
        await clock(
            "c2",
            "first_response",
            at(1, 8),
            300,
            "met",
            staff_id=butler,
            ended=at(1, 8, 10),
            breached=at(1, 8, 5),
            business=500,
        )
        await clock("c2", "resolution", at(1, 8), 86400, "met", staff_id=butler, ended=at(1, 20))
        await clock("c4", "first_response", at(1, 9), 300, "met", staff_id=sales, ended=at(1, 9, 1))
        await clock("c4", "resolution", at(1, 9), 86400, "paused", staff_id=sales)
        await clock("c3", "first_response", at(2, 8, 56), 300, "running", staff_id=service)
        await clock(
            "c5", "first_response", at(2, 8, 30), 300, "breached", staff_id=service, breached=at(2, 8, 35)
        )
        old = await clock(
            "c5", "resolution", at(2, 8, 30), 86400, "stopped", staff_id=service, ended=at(2, 8, 40)
        )
        new = await clock(
            "c5", "resolution", at(2, 8, 30), 172800, "running", staff_id=service, replaces=old.id
        )
        new.started_at = at(2, 8, 30)
        old.replaced_by_id = new.id
        # The re-application's event is recorded when it happened, not at the clock's start.
        await session.flush()
        session.add(
            SlaEvent(
                case_id=cases["c5"].id,
                timer_id=None,
                metric="first_response",
                kind="escalated",
                step=None,
                at=at(2, 8, 50),
                staff_id=service,
                target_staff_id=staff["w_lead"].id,
                data={"to": "lead"},
            )
        )

        def msg(
            group: str, kind: str, when: datetime, *, internal: bool = False, feedback: str | None = None
        ) -> None:
            meta: dict[str, Any] = {"topic": f"topic-{group}", "feedback": feedback} if kind == "bot" else {}
            session.add(
                Message(
                    group_id=groups[group].id,
                    author_kind=kind,
                    author_staff_id=service if kind == "staff" else None,
                    channel="bot" if kind == "bot" else "console",
                    body=f"{kind} in {group}",
                    internal=internal,
                    meta=meta,
                    created_at=when,
                )
            )

        msg("g3", "bot", at(2, 8))  # case c3 opened in g3 at 08:56: not resolved
        msg("g2", "bot", at(2, 8, 20))  # nothing after it: resolved
        msg("g1", "bot", at(2, 7), feedback="helpful")  # case c5 opened in g1 at 08:30: not resolved
        msg("g4", "bot", at(2, 8, 40), feedback="not_helpful")  # dealer B, marked not helpful
        msg("g5", "bot", at(2, 8))  # only an internal note after it: resolved
        msg("g5", "staff", at(2, 8, 10), internal=True)
        msg("g6", "bot", at(2, 8))  # a public staff reply after it: not resolved
        msg("g6", "staff", at(2, 8, 30))
        msg(
            "g3", "bot", at(1, 7)
        )  # 11-01: c3 opens in g3 almost 26 h later, beyond the 24 h window: resolved
    return World(
        dealer_a=dealer_a.id,
        dealer_b=dealer_b.id,
        staff={k: v.id for k, v in staff.items()},
        groups={k: v.id for k, v in groups.items()},
        cases={k: v.id for k, v in cases.items()},
    )
