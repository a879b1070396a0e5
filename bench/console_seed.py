# ruff: noqa: E501  (SQL text reads better unwrapped)
"""Seeding of bench/console_pages.py: 100,000 cases and 1,000,000 messages with server-side SQL.

5 dealers, 151 staff, 50,000 customers and butler groups, 100,000 cases spread over a year,
1,000,000 messages, their SLA clocks and events, case events; generate_series in one transaction.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

CUSTOMERS = 50_000
CASES = 100_000
MESSAGES = 1_000_000
DEALERS = 5
# Per dealer: 8 butlers, 8 sales, 8 service, 4 factory, a lead and a manager (30 staff).
ROLE_SLOTS = (("butler", 1, 8), ("sales", 9, 8), ("service", 17, 8), ("factory", 25, 4))
PER_DEALER = 30


# --- seeding -----------------------------------------------------------------------------------------

SEED_SQL = [
    # Deterministic pseudo-random numbers in [0, 1) from a row number and a salt.
    """CREATE FUNCTION pg_temp.rnd(i bigint, salt text) RETURNS float8 LANGUAGE sql IMMUTABLE AS
       $$ SELECT (hashtext($1::text || ':' || $2) & 2147483647)::float8 / 2147483648.0 $$""",
    """CREATE TEMP TABLE bench_now AS SELECT date_trunc('second', now()) AS t""",
    # The rows are consistent by construction: skip the per-row foreign-key triggers while seeding.
    """SET LOCAL session_replication_role = replica""",
    f"""INSERT INTO dealers (id, code, name, timezone)
        SELECT d, 'BD' || d, 'Bench Motors ' || d, 'Asia/Shanghai' FROM generate_series(1, {DEALERS}) d""",
    # Staff: per dealer slots 1-8 butler, 9-16 sales, 17-24 service, 25-28 factory, 29 lead, 30 manager.
    f"""INSERT INTO staff (id, username, display_name, role, languages, dealer_id, capacity, on_duty, active,
                          password_hash, ui_locale, created_at)
        SELECT (d - 1) * {PER_DEALER} + s,
               'd' || d || '_' || r.role || '_' || (s - r.first + 1),
               'Staff ' || d || '-' || s, r.role, '["zh-CN", "en"]'::jsonb, d, 30, s % 7 <> 0, true,
               :hash, 'en', (SELECT t FROM bench_now) - interval '400 days'
        FROM generate_series(1, {DEALERS}) d
        CROSS JOIN generate_series(1, {PER_DEALER}) s
        JOIN (VALUES ('butler', 1, 8), ('sales', 9, 16), ('service', 17, 24), ('factory', 25, 28),
                     ('lead', 29, 29), ('manager', 30, 30)) AS r(role, first, last)
          ON s BETWEEN r.first AND r.last""",
    f"""INSERT INTO staff (id, username, display_name, role, languages, dealer_id, capacity, on_duty, active,
                          password_hash, ui_locale, created_at)
        VALUES ({DEALERS * PER_DEALER + 1}, 'bench_admin', 'Bench Admin', 'admin', '["en"]'::jsonb, NULL, 30,
                true, true, :hash, 'en', (SELECT t FROM bench_now) - interval '400 days')""",
    f"""INSERT INTO customers (id, display_name, locale, phone, dealer_id, created_at)
        SELECT i, 'Customer ' || i, CASE WHEN i % 3 = 0 THEN 'en' ELSE 'zh-CN' END, NULL,
               i % {DEALERS} + 1, (SELECT t FROM bench_now) - interval '200 days'
        FROM generate_series(1, {CUSTOMERS}) i""",
    f"""INSERT INTO butler_groups (id, customer_id, dealer_id, created_at, gaps)
        SELECT i, i, i % {DEALERS} + 1, (SELECT t FROM bench_now) - interval '200 days', '[]'::jsonb
        FROM generate_series(1, {CUSTOMERS}) i""",
    # The team: one member per team role, spread evenly over the dealer's staff of that role.
    f"""INSERT INTO memberships (group_id, staff_id, role, joined_at, left_at, reason)
        SELECT g, (g % {DEALERS}) * {PER_DEALER} + r.first + (g / {DEALERS}) % r.n, r.role,
               (SELECT t FROM bench_now) - interval '200 days', NULL, 'formed'
        FROM generate_series(1, {CUSTOMERS}) g
        CROSS JOIN (VALUES ('butler', 1, 8), ('sales', 9, 8), ('service', 17, 8), ('factory', 25, 4))
             AS r(role, first, n)""",
    # Cases: uniform over the last 365 days, the two cases of a group half a year apart. Of those
    # opened in the last 2 days 70 % are still open, of the rest of the last 2 weeks 15 %.
    f"""CREATE TEMP TABLE bench_cases AS
        SELECT j, g, g % {DEALERS} + 1 AS d,
               CASE WHEN c < 0.25 THEN 'sales' WHEN c < 0.60 THEN 'service' WHEN c < 0.70 THEN 'factory'
                    WHEN c < 0.75 THEN 'complaint' ELSE 'general' END AS category,
               CASE WHEN p < 0.03 THEN 'urgent' WHEN p < 0.13 THEN 'high' WHEN p < 0.20 THEN 'low'
                    ELSE 'normal' END AS priority,
               age, (SELECT t FROM bench_now) - age AS opened_at, s1, s2, s3
        FROM (
          SELECT j, (j - 1) % {CUSTOMERS} + 1 AS g, pg_temp.rnd(j, 'cat') AS c, pg_temp.rnd(j, 'prio') AS p,
                 ((pg_temp.rnd((j - 1) % {CUSTOMERS} + 1, 'age') + CASE WHEN j > {CUSTOMERS} THEN 0.5 ELSE 0 END)
                   - floor(pg_temp.rnd((j - 1) % {CUSTOMERS} + 1, 'age')
                           + CASE WHEN j > {CUSTOMERS} THEN 0.5 ELSE 0 END)) * interval '365 days' AS age,
                 pg_temp.rnd(j, 's1') AS s1, pg_temp.rnd(j, 's2') AS s2, pg_temp.rnd(j, 's3') AS s3
          FROM generate_series(1, {CASES}) j
        ) x""",
    """ALTER TABLE bench_cases ADD COLUMN status text, ADD COLUMN fr_at timestamptz,
         ADD COLUMN resolved_at timestamptz, ADD COLUMN assignee bigint""",
    """UPDATE bench_cases SET status = CASE
         WHEN age < interval '2 days' AND s1 < 0.20 THEN 'open'
         WHEN age < interval '2 days' AND s1 < 0.40 THEN 'waiting_staff'
         WHEN age < interval '2 days' AND s1 < 0.70 THEN 'waiting_customer'
         WHEN age < interval '2 days' THEN 'resolved'
         WHEN age < interval '14 days' AND s1 < 0.05 THEN 'waiting_staff'
         WHEN age < interval '14 days' AND s1 < 0.15 THEN 'waiting_customer'
         WHEN s1 < 0.15 THEN 'resolved' ELSE 'closed' END""",
    # First reply 20 s - 7 min after opening (some late), resolution 30 min - 30 h later (never in the future).
    """UPDATE bench_cases SET
         fr_at = CASE WHEN status = 'open' THEN NULL
                      ELSE LEAST(opened_at + (20 + s2 * 400) * interval '1 second',
                                 (SELECT t FROM bench_now)) END,
         resolved_at = CASE WHEN status IN ('resolved', 'closed')
                            THEN LEAST(opened_at + (1800 + s3 * 106200) * interval '1 second',
                                       (SELECT t FROM bench_now) - interval '1 minute') END,
         assignee = (g % 5) * 30 + CASE
             WHEN category = 'sales' THEN 9 + (g / 5) % 8
             WHEN category = 'service' THEN 17 + (g / 5) % 8
             WHEN category = 'factory' THEN 25 + (g / 5) % 4
             ELSE 1 + (g / 5) % 8 END""",
    """UPDATE bench_cases SET resolved_at = GREATEST(resolved_at, fr_at) WHERE resolved_at IS NOT NULL""",
    """INSERT INTO cases (id, group_id, subject, category, priority, status, assignee_id, routing_reason, fields,
                          opened_at, first_response_at, resolved_at, closed_at, csat_asked_at, csat_score,
                          csat_comment, reopen_count)
       SELECT j, g, 'Question ' || j || ' about ' || category, category, priority, status, assignee,
              'bench', '{}'::jsonb, opened_at, fr_at, resolved_at,
              CASE WHEN status = 'closed' THEN resolved_at + interval '30 seconds' END,
              resolved_at,
              CASE WHEN resolved_at IS NOT NULL AND pg_temp.rnd(j, 'rated') < 0.7
                   THEN 1 + floor(sqrt(pg_temp.rnd(j, 'score')) * 5)::int END,
              NULL, 0
       FROM bench_cases""",
    # Messages 1-900,000: nine per case (customer, system promise, staff reply, ... one internal note).
    """INSERT INTO messages (id, group_id, case_id, author_kind, author_staff_id, channel, body, attachments,
                             internal, meta, created_at)
       SELECT (c.j - 1) * 9 + k + 1, c.g, c.j,
              CASE WHEN k = 1 THEN 'system'
                   WHEN k % 2 = 0 OR c.status = 'open' THEN 'customer' ELSE 'staff' END,
              CASE WHEN k % 2 = 1 AND k <> 1 AND c.status <> 'open' THEN c.assignee END,
              CASE WHEN c.j % 2 = 0 THEN 'webchat' ELSE 'telegram' END,
              'Message ' || k || ' of case ' || c.j || ': the car makes a noise when braking at low speed.',
              '[]'::jsonb, k = 5 AND c.status <> 'open', '{}'::jsonb,
              LEAST(c.opened_at + k * (60 + c.s2 * 1800) * interval '1 second',
                    (SELECT t FROM bench_now) - interval '1 second')
       FROM bench_cases c CROSS JOIN generate_series(0, 8) k""",
    # Messages 900,001-1,000,000: questions the bot answered (no case), 50,000 pairs.
    f"""INSERT INTO messages (id, group_id, case_id, author_kind, author_staff_id, channel, body, attachments,
                              internal, meta, created_at)
        SELECT 900000 + (i - 1) * 2 + k + 1, (i * 7919) % {CUSTOMERS} + 1, NULL,
               CASE WHEN k = 0 THEN 'customer' ELSE 'bot' END, NULL,
               CASE WHEN k = 0 THEN 'webchat' ELSE 'bot' END,
               CASE WHEN k = 0 THEN 'How often should I change the oil?' ELSE 'Every 10,000 km or 12 months.' END,
               '[]'::jsonb, false,
               CASE WHEN k = 0 THEN '{{}}'::jsonb
                    ELSE jsonb_build_object('topic', 'maintenance-interval', 'score', 0.8,
                         'feedback', CASE WHEN pg_temp.rnd(i, 'fb') < 0.1 THEN 'not_helpful'
                                          WHEN pg_temp.rnd(i, 'fb') < 0.4 THEN 'helpful' END) END,
               (SELECT t FROM bench_now) - pg_temp.rnd(i, 'bot') * interval '365 days' + k * interval '2 seconds'
        FROM generate_series(1, {(MESSAGES - 900_000) // 2}) i CROSS JOIN generate_series(0, 1) k""",
    # SLA clocks: first response (id 2j-1) and resolution (id 2j) per case; next response for 30 %.
    """INSERT INTO sla_timers (id, case_id, metric, cycle, policy, calendar, target_seconds, started_at, due_at,
                               paused_at, paused_seconds, pauses, pause_when_waiting, state, breached_at,
                               ended_at, ladder, next_step, next_due_at, replaced_by_id)
       SELECT 2 * j - 1, j, 'first_response', 0, 'default', '24x7', t.target, opened_at,
              opened_at + t.target * interval '1 second', NULL, 0, '[]'::jsonb, true,
              CASE WHEN fr_at IS NOT NULL THEN 'met'
                   WHEN opened_at + t.target * interval '1 second' < (SELECT t FROM bench_now) THEN 'breached'
                   ELSE 'running' END,
              CASE WHEN COALESCE(fr_at, (SELECT t FROM bench_now)) > opened_at + t.target * interval '1 second'
                   THEN opened_at + t.target * interval '1 second' END,
              fr_at,
              '[{"action": "warn", "at": 240}, {"action": "breach", "at": 300},
                {"action": "reassign", "at": 300}, {"action": "escalate_manager", "at": 1200}]'::jsonb,
              CASE WHEN fr_at IS NULL THEN 0 ELSE 4 END, NULL, NULL
       FROM bench_cases CROSS JOIN LATERAL (SELECT CASE WHEN priority = 'urgent' THEN 120 ELSE 300 END
                                              AS target) t""",
    """INSERT INTO sla_timers (id, case_id, metric, cycle, policy, calendar, target_seconds, started_at, due_at,
                               paused_at, paused_seconds, pauses, pause_when_waiting, state, breached_at,
                               ended_at, ladder, next_step, next_due_at, replaced_by_id)
       SELECT 2 * j, j, 'resolution', 0, 'default', '24x7', t.target, opened_at,
              opened_at + t.target * interval '1 second',
              CASE WHEN status = 'waiting_customer' THEN (SELECT t FROM bench_now) - interval '10 minutes' END,
              0, '[]'::jsonb, true,
              CASE WHEN resolved_at IS NOT NULL THEN 'met'
                   WHEN status = 'waiting_customer' THEN 'paused'
                   WHEN opened_at + t.target * interval '1 second' < (SELECT t FROM bench_now) THEN 'breached'
                   ELSE 'running' END,
              CASE WHEN COALESCE(resolved_at, (SELECT t FROM bench_now)) > opened_at + t.target * interval '1 second'
                   THEN opened_at + t.target * interval '1 second' END,
              resolved_at,
              '[{"action": "warn", "at": 64800}, {"action": "breach", "at": 86400},
                {"action": "escalate_manager", "at": 100800}]'::jsonb,
              CASE WHEN resolved_at IS NULL THEN 0 ELSE 3 END, NULL, NULL
       FROM bench_cases CROSS JOIN LATERAL (SELECT CASE WHEN category = 'factory' THEN 259200 ELSE 86400 END
                                              AS target) t""",
    f"""INSERT INTO sla_timers (id, case_id, metric, cycle, policy, calendar, target_seconds, started_at, due_at,
                               paused_at, paused_seconds, pauses, pause_when_waiting, state, breached_at,
                               ended_at, ladder, next_step, next_due_at, replaced_by_id)
        SELECT 2 * {CASES} + j, j, 'next_response', 0, 'default', '24x7', 900, fr_at + interval '20 minutes',
               fr_at + interval '35 minutes', NULL, 0, '[]'::jsonb, true,
               'met', CASE WHEN s3 < 0.15 THEN fr_at + interval '35 minutes' END,
               fr_at + interval '20 minutes' + (60 + s3 * 1200) * interval '1 second',
               '[]'::jsonb, 3, NULL, NULL
        FROM bench_cases WHERE s2 < 0.3 AND resolved_at IS NOT NULL
          AND resolved_at > fr_at + interval '45 minutes'""",
    # SLA events: applied, warned (past 80 %), breached, escalated (breached first responses), met.
    """INSERT INTO sla_events (case_id, timer_id, metric, kind, step, at, staff_id, target_staff_id, data)
       SELECT t.case_id, t.id, t.metric, 'applied', NULL, t.started_at, c.assignee, NULL,
              jsonb_build_object('policy', 'default', 'target', t.target_seconds, 'calendar', '24x7',
                                 'reason', 'opened')
       FROM sla_timers t JOIN bench_cases c ON c.j = t.case_id""",
    """INSERT INTO sla_events (case_id, timer_id, metric, kind, step, at, staff_id, target_staff_id, data)
       SELECT t.case_id, t.id, t.metric, 'warned', 0, t.started_at + 0.8 * t.target_seconds * interval '1 second',
              c.assignee, c.assignee, '{"action": "warn"}'::jsonb
       FROM sla_timers t JOIN bench_cases c ON c.j = t.case_id
       WHERE COALESCE(t.ended_at, (SELECT t FROM bench_now))
             > t.started_at + 0.8 * t.target_seconds * interval '1 second'""",
    """INSERT INTO sla_events (case_id, timer_id, metric, kind, step, at, staff_id, target_staff_id, data)
       SELECT t.case_id, t.id, t.metric, 'breached', 1, t.breached_at, c.assignee, (c.g % 5) * 30 + 29,
              jsonb_build_object('action', 'breach', 'target', t.target_seconds)
       FROM sla_timers t JOIN bench_cases c ON c.j = t.case_id WHERE t.breached_at IS NOT NULL""",
    """INSERT INTO sla_events (case_id, timer_id, metric, kind, step, at, staff_id, target_staff_id, data)
       SELECT t.case_id, t.id, t.metric, 'escalated', 3, t.breached_at + interval '15 minutes', c.assignee,
              (c.g % 5) * 30 + 30, '{"action": "escalate_manager", "to": "manager"}'::jsonb
       FROM sla_timers t JOIN bench_cases c ON c.j = t.case_id
       WHERE t.breached_at IS NOT NULL AND t.metric = 'first_response'
         AND COALESCE(t.ended_at, (SELECT t FROM bench_now)) > t.breached_at + interval '15 minutes'""",
    """INSERT INTO sla_events (case_id, timer_id, metric, kind, step, at, staff_id, target_staff_id, data)
       SELECT t.case_id, t.id, t.metric, 'met', NULL, t.ended_at, c.assignee, NULL,
              jsonb_build_object('reason', 'staff replied', 'target', t.target_seconds,
                                 'elapsed', extract(epoch FROM t.ended_at - t.started_at),
                                 'late', t.breached_at IS NOT NULL)
       FROM sla_timers t JOIN bench_cases c ON c.j = t.case_id WHERE t.state = 'met'""",
    # Case history: opened, and the status changes of resolved and closed cases.
    """INSERT INTO case_events (case_id, at, kind, from_status, to_status, actor_staff_id, data)
       SELECT j, opened_at, 'opened', NULL, 'open', NULL, '{"reason": "bench"}'::jsonb FROM bench_cases
       UNION ALL
       SELECT j, fr_at, 'status', 'open', 'waiting_customer', assignee, '{}'::jsonb
       FROM bench_cases WHERE fr_at IS NOT NULL
       UNION ALL
       SELECT j, resolved_at, 'status', 'waiting_customer', 'resolved', assignee, '{}'::jsonb
       FROM bench_cases WHERE resolved_at IS NOT NULL""",
]

SEQUENCES = [
    "dealers",
    "staff",
    "customers",
    "butler_groups",
    "memberships",
    "cases",
    "messages",
    "sla_timers",
]


async def seed(engine: AsyncEngine, password_hash: str) -> dict[str, int]:
    """Fill an empty migrated database; returns row counts."""
    async with engine.begin() as conn:
        for sql in SEED_SQL:
            started = time.perf_counter()
            await conn.execute(text(sql), {"hash": password_hash} if ":hash" in sql else {})
            first = " ".join(sql.split())[:70]
            print(f"  {time.perf_counter() - started:6.1f}s  {first}", flush=True)
        for table in SEQUENCES:
            await conn.execute(
                text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
            )
        await conn.execute(text("DROP TABLE bench_cases"))
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE"))
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from knowledge import service as knowledge_service

    async with async_sessionmaker(engine)() as session, session.begin():
        await knowledge_service.load_demo_if_empty(session, now=datetime.now(UTC))
    return await counts(engine)


async def counts(engine: AsyncEngine) -> dict[str, int]:
    """Rows per table of interest."""
    out = {}
    async with engine.connect() as conn:
        for table in (
            "cases",
            "messages",
            "sla_timers",
            "sla_events",
            "case_events",
            "butler_groups",
            "staff",
        ):
            out[table] = int((await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())
    return out
