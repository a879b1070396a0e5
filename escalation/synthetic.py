"""Synthetic open cases with SLA timers in bulk, for load tests and benchmarks (never for the demo)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.conversations.models import Case
from bot.teams.models import ButlerGroup, Customer, Dealer, Membership, Staff
from escalation.models import RUNNING, SlaTimer
from escalation.service import iso

CHUNK = 5000


@dataclass(frozen=True)
class SyntheticSet:
    """What was created: staff ids by handle and the number of rungs that will come due."""

    staff: dict[str, int]
    case_ids: list[int]
    timers: int
    rungs: int


def _chunks(rows: Sequence[dict[str, Any]]) -> Iterator[Sequence[dict[str, Any]]]:
    for i in range(0, len(rows), CHUNK):
        yield rows[i : i + CHUNK]


async def _insert_ids(session: AsyncSession, table: Any, rows: list[dict[str, Any]]) -> list[int]:
    ids: list[int] = []
    for chunk in _chunks(rows):
        stmt = insert(table).returning(table.c.id, sort_by_parameter_order=True)
        ids.extend(r[0] for r in (await session.execute(stmt, list(chunk))).all())
    return ids


async def seed_staff(session: AsyncSession, *, now: datetime, tag: str = "") -> tuple[int, dict[str, int]]:
    """A dealer with an assignee, a backup of the same role, a lead and a manager."""
    dealer = Dealer(code=f"SYN{tag}", name=f"Synthetic load dealer {tag}", timezone="UTC")
    session.add(dealer)
    await session.flush()
    staff = {}
    for handle, role in (
        ("svc_a", "service"),
        ("svc_b", "service"),
        ("lead", "lead"),
        ("manager", "manager"),
    ):
        member = Staff(
            username=f"syn{tag}_{handle}",
            display_name=f"Synthetic {handle}",
            role=role,
            languages=["en"],
            dealer_id=dealer.id,
            capacity=10**9,  # the backup must always have room
            password_hash="!",
            created_at=now,
        )
        session.add(member)
        staff[handle] = member
    await session.flush()
    return dealer.id, {k: v.id for k, v in staff.items()}


async def seed_timers(
    session: AsyncSession,
    *,
    cases: int,
    groups: int,
    first_due: datetime,
    per_second: float,
    ladder: Sequence[tuple[str, float]],
    now: datetime,
    extra_idle_timers: bool = False,
    tag: str = "",
) -> SyntheticSet:
    """Open `cases` cases over `groups` customers, each with a first-response timer whose first rung
    comes due at first_due + i / per_second; `ladder` is (action, seconds after that) per rung.

    With extra_idle_timers every case also gets a resolution timer due far in the future, as real
    open cases have (it doubles the open timers without adding due rungs).
    """
    dealer_id, staff = await seed_staff(session, now=now, tag=tag)
    customer_ids = await _insert_ids(
        session,
        Customer.__table__,
        [
            {"display_name": f"syn{tag}-{i}", "locale": "en", "dealer_id": dealer_id, "created_at": now}
            for i in range(groups)
        ],
    )
    group_ids = await _insert_ids(
        session,
        ButlerGroup.__table__,
        [{"customer_id": c, "dealer_id": dealer_id, "created_at": now, "gaps": []} for c in customer_ids],
    )
    for chunk in _chunks(
        [
            {
                "group_id": g,
                "staff_id": staff["svc_a"],
                "role": "service",
                "joined_at": now,
                "reason": "formed",
            }
            for g in group_ids
        ]
    ):
        await session.execute(insert(Membership), list(chunk))
    if session.get_bind().dialect.name == "postgresql":
        return await _seed_pg(
            session,
            staff=staff,
            dealer_id=dealer_id,
            cases=cases,
            first_due=first_due,
            per_second=per_second,
            ladder=ladder,
            now=now,
            extra_idle_timers=extra_idle_timers,
        )
    case_rows = [
        {
            "group_id": group_ids[i % groups],
            "subject": f"synthetic case {i}",
            "category": "service",
            "priority": "normal",
            "status": "open",
            "assignee_id": staff["svc_a"],
            "routing_reason": "synthetic",
            "fields": {},
            "opened_at": now,
            "reopen_count": 0,
        }
        for i in range(cases)
    ]
    case_ids = await _insert_ids(session, Case.__table__, case_rows)
    del case_rows
    timer_rows = []
    for i, case_id in enumerate(case_ids):
        due = first_due + timedelta(seconds=i / per_second)
        steps = [
            {
                "action": action,
                "at": 300.0 + offset,
                "tell": False,
                "due": iso(due + timedelta(seconds=offset)),
            }
            for action, offset in ladder
        ]
        timer_rows.append(_timer_row(case_id, "first_response", due, steps, now))
        if extra_idle_timers:
            far = due + timedelta(days=30)
            idle = [{"action": "breach", "at": 86400.0, "tell": False, "due": iso(far)}]
            timer_rows.append(_timer_row(case_id, "resolution", far, idle, now))
    for chunk in _chunks(timer_rows):
        await session.execute(insert(SlaTimer), list(chunk))
    del timer_rows
    await session.flush()
    return SyntheticSet(
        staff=staff,
        case_ids=case_ids,
        timers=cases * (2 if extra_idle_timers else 1),
        rungs=cases * len(ladder),
    )


def _timer_row(
    case_id: int, metric: str, due: datetime, steps: list[dict[str, Any]], now: datetime
) -> dict[str, Any]:
    return {
        "case_id": case_id,
        "metric": metric,
        "cycle": 0,
        "policy": "synthetic",
        "calendar": "24x7",
        "target_seconds": steps[-1]["at"],
        "started_at": now,
        "due_at": due,
        "paused_seconds": 0.0,
        "pauses": [],
        "pause_when_waiting": True,
        "state": RUNNING,
        "ladder": steps,
        "next_step": 0,
        "next_due_at": due,
    }


# Server-side generation: a million rows in seconds instead of minutes of client-side inserts.
_PG_CASES = """
INSERT INTO cases (group_id, subject, category, priority, status, assignee_id, routing_reason, fields,
                   opened_at, reopen_count)
SELECT g.ids[1 + (i % array_length(g.ids, 1))], 'synthetic case ' || i, 'service', 'normal', 'open',
       :assignee, 'synthetic', '{}'::jsonb, CAST(:now AS timestamptz), 0
FROM generate_series(0, :n - 1) AS i,
     (SELECT array_agg(id ORDER BY id) AS ids FROM butler_groups WHERE dealer_id = :dealer) AS g
ORDER BY i
"""
_PG_TIMERS = """
INSERT INTO sla_timers (case_id, metric, cycle, policy, calendar, target_seconds, started_at, due_at,
                        paused_seconds, pauses, pause_when_waiting, state, ladder, next_step, next_due_at)
SELECT c.id, :metric, 0, 'synthetic', '24x7', 300, CAST(:now AS timestamptz), x.d, 0, '[]'::jsonb,
       true, 'running',
       (SELECT jsonb_agg(jsonb_build_object(
                  'action', s.action, 'at', 300 + s.off, 'tell', false,
                  'due', to_char((x.d + s.off * interval '1 second') AT TIME ZONE 'UTC',
                                 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')) ORDER BY s.ord)
          FROM unnest(CAST(:actions AS text[]), CAST(:offsets AS float8[]))
               WITH ORDINALITY AS s(action, off, ord)),
       0, x.d
FROM (SELECT id, row_number() OVER (ORDER BY id) - 1 AS i FROM cases
      WHERE group_id IN (SELECT id FROM butler_groups WHERE dealer_id = :dealer)) AS c,
     LATERAL (SELECT CAST(:first_due AS timestamptz)
                     + (c.i / CAST(:rate AS float8) + CAST(:shift AS float8)) * interval '1 second' AS d) AS x
"""


async def _seed_pg(
    session: AsyncSession,
    *,
    staff: dict[str, int],
    dealer_id: int,
    cases: int,
    first_due: datetime,
    per_second: float,
    ladder: Sequence[tuple[str, float]],
    now: datetime,
    extra_idle_timers: bool,
) -> SyntheticSet:
    from sqlalchemy import select, text

    await session.execute(
        text(_PG_CASES), {"assignee": staff["svc_a"], "now": now, "n": cases, "dealer": dealer_id}
    )
    runs = [("first_response", list(ladder), 0.0)]
    if extra_idle_timers:
        runs.append(("resolution", [("breach", 0.0)], 30 * 86400.0))
    for metric, steps, shift in runs:
        await session.execute(
            text(_PG_TIMERS),
            {
                "metric": metric,
                "now": now,
                "dealer": dealer_id,
                "first_due": first_due,
                "rate": float(per_second),
                "shift": shift,
                "actions": [a for a, _ in steps],
                "offsets": [float(o) for _, o in steps],
            },
        )
    case_ids = list(
        (
            await session.scalars(
                select(Case.id)
                .join(ButlerGroup, ButlerGroup.id == Case.group_id)
                .where(ButlerGroup.dealer_id == dealer_id)
                .order_by(Case.id)
            )
        ).all()
    )
    return SyntheticSet(staff=staff, case_ids=case_ids, timers=cases * len(runs), rungs=cases * len(ladder))
