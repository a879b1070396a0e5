"""Load benchmark: customer messages/s end to end, p50/p99 latency, CPU and RSS per process.

Simulated customers (distinct chats) send text messages through
  (i) Telegram: the Bot API test server (in this process, flood limits off) queues each message as an
      update and POSTs it to the bot's webhook, one update per chat at a time and up to 40 at once
      (Telegram's default max_connections). Butler commits the update before it answers 200
      (receipt = dedupe, customer/team, message row, knowledge match or case routing, SLA timers,
      outbox rows for the reply and the staff-topic mirror), so latency = injection -> webhook 2xx.
      The echo bot answers 200 before it handles the update, so its latency = injection -> its reply
      arriving at the server. Butler's replies leave through the outbox at Telegram's real limits
      (30 msg/s per bot, 1 msg/s per chat); they are counted, not waited for.
 (ii) web chat: POST /api/v1/webchat/messages over HTTP; latency = scheduled send -> 201 (committed).

Offered load is open loop: message i is sent at start + i/rate whatever happened before (a late
answer does not slow the sender down), in steps of rising rate until a step misses p99 <= target
(then one step halfway back). Before the steps every customer sends one first message (first
contact forms the butler team; reported separately), then the harness waits until the product's
processes together use less than --settle-below of a core (the greetings and staff topics of 500 new
teams take the embedded process some 10 s to work off; the wait is reported). Modes:
  echo      bench/echo_bot.py (bare python-telegram-bot) on the same server and path: the ceiling
  embedded  `butler run`: SQLite, in-process bus, sender and SLA worker in the same process
  pg1       `butler web --workers 1` + `butler worker`, PostgreSQL + Redis
  pg2       `butler web --workers 2` + `butler worker`, PostgreSQL + Redis
If the PostgreSQL server runs with autovacuum off (this machine's does), the harness analyzes the
tables autovacuum would have, every --analyze-every seconds (load_procs.AutoAnalyze).

    flock /tmp/butler-bench.lock .venv/bin/python bench/load.py --modes echo,embedded,pg1,pg2

The PostgreSQL database of --database-url is dropped and created again; --redis-url's db is flushed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.botapi, bot

import load_procs as lp
from load_drive import (
    TelegramLoad,
    TelegramTracker,
    Texts,
    Tracker,
    WebchatLoad,
    line,
    ramp,
    settle,
    step,
    write_json,
)

from tests.botapi.server import DEFAULT_TOKEN, BotApiServer

MODES = ("echo", "embedded", "pg1", "pg2")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--paths", default="telegram,webchat")
    p.add_argument("--customers", type=int, default=500, help="distinct chats / web sessions per path")
    p.add_argument("--rates", default="50,100,150,200,300,400,500,600,800")
    p.add_argument("--step-seconds", type=float, default=8.0)
    p.add_argument("--warm-rate", type=float, default=50.0, help="rate of the first-contact messages")
    p.add_argument("--target", type=float, default=0.2, help="p99 latency bound in seconds")
    p.add_argument("--grace", type=float, default=8.0, help="seconds to wait for stragglers after a step")
    p.add_argument(
        "--settle-below",
        type=float,
        default=0.4,
        help="after the first contacts, wait (up to 90 s) until the product uses less than this much CPU",
    )
    p.add_argument("--handoff", type=float, default=0.3, help="share of texts the FAQ cannot answer")
    p.add_argument("--no-refine", action="store_true")
    p.add_argument("--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/bench_load")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/5")
    p.add_argument(
        "--analyze-every",
        type=float,
        default=30.0,
        help="seconds between autovacuum-style ANALYZE passes when the server's autovacuum is off; 0: none",
    )
    p.add_argument("--out", type=Path, default=Path("var/bench-load.json"))
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, SQLite file)")
    p.add_argument(
        "--worker-nice",
        type=int,
        default=0,
        help="run `butler worker` at this niceness (as a systemd unit's Nice=): the web processes first",
    )
    return p.parse_args(argv)


def log(text: str) -> None:
    """Progress on stdout with a timestamp."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


async def wait_webhook(server: BotApiServer, port: int, limit: float = 90.0) -> None:
    """Until the bot registered its webhook at our port."""
    deadline = time.monotonic() + limit
    while not (server.bot.webhook and f":{port}/" in server.bot.webhook.url):
        if time.monotonic() > deadline:
            raise TimeoutError("the webhook was not registered")
        await asyncio.sleep(0.2)


async def start_mode(
    mode: str, server: BotApiServer, args: argparse.Namespace, workdir: Path
) -> tuple[list[lp.Child], int, str | None]:
    """Prepare the database and start the mode's processes; returns (children, port, db url)."""
    port = lp.free_port()
    if mode == "echo":
        cmd = [sys.executable, "bench/echo_bot.py", "--api-url", server.url, "--port", str(port)]
        kids = [lp.spawn("echo", cmd, {}, workdir)]
        await wait_webhook(server, port)
        return kids, port, None
    url, env = await lp.prepare_butler(
        embedded=mode == "embedded",
        workdir=workdir,
        database_url=args.database_url,
        redis_url=args.redis_url,
        port=port,
        api_url=server.url,
        token=DEFAULT_TOKEN,
    )
    if mode == "embedded":
        kids = [lp.spawn("run", [*lp.BUTLER, "run", "--no-demo"], env, workdir)]
    else:
        workers = "2" if mode == "pg2" else "1"
        kids = [
            lp.spawn("web", [*lp.BUTLER, "web", "--workers", workers], env, workdir),
            lp.spawn("worker", [*nice(args.worker_nice), *lp.BUTLER, "worker"], env, workdir),
        ]
    await lp.wait_http(f"http://127.0.0.1:{port}/readyz")
    await wait_webhook(server, port)
    return kids, port, url


def nice(level: int) -> list[str]:
    """A command prefix that starts the process at this niceness (none for 0)."""
    return ["nice", "-n", str(level)] if level else []


async def outcomes(url: str) -> dict[str, Any]:
    """What the run left in the database: messages by author, cases, outbox rows by status."""
    from sqlalchemy import text

    from bot.db import make_engine

    engine = make_engine(url)
    try:
        async with engine.connect() as conn:

            async def rows(sql: str) -> dict[str, int]:
                return {str(k): int(v) for k, v in (await conn.execute(text(sql))).all()}

            return {
                "messages": await rows("SELECT author_kind, count(*) FROM messages GROUP BY author_kind"),
                "cases": await rows("SELECT status, count(*) FROM cases GROUP BY status"),
                "outbox": await rows("SELECT status, count(*) FROM outbox GROUP BY status"),
                "sla_timers": await rows("SELECT metric, count(*) FROM sla_timers GROUP BY metric"),
            }
    finally:
        await engine.dispose()


async def run_path(
    path: str,
    mode: str,
    n: int,
    server: BotApiServer,
    args: argparse.Namespace,
    port: int,
    pids: Any,
    holds: lp.HoldLog,
) -> dict[str, Any]:
    """First contacts, then the rate steps, for one path of one mode."""
    texts = Texts(args.handoff, seed=n)
    rates = [float(r) for r in args.rates.split(",")]
    result: dict[str, Any] = {}
    if path == "telegram":
        tracker: Tracker = TelegramTracker("reply" if mode == "echo" else "ack")
        server.world.listeners.append(tracker)  # type: ignore[arg-type]
        load: Any = TelegramLoad(
            server,
            tracker,
            customers=args.customers,
            base_id=(n + 1) * 10_000_000,
            texts=texts,  # type: ignore[arg-type]
        )
        clients = load.clients
    else:
        tracker = Tracker()
        load = WebchatLoad(f"http://127.0.0.1:{port}", tracker, customers=args.customers, texts=texts)
        await load.setup()
        clients = load.sessions
    try:
        log(f"{mode}/{path}: {len(clients)} first contacts at {args.warm_rate:.0f}/s")
        warm = await step(
            load.fire,
            tracker,
            pids,
            rate=args.warm_rate,
            seconds=0,
            target=args.target,
            grace=30,
            clients=clients,
        )
        log(line(warm))
        result["first_contact"] = warm
        result["settle"] = await settle(pids, busy=args.settle_below)
        calm = result["settle"]
        log(f"settled after {calm['seconds']:.0f} s (product CPU {calm['cpu_share']:.0%} of a core)")
        result["steps"] = await ramp(
            load.fire,
            tracker,
            pids,
            rates=rates,
            seconds=args.step_seconds,
            target=args.target,
            grace=args.grace,
            refine=not args.no_refine,
            log=log,
            holds=holds,
        )
        result["outbound_sent"] = tracker.outbound
    finally:
        if path == "telegram":
            server.world.listeners.remove(tracker)  # type: ignore[arg-type]
            server.bot.queue.clear()  # leftovers of a failed step must not reach the next mode
        else:
            await load.close()
    passing = [s for s in result.get("steps", []) if s["ok"]]
    result["best"] = max(passing, key=lambda s: s["offered"]) if passing else None
    return result


async def run_mode(mode: str, n: int, server: BotApiServer, args: argparse.Namespace) -> dict[str, Any]:
    """Start a mode, run its paths, collect outcomes, stop it."""
    workdir = Path(tempfile.mkdtemp(prefix=f"butler-load-{mode}-"))
    log(f"== {mode} (work dir {workdir})")
    kids, port, url = await start_mode(mode, server, args, workdir)
    result: dict[str, Any] = {"paths": {}}
    analyze: lp.AutoAnalyze | None = None
    try:
        await asyncio.sleep(2)
        pids = lp.labelled_pids(kids)
        deadline = time.monotonic() + 60
        while mode == "pg2" and not {"web.1", "web.2"} <= pids.keys() and time.monotonic() < deadline:
            await asyncio.sleep(0.5)  # the second uvicorn worker may still be importing
            pids = lp.labelled_pids(kids)
        pids["harness"] = [os.getpid()]
        if url and url.startswith("postgresql"):  # the whole server, looked up again at every step
            pids["postgres"] = lp.pids_named("postgres")
            if args.analyze_every > 0:
                analyze = lp.AutoAnalyze(url, naptime=args.analyze_every)
                await analyze.start()
        paths = ["telegram"] if mode == "echo" else args.paths.split(",")
        for path in paths:
            result["paths"][path] = await run_path(
                path, mode, n * 2 + len(result["paths"]), server, args, port, pids, lp.HoldLog(kids)
            )
        if url:
            await asyncio.sleep(1)
            result["outcomes"] = await outcomes(url)
    finally:
        if analyze is not None:
            result["analyze_passes"] = await analyze.stop()
        for kid in kids:
            kid.stop()
        result["exit_codes"] = {k.label: k.proc.returncode for k in kids}
        if not args.keep:
            for kid in kids:
                with contextlib.suppress(OSError):
                    result.setdefault("log_tail", {})[kid.label] = kid.log.read_text()[-2000:]
    return result


def table(results: dict[str, Any], target: float) -> str:
    """The markdown summary: the best passing step of every mode and path."""
    out = [
        f"| mode | path | msgs/s at p99<={target * 1000:.0f}ms (offered / achieved) | p50 ms | p99 ms | "
        "first failing step (offered: p99) | CPU % of a core / RSS MB per process |",
        "| --- | --- | --- | ---: | ---: | --- | --- |",
    ]
    for mode, res in results.items():
        for path, pr in res["paths"].items():
            best, steps = pr.get("best"), pr.get("steps", [])
            fail = next((s for s in steps if not s["ok"]), None)
            failing = f"{fail['offered']:.0f}: {lp.fmt(fail['p99'])} ms" if fail else "none"
            if best is None:
                out.append(f"| {mode} | {path} | none | | | {failing} | |")
                continue
            procs = ", ".join(f"{k} {v['cpu_pct']:.0f}/{v['rss_mb']:.0f}" for k, v in best["procs"].items())
            out.append(
                f"| {mode} | {path} | {best['offered']:.0f} / {best['achieved']:.0f} | "
                f"{lp.fmt(best['p50'])} | {lp.fmt(best['p99'])} | {failing} | {procs} |"
            )
    return "\n".join(out)


async def main_async(args: argparse.Namespace) -> None:
    """Run every requested mode against one in-process Bot API test server."""
    server = BotApiServer(rate_limits=False)
    await server.start()
    server.supergroup(lp.STAFF_CHAT, "Butler staff", bot_rights={"can_manage_topics": True})
    started = datetime.now(UTC)
    results: dict[str, Any] = {}
    try:
        for n, mode in enumerate(args.modes.split(",")):
            results[mode] = await run_mode(mode, n, server, args)
            write_json(args.out, {"started": started.isoformat(), "args": vars(args), "results": results})
    finally:
        await server.stop()
    print()
    print(table(results, args.target))
    for mode, res in results.items():
        if "outcomes" in res:
            print(f"{mode}: {json.dumps(res['outcomes'])}")
    write_json(args.out, {"started": started.isoformat(), "args": vars(args), "results": results})
    log(f"results in {args.out}")


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    args = parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
