"""CPU per inbound customer message, per process: the cost behind bench/load.py's throughput.

Latency steps on a shared 2-core machine swing by a third between two runs of the same code; CPU
time per message does not. This starts `butler web --workers 1` on PostgreSQL + Redis (no worker:
nothing is sent, so only the inbound pipeline is measured), forms every customer's team first, then
sends --messages customer messages in a closed loop (--concurrency in flight) through
  telegram  POST /telegram/webhook with the secret header, as Telegram would (update JSON)
  webchat   POST /api/v1/webchat/messages
and reports, per message: CPU of the web process, of every PostgreSQL process and of Redis (read
from /proc before and after; other work on the machine's database server counts too, so run it
under the benchmark lock), plus the closed-loop rate and p50/p99 latency. The first contacts
(one per customer: the team forms, the staff topic is queued) are reported the same way, apart.

    flock /tmp/butler-bench.lock .venv/bin/python bench/cpu_per_message.py

The PostgreSQL database of --database-url is dropped and created again; --redis-url's db is flushed.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import load_procs as lp
from load_drive import Texts

from tests.botapi.server import DEFAULT_TOKEN, BotApiServer

SECRET = "bench-webhook-secret"  # load_procs.butler_env sets the same


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--paths", default="telegram,webchat")
    p.add_argument("--customers", type=int, default=100)
    p.add_argument("--messages", type=int, default=2000, help="timed messages per path")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--handoff", type=float, default=0.3, help="share of texts the FAQ cannot answer")
    p.add_argument("--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/bench_cpu")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/7")
    p.add_argument(
        "--with-worker", action="store_true", help="run `butler worker` too (sends the replies, SLA passes)"
    )
    p.add_argument(
        "--embedded", action="store_true", help="`butler run` on SQLite (sender, SLA worker inside)"
    )
    p.add_argument("--out", type=Path, default=Path("var/bench-cpu.json"))
    return p.parse_args(argv)


def log(text: str) -> None:
    """Progress on stdout with a timestamp."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def named_cpu(name: str) -> float:
    """CPU seconds of every process whose command name is `name` (postgres, redis-server)."""
    return sum(lp.cpu_seconds(pid) for pid in lp.pids_named(name))


class Customers:
    """Sends one path's messages; `send(i, text)` returns when the server answered."""

    def __init__(self, path: str, base: str, http: aiohttp.ClientSession, count: int) -> None:
        self.path, self.base, self.http, self.count = path, base, http, count
        self.sessions: list[str] = []
        self.update_ids = itertools.count(1)

    async def setup(self) -> None:
        """Web chat: one session per customer (Telegram customers need nothing up front)."""
        if self.path != "webchat":
            return
        for i in range(self.count):
            body = {"display_name": f"Web {i}", "locale": "zh-CN"}
            async with self.http.post(f"{self.base}/api/v1/webchat/sessions", json=body) as resp:
                assert resp.status == 201, await resp.text()
                self.sessions.append(str((await resp.json())["session_id"]))

    async def send(self, i: int, text: str) -> None:
        """One customer message (customer i % count); raises on a non-2xx answer."""
        who = i % self.count
        if self.path == "webchat":
            url, headers = f"{self.base}/api/v1/webchat/messages", {"X-Webchat-Session": self.sessions[who]}
            body: dict[str, Any] = {"text": text, "client_message_id": f"m{i}"}
        else:
            uid, chat = next(self.update_ids), 5_000_000 + who
            user = {"id": chat, "is_bot": False, "first_name": f"Tg {who}", "language_code": "zh-hans"}
            url, headers = f"{self.base}/telegram/webhook", {"X-Telegram-Bot-Api-Secret-Token": SECRET}
            body = {
                "update_id": uid,
                "message": {
                    "message_id": uid,
                    "date": int(time.time()),
                    "chat": {"id": chat, "type": "private", "first_name": f"Tg {who}"},
                    "from": user,
                    "text": text,
                },
            }
        async with self.http.post(url, json=body, headers=headers) as resp:
            await resp.read()
            if resp.status >= 300:
                raise RuntimeError(f"{self.path}: HTTP {resp.status}")


async def closed_loop(customers: Customers, texts: list[str], start: int, concurrency: int) -> list[float]:
    """Send the texts with `concurrency` in flight; returns each message's latency in seconds."""
    latencies: list[float] = []
    todo = iter(enumerate(texts, start))

    async def lane() -> None:
        for i, text in todo:
            t0 = time.perf_counter()
            await customers.send(i, text)
            latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return latencies


def cpu_now(pids: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds so far of our processes (by label), PostgreSQL, Redis and this harness."""
    now = {label: sum(lp.cpu_seconds(p) for p in group) for label, group in pids.items()}
    now |= {"postgres": named_cpu("postgres"), "redis": named_cpu("redis-server")}
    return now | {"harness": time.process_time()}


async def collector(http: aiohttp.ClientSession, base: str) -> dict[tuple[str, str], float]:
    """The web process's garbage-collection histogram (bot.loop_watch) from /metrics: (generation, sample)."""
    async with http.get(base + "/metrics") as resp:
        text = await resp.text()
    return {
        (s.labels["generation"], s.name.rsplit("_", 1)[-1] + s.labels.get("le", "")): s.value
        for family in text_string_to_metric_families(text)
        if family.name == "butler_gc_pause_seconds"
        for s in family.samples
    }


def collections_during(
    before: dict[tuple[str, str], float], after: dict[tuple[str, str], float], n: int
) -> Any:
    """Per generation: collections, ms per message, and collections longer than 10 and 25 ms."""
    out = {}
    for gen in sorted({g for g, _ in after}):
        delta = {key: after[(gen, key)] - before.get((gen, key), 0.0) for g, key in after if g == gen}
        out[gen] = {
            "collections": int(delta["count"]),
            "ms_per_message": round(delta["sum"] * 1000 / n, 3),
            "over_10ms": int(delta["count"] - delta["bucket0.01"]),
            "over_25ms": int(delta["count"] - delta["bucket0.025"]),
        }
    return out


async def measure_path(
    path: str, args: argparse.Namespace, base: str, pids: dict[str, list[int]]
) -> dict[str, Any]:
    """First contacts and a warm-up (not timed), then the timed messages."""
    texts = Texts(args.handoff, seed=11)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=args.concurrency * 2)) as http:
        customers = Customers(path, base, http, args.customers)
        await customers.setup()
        firsts = [texts.first() for _ in range(args.customers)]
        before = cpu_now(pids)
        t0 = time.perf_counter()
        await closed_loop(customers, firsts, 0, args.concurrency)
        first_wall = time.perf_counter() - t0
        first_ms = {k: (v - before[k]) * 1000 / len(firsts) for k, v in cpu_now(pids).items()}
        warm = [texts.next() for _ in range(args.customers * 2)]
        await closed_loop(customers, warm, len(firsts), args.concurrency)
        timed = [texts.next() for _ in range(args.messages)]
        gc_before = await collector(http, base)
        before = cpu_now(pids)
        t0 = time.perf_counter()
        latencies = await closed_loop(customers, timed, len(firsts) + len(warm), args.concurrency)
        wall = time.perf_counter() - t0
        after = cpu_now(pids)
        gc_after = await collector(http, base)
    n = len(timed)
    ms = {k: (after[k] - before[k]) * 1000 / n for k in before}
    return {
        "path": path,
        "messages": n,
        "rate": n / wall,
        "p50_ms": lp.summary(latencies, 50) * 1000,
        "p99_ms": lp.summary(latencies, 99) * 1000,
        "cpu_ms_per_message": ms,
        "web_gc": collections_during(gc_before, gc_after, n),
        # First contacts form a team (and, on Telegram, queue the staff topic): reported on their own.
        "first_contact": {"rate": len(firsts) / first_wall, "cpu_ms_per_message": first_ms},
    }


async def main(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Prepare the database, start `butler web`, measure each path."""
    workdir = Path(tempfile.mkdtemp(prefix="butler-cpu-"))
    port = lp.free_port()
    # The bot asks the Bot API who it is before its first update; nothing else reaches it (no worker).
    server = BotApiServer(rate_limits=False)
    await server.start()
    _url, env = await lp.prepare_butler(
        embedded=args.embedded,
        workdir=workdir,
        database_url=args.database_url,
        redis_url=args.redis_url,
        port=port,
        api_url=server.url,
        token=DEFAULT_TOKEN,
    )
    if args.embedded:
        kids = [lp.spawn("run", [*lp.BUTLER, "run", "--no-demo"], env, workdir)]
    else:
        kids = [lp.spawn("web", [*lp.BUTLER, "web", "--workers", "1"], env, workdir)]
    if args.with_worker or args.embedded:
        server.supergroup(lp.STAFF_CHAT, "Butler staff", bot_rights={"can_manage_topics": True})
    if args.with_worker and not args.embedded:
        kids.append(lp.spawn("worker", [*lp.BUTLER, "worker"], env, workdir))
    results = []
    try:
        await lp.wait_http(f"http://127.0.0.1:{port}/healthz")
        # `butler web --workers 1` may be a supervisor with one uvicorn worker: count both as web.
        pids: dict[str, list[int]] = {}
        for label, group in lp.labelled_pids(kids).items():
            pids.setdefault(label.split(".")[0], []).extend(group)
        for path in args.paths.split(","):
            log(f"{path}: {args.customers} customers, {args.messages} messages, {args.concurrency} in flight")
            res = await measure_path(path, args, f"http://127.0.0.1:{port}", pids)
            first = res["first_contact"]
            log(
                f"  first contacts {first['rate']:.0f} msg/s | CPU ms per message: "
                + ", ".join(f"{k} {v:.2f}" for k, v in first["cpu_ms_per_message"].items())
            )
            cpu = res["cpu_ms_per_message"]
            log(
                f"  {res['rate']:.0f} msg/s p50 {res['p50_ms']:.0f} ms p99 {res['p99_ms']:.0f} ms | "
                "CPU ms per message: " + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items())
            )
            log(
                "  web process garbage collection: "
                + "; ".join(
                    f"gen{g} {v['collections']}x {v['ms_per_message']:.3f} ms/msg, "
                    f"{v['over_10ms']} over 10 ms, {v['over_25ms']} over 25 ms"
                    for g, v in res["web_gc"].items()
                )
            )
            results.append(res)
    finally:
        for kid in kids:
            kid.stop()
        await server.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    log(f"results in {args.out} (server log: {workdir}/web.log)")
    return results


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
