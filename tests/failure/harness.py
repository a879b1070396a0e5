"""Failure scenarios: Telegram traffic through the webhook while processes, Redis or PostgreSQL fail.

The Bot API test server runs in this process and delivers updates to `butler web --workers N`
(redelivering on any non-2xx, as Telegram does); `butler worker` processes send the outbox and run
the SLA ladder. A scenario injects customer messages at a steady rate, breaks something on a
schedule, waits until every update was accepted and the outbox drained, then counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.botapi import BotApiServer
from tests.failure.checks import Counts, collect
from tests.failure.probes import LiveProbe, outbox_backlog
from tests.failure.services import Butler, PgCluster, RedisServer, free_port
from tests.live import seed_database

STAFF_CHAT = -1009000000077
SECRET = "failure-webhook-secret"
# Short SLA targets so ladders fire during the run (and workers die in the middle of them).
FAST_POLICIES = """
ladders:
  fast:
    - {action: warn, at: 0.5}
    - {action: breach, at: 1.0}
    - {action: reassign, after: 0s}
    - {action: escalate_manager, after: 3s}
defaults:
  calendar: 24x7
  targets: {first_response: 4s, next_response: 4s, resolution: 12s}
  ladders: {first_response: fast, next_response: fast, resolution: fast}
policies:
  - key: default
    match: {}
"""
# Some the knowledge base answers, some open cases (SLA clocks), some join an open case.
TEXTS = [
    "How often should I service my car?",
    "多久做一次保养？",
    "My car makes a strange noise when braking, #{n}",
    "我想找人工客服 {n}",
    "The invoice for my last repair looks wrong ({n})",
    "Do electric cars need scheduled maintenance too?",
    "车机屏幕黑屏了，第{n}次",
    "thanks, and one more thing: {n}",
]


@dataclass
class Scenario:
    """What to inject and what to break."""

    name: str
    messages: int
    rate: float  # injected messages per second
    users: int = 200
    web_workers: int = 2
    workers: int = 2
    kill_every: float | None = None  # SIGKILL a random web or worker process this often
    kills_for: float | None = None  # stop killing after this many seconds (default: until drained)
    redis_down: tuple[float, float] | None = None  # (after seconds, for seconds)
    pg_down: tuple[float, float] | None = None  # (after seconds, for seconds)
    drain_timeout: float = 300.0
    # Wait for the whole outbox to be sent before counting (outbound duplicates of a killed worker
    # show up only after its 60 s leases expire); the CI version counts what was sent by then.
    settle_outbox: bool = True
    seed: int = 7


@dataclass
class Result:
    """A scenario's outcome."""

    scenario: Scenario
    counts: Counts
    inject_seconds: float = 0.0
    drain_seconds: float = 0.0
    kills: list[str] = field(default_factory=list)
    restarts: int = 0
    recovery: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    injected: list[tuple[int, int]] = field(default_factory=list)  # (chat id, message id)

    def summary(self) -> dict[str, Any]:
        """JSON-friendly."""
        return {
            "scenario": self.scenario.name,
            "messages": self.scenario.messages,
            "rate": self.scenario.rate,
            "inject_seconds": round(self.inject_seconds, 1),
            "drain_seconds": round(self.drain_seconds, 1),
            "kills": len(self.kills),
            "kill_roles": {r: sum(1 for k in self.kills if k == r) for r in ("web", "worker")},
            "worker_restarts": self.restarts,
            **self.counts.as_dict(),
            "recovery": self.recovery,
            "errors": self.errors,
        }


def fast_policies(base: Path) -> Path:
    """Write the short SLA policies next to the run's data."""
    path = base / "policies.yaml"
    path.write_text(FAST_POLICIES)
    return path


async def prepare_database(pg: PgCluster, name: str) -> str:
    """A migrated database with the demo staff (cheap password hashes)."""
    url = await pg.create_database(name)
    await seed_database(url)
    return url


def butler_env(url: str, redis_url: str, server: BotApiServer, web_port: int, base: Path) -> dict[str, str]:
    """Environment of the Butler processes (nothing of the caller's BUTLER_* leaks in)."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("BUTLER_") and k != "PROMETHEUS_MULTIPROC_DIR"
    }
    env.update(
        BUTLER_DATABASE_URL=url,
        BUTLER_REDIS_URL=redis_url,
        BUTLER_SECRET_KEY="failure-secret-key",
        BUTLER_PUBLIC_URL=f"http://127.0.0.1:{web_port}",
        BUTLER_TELEGRAM_TOKEN=server.token,
        BUTLER_TELEGRAM_API_BASE_URL=server.url,
        BUTLER_TELEGRAM_STAFF_CHAT_ID=str(STAFF_CHAT),
        BUTLER_TELEGRAM_MODE="webhook",
        BUTLER_TELEGRAM_WEBHOOK_SECRET=SECRET,
        # The test server's flood limits are off; so are Butler's, or the outbox would set the pace.
        BUTLER_TELEGRAM_OVERALL_PER_SECOND="2000",
        BUTLER_TELEGRAM_CHAT_PER_SECOND="200",
        BUTLER_TELEGRAM_GROUP_PER_MINUTE="1000000",
        BUTLER_OUTBOX_POLL_SECONDS="0.2",
        BUTLER_KB_SEMANTIC="off",
        BUTLER_SLA_POLICIES_FILE=str(fast_policies(base)),
        BUTLER_MEDIA_DIR=str(base / "media"),
        BUTLER_LOG_LEVEL="WARNING",
    )
    return env


async def run_scenario(scenario: Scenario, base: Path, pg: PgCluster, redis: RedisServer) -> Result:
    """Run one scenario against the given (running) PostgreSQL and Redis; returns the counts."""
    rng = random.Random(scenario.seed)
    url = await prepare_database(pg, f"butler_{scenario.name}")
    web_port = free_port()
    async with BotApiServer(webhook_retry_base=0.2, webhook_retry_max=2.0, webhook_timeout=10.0) as server:
        server.supergroup(STAFF_CHAT, "Butler staff", bot_rights={"can_manage_topics": True})
        logs = base / f"logs-{scenario.name}"
        logs.mkdir(exist_ok=True)
        butler = Butler(
            butler_env(url, redis.url, server, web_port, base),
            web_port,
            web_workers=scenario.web_workers,
            workers=scenario.workers,
            log_dir=logs,
        )
        result = Result(scenario, Counts())
        try:
            await asyncio.to_thread(butler.start)  # inside: a process that fails to start stops the rest
            await server.wait_until(lambda: server.bot.webhook is not None, timeout=60)
            await _drive(scenario, server, butler, pg, redis, url, rng, result)
        finally:
            await asyncio.to_thread(butler.stop)
        result.kills = [role for _, role, _ in butler.kills]
        result.restarts = butler.restarts
        result.counts = await collect(url, server, set(result.injected), STAFF_CHAT)
    return result


async def _drive(
    scenario: Scenario,
    server: BotApiServer,
    butler: Butler,
    pg: PgCluster,
    redis: RedisServer,
    url: str,
    rng: random.Random,
    result: Result,
) -> None:
    """Inject, break things, wait for the backlog to drain."""
    users = [
        server.user(700_000 + i, f"Owner {i}", language_code=rng.choice(["en", "zh-hans"]))
        for i in range(scenario.users)
    ]
    stop = asyncio.Event()
    probe = LiveProbe(butler.url) if scenario.redis_down else None
    tasks = [asyncio.create_task(_supervise(butler, stop))]
    if scenario.kill_every:
        kill_stop = asyncio.Event()
        tasks.append(asyncio.create_task(_killer(butler, scenario.kill_every, rng, kill_stop, result)))
        tasks.append(asyncio.create_task(_relay(stop, kill_stop, scenario.kills_for)))
    if probe is not None:
        await probe.start()
        tasks.append(asyncio.create_task(probe.run(stop)))
    started = time.monotonic()
    outage = asyncio.create_task(_outages(scenario, pg, redis, server, probe, result))
    try:
        for n in range(scenario.messages):
            due = started + n / scenario.rate
            if (delay := due - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            user = users[n % len(users)]
            message = await user.send_text(rng.choice(TEXTS).format(n=n))
            result.injected.append((int(message["chat"]["id"]), int(message["message_id"])))
        result.inject_seconds = time.monotonic() - started
        await outage
        drain_started = time.monotonic()
        await server.wait_until(lambda: not server.pending_updates(), timeout=scenario.drain_timeout)
        stop.set()  # no more kills: let the outbox settle with every process up
        await asyncio.gather(*tasks, return_exceptions=True)
        await _wait_all_up(butler)
        if scenario.settle_outbox and not await _wait_outbox(url, scenario.drain_timeout):
            result.errors.append("outbox not drained in time (see outbox_left)")
        result.drain_seconds = time.monotonic() - drain_started
    finally:
        stop.set()
        outage.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(outage, *tasks, return_exceptions=True)
        if probe is not None:
            await probe.close()
            result.recovery.update(probe.report())
    for role in ("web", "worker"):
        times = result.recovery.get(f"{role}_recovery_s")
        if times:
            result.recovery[f"{role}_recovery_s"] = {
                "median": round(statistics.median(times), 2),
                "max": max(times),
                "n": len(times),
            }


async def _supervise(butler: Butler, stop: asyncio.Event) -> None:
    """systemd's Restart=always for the worker processes."""
    while not stop.is_set():
        await asyncio.to_thread(butler.supervise)
        await asyncio.sleep(0.2)


async def _relay(stop: asyncio.Event, kill_stop: asyncio.Event, after: float | None) -> None:
    """Stop the killer with everything else, or after `after` seconds."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), after)
    kill_stop.set()


async def _killer(
    butler: Butler, every: float, rng: random.Random, stop: asyncio.Event, result: Result
) -> None:
    """SIGKILL a random web worker or worker process every `every` seconds; time each recovery."""
    recoveries: list[asyncio.Task[None]] = []
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
                return
            role, _pid = await asyncio.to_thread(butler.kill_random, rng)
            recoveries.append(asyncio.create_task(_time_recovery(butler, role, result)))
    finally:
        await asyncio.gather(*recoveries, return_exceptions=True)


async def _time_recovery(butler: Butler, role: str, result: Result) -> None:
    """Seconds from a kill until every process is back and answering /healthz."""
    killed = time.monotonic()
    await asyncio.sleep(0.3)  # let the supervisor notice
    while time.monotonic() - killed < 120:
        if butler.all_up() and await asyncio.to_thread(butler.healthy):
            result.recovery.setdefault(f"{role}_recovery_s", []).append(round(time.monotonic() - killed, 2))
            return
        await asyncio.sleep(0.1)


async def _outages(
    scenario: Scenario,
    pg: PgCluster,
    redis: RedisServer,
    server: BotApiServer,
    probe: LiveProbe | None,
    result: Result,
) -> None:
    """Stop Redis or PostgreSQL for a while, then bring it back; note how long recovery took."""
    if scenario.redis_down:
        after, seconds = scenario.redis_down
        await asyncio.sleep(after)
        if probe is not None:
            result.recovery["live_before_outage"] = await probe.wait_live(15)
        await asyncio.to_thread(redis.stop)
        down_at = time.monotonic()
        await asyncio.sleep(seconds)
        if probe is not None:
            result.recovery["accepted_during_outage"] = probe.accepted_between(down_at, time.monotonic())
        await asyncio.to_thread(redis.start)
        if probe is not None:
            probe.back_at = time.monotonic()
            await probe.wait_live(30)  # measured before the run ends and the probe stops posting
    if scenario.pg_down:
        after, seconds = scenario.pg_down
        await asyncio.sleep(after)
        await asyncio.to_thread(pg.stop, "fast")
        down_at = time.monotonic()
        await asyncio.sleep(seconds)
        await asyncio.to_thread(pg.start)
        up_at = time.monotonic()
        attempts = [a for a in server.delivery_attempts() if a.at >= down_at]
        during = [a for a in attempts if a.at < up_at]
        result.recovery["pg_down_s"] = round(up_at - down_at, 1)
        result.recovery["statuses_while_down"] = _statuses(during)
        with contextlib.suppress(TimeoutError):
            await server.wait_until(
                lambda: any(a.ok for a in server.delivery_attempts() if a.at > up_at), timeout=60
            )
        first_ok = min((a.at for a in server.delivery_attempts() if a.at > up_at and a.ok), default=None)
        result.recovery["pg_first_accept_after_s"] = None if first_ok is None else round(first_ok - up_at, 2)


def _statuses(attempts: list[Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for a in attempts:
        key = str(a.status) if a.status is not None else "no answer"
        out[key] = out.get(key, 0) + 1
    return out


async def _wait_all_up(butler: Butler, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while not butler.all_up():
        if time.monotonic() > deadline:
            raise TimeoutError("processes did not come back")
        await asyncio.to_thread(butler.supervise)
        await asyncio.sleep(0.2)


async def _wait_outbox(url: str, limit: float) -> bool:
    """Until no Telegram outbox row is pending or being sent; False if that took too long."""
    deadline = time.monotonic() + limit
    while await outbox_backlog(url) > 0:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.5)
    return True
