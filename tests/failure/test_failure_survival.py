"""Failure survival under Telegram webhook traffic (the CI-sized version of bench/failure.py).

2 web processes (`butler web --workers 2`) and 2 `butler worker`s on a private PostgreSQL and
Redis: SIGKILLs every 5 s while 1,500 messages flow, Redis stopped for 8 s, PostgreSQL restarted.
Nothing injected may be lost or stored twice, and no SLA rung may fire twice; outbound duplicates
are reported (goal 0).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import need
from tests.failure.harness import Result, Scenario, run_scenario
from tests.failure.services import PgCluster, RedisServer, missing_prerequisites

pytestmark = pytest.mark.integration
MESSAGES, RATE = 1500, 100.0  # 15 s of traffic each


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, PgCluster, RedisServer]]:
    """One private PostgreSQL cluster and Redis for the module (each scenario gets its own database)."""
    missing = missing_prerequisites()
    need(None if missing else "ok", ", ".join(missing))
    base = tmp_path_factory.mktemp("failure")
    pg, redis = PgCluster(), RedisServer(base)
    pg.init()
    pg.start()
    redis.start()
    try:
        yield base, pg, redis
    finally:
        redis.stop()
        pg.remove()


def _check(result: Result, record_property: pytest.RecordProperty) -> dict[str, object]:
    """Assertions every scenario shares; the summary is printed for the CI log."""
    summary = result.summary()
    print(json.dumps(summary, ensure_ascii=False))
    record_property("failure_summary", json.dumps(summary))
    assert summary["injected"] == MESSAGES
    assert summary["lost"] == 0, summary
    assert summary["stored_twice"] == 0 and summary["unexpected"] == 0, summary
    assert summary["sla_steps"] > 0 and summary["sla_steps_duplicated"] == 0, summary
    assert summary["outbound_missing"] == 0, summary
    assert "500" not in summary["webhook_statuses"], summary  # type: ignore[operator]
    return summary


async def test_sigkills_during_traffic_lose_nothing(
    services: tuple[Path, PgCluster, RedisServer], record_property: pytest.RecordProperty
) -> None:
    base, pg, redis = services
    # Kills at 4, 8 and 12 s, inside the 15 s of traffic whatever the drain takes (a kill at 15 s
    # raced the end once the webhook drained within a second); the full run kills every 5 s until
    # it drained (bench/failure.py).
    scenario = Scenario(
        "kill", MESSAGES, RATE, users=150, kill_every=4.0, kills_for=16.0, settle_outbox=False
    )
    summary = _check(await run_scenario(scenario, base, pg, redis), record_property)
    assert summary["kills"] >= 3, summary  # type: ignore[operator]


async def test_redis_outage_keeps_accepting_and_live_updates_resume(
    services: tuple[Path, PgCluster, RedisServer], record_property: pytest.RecordProperty
) -> None:
    base, pg, redis = services
    scenario = Scenario("redis", MESSAGES, RATE, users=150, redis_down=(3.0, 8.0), settle_outbox=False)
    summary = _check(await run_scenario(scenario, base, pg, redis), record_property)
    recovery = summary["recovery"]
    assert isinstance(recovery, dict)
    assert recovery["live_before_outage"] is True
    during = recovery["accepted_during_outage"]
    assert during["posted"] > 0 and during["accepted"] == during["posted"], recovery
    assert recovery["live_resumed_after_s"] is not None, recovery


async def test_postgres_restart_answers_503_and_loses_nothing(
    services: tuple[Path, PgCluster, RedisServer], record_property: pytest.RecordProperty
) -> None:
    base, pg, redis = services
    scenario = Scenario("pg", MESSAGES, RATE, users=150, pg_down=(3.0, 5.0), settle_outbox=False)
    summary = _check(await run_scenario(scenario, base, pg, redis), record_property)
    recovery = summary["recovery"]
    assert isinstance(recovery, dict)
    assert recovery["statuses_while_down"].get("503", 0) > 0, recovery
    assert recovery["pg_first_accept_after_s"] is not None, recovery
