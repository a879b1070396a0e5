"""Load generation for bench/load.py: open-loop rate steps through Telegram (test server) and web chat."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import random
import time
from collections import Counter, defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from load_procs import ROOT, HoldLog, Sampler, cpu_seconds, loadavg, summary

Key = int | str

# Questions nobody's FAQ answers: they open a case (routed by category) or join the open one.
HANDOFF_TEXTS = [
    "我的车刹车的时候有异响，能找人帮我看看吗",
    "上周保养后发动机故障灯亮了，我很不满意",
    "我想和销售聊聊换一台新车的具体方案",
    "车机系统升级以后蓝牙一直连不上，怎么办",
    "配件到货了吗？订单号 A12345",
    "请帮我转人工，我要投诉服务态度",
]


def faq_questions() -> list[str]:
    """The zh-CN phrasings of the demo knowledge base (most are answered by the bot)."""
    items = yaml.safe_load((ROOT / "knowledge/data/demo_kb.yaml").read_text(encoding="utf-8"))
    return [q for item in items for q in (item.get("zh-CN") or {}).get("questions", [])]


class Texts:
    """Deterministic message mix: `handoff` of the texts need a person, the rest are FAQ questions."""

    def __init__(self, handoff: float, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.faq = faq_questions()
        self.handoff = handoff

    def next(self) -> str:
        """The next customer text."""
        if self.rng.random() < self.handoff:
            return self.rng.choice(HANDOFF_TEXTS)
        return self.rng.choice(self.faq)

    def first(self) -> str:
        """A first contact: an FAQ question."""
        return self.rng.choice(self.faq)


@dataclass
class Tracker:
    """Scheduled and completion times of every message, keyed by update_id or request key."""

    sched: dict[Key, float] = field(default_factory=dict)
    done: dict[Key, float] = field(default_factory=dict)
    failed: dict[Key, str] = field(default_factory=dict)
    outbound: int = 0


class TelegramTracker(Tracker):
    """Listens to the in-process Bot API server: updates queued, webhook acks, bot sends.

    complete_on "ack": a message is done when the webhook answered 2xx (Butler commits before it
    answers). complete_on "reply": done when the bot's reply to that chat arrives (the echo bot
    acknowledges before handling, so only its reply means the work is done).
    """

    def __init__(self, complete_on: str) -> None:
        super().__init__()
        self.complete_on = complete_on
        self.pending_sched = 0.0
        self.last_uid: int | None = None
        self.fifo: dict[int, deque[int]] = defaultdict(deque)

    def __call__(self, event: str, bot: Any, payload: Any) -> None:
        """World listener."""
        if event == "update":
            uid = payload.get("update_id")
            self.sched[uid] = self.pending_sched
            self.last_uid = uid
            if self.complete_on == "reply":
                chat = ((payload.get("message") or {}).get("chat") or {}).get("id")
                self.fifo[chat].append(uid)
        elif event == "delivered" and self.complete_on == "ack":
            via, updates = payload
            if via == "webhook":
                now = time.monotonic()
                for u in updates:
                    self.done.setdefault(u.get("update_id"), now)
        elif event == "sent":
            self.outbound += 1
            if self.complete_on == "reply":
                waiting = self.fifo.get(payload.chat_id)
                if waiting:
                    self.done[waiting.popleft()] = time.monotonic()


class TelegramLoad:
    """Customers writing to the bot in private chats through the Bot API test server."""

    def __init__(self, server: Any, tracker: TelegramTracker, *, customers: int, base_id: int, texts: Texts):
        self.server = server
        self.tracker = tracker
        self.texts = texts
        self.clients = [
            server.user(base_id + i, f"Load {i}", language_code="zh-hans") for i in range(customers)
        ]
        self.cycle = itertools.cycle(self.clients)

    async def fire(self, sched: float, first: bool = False, client: Any = None) -> Key:
        """Inject one message now (it is queued for webhook delivery at once)."""
        self.tracker.pending_sched = sched
        client = client or next(self.cycle)
        await client.send_text(self.texts.first() if first else self.texts.next())
        assert self.tracker.last_uid is not None
        return self.tracker.last_uid


class WebchatLoad:
    """Customers posting to the web chat API over HTTP (one session each, created up front).

    Customers are spread over `lines` HTTP clients, each with its own keep-alive connections, as
    browsers would be: one client reuses its most recently freed connection, so at low concurrency
    every request went down the same one or two, all accepted by one of `butler web`'s processes
    (seen: the second one idle at 1-4% of a core while the first ran at 73%).
    """

    def __init__(
        self, base_url: str, tracker: Tracker, *, customers: int, texts: Texts, lines: int = 64, pool: int = 8
    ):
        self.base = base_url
        self.tracker = tracker
        self.customers = customers
        self.texts = texts
        self.sessions: list[str] = []
        self.lines = [
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=pool)) for _ in range(max(1, lines))
        ]
        self.line_of: dict[str, aiohttp.ClientSession] = {}
        self.http = self.lines[0]
        self.seq = itertools.count()
        self.cycle: Any = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def setup(self) -> None:
        """Create the customers' sessions (not timed)."""
        sem = asyncio.Semaphore(32)

        async def one(i: int) -> str:
            async with sem:
                body = {"display_name": f"Web {i}", "locale": "zh-CN"}
                async with self.http.post(f"{self.base}/api/v1/webchat/sessions", json=body) as resp:
                    assert resp.status == 201, await resp.text()
                    return str((await resp.json())["session_id"])

        self.sessions = list(await asyncio.gather(*(one(i) for i in range(self.customers))))
        self.line_of = {sid: self.lines[i % len(self.lines)] for i, sid in enumerate(self.sessions)}
        self.cycle = itertools.cycle(self.sessions)

    async def fire(self, sched: float, first: bool = False, client: Any = None) -> Key:
        """Start one POST; it completes in the background."""
        key = f"w{next(self.seq)}"
        self.tracker.sched[key] = sched
        session = client or next(self.cycle)
        text = self.texts.first() if first else self.texts.next()
        task = asyncio.create_task(self._post(key, session, text))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return key

    async def _post(self, key: str, session: str, text: str) -> None:
        body = {"text": text, "client_message_id": key}
        try:
            async with self.line_of.get(session, self.http).post(
                f"{self.base}/api/v1/webchat/messages", json=body, headers={"X-Webchat-Session": session}
            ) as resp:
                await resp.read()
                if resp.status == 201:
                    self.tracker.done[key] = time.monotonic()
                else:
                    self.tracker.failed[key] = str(resp.status)
        except (aiohttp.ClientError, OSError) as exc:
            self.tracker.failed[key] = type(exc).__name__

    async def close(self) -> None:
        """Cancel what is still running and close the connection pool."""
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for http in self.lines:
            await http.close()


Fire = Callable[..., Awaitable[Key]]


async def open_loop(fire: Fire, *, rate: float, count: int, clients: list[Any] | None = None) -> list[Key]:
    """Fire `count` messages at `rate`/s on a fixed schedule (late ones are fired at once, not skipped)."""
    keys: list[Key] = []
    start = time.monotonic()
    for i in range(count):
        sched = start + i / rate
        delay = sched - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if clients is None:
            keys.append(await fire(sched))
        else:
            keys.append(await fire(sched, first=True, client=clients[i]))
    return keys


async def drain(tracker: Tracker, keys: list[Key], grace: float) -> None:
    """Wait until every key completed or failed, or `grace` seconds passed."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if all(k in tracker.done or k in tracker.failed for k in keys):
            return
        await asyncio.sleep(0.05)


def measure(tracker: Tracker, keys: list[Key], *, rate: float, target: float) -> dict[str, Any]:
    """Throughput and latency of one step."""
    lat = [tracker.done[k] - tracker.sched[k] for k in keys if k in tracker.done]
    missing = len(keys) - len(lat)
    padded = lat + [float("inf")] * missing
    first = min(tracker.sched[k] for k in keys)
    last = max((tracker.done[k] for k in keys if k in tracker.done), default=first)
    achieved = len(lat) / max(last - first, 1e-6)
    p99 = summary(padded, 99)
    return {
        "offered": rate,
        "messages": len(keys),
        "completed": len(lat),
        "failed": sum(1 for k in keys if k in tracker.failed),
        "failures": dict(Counter(tracker.failed[k] for k in keys if k in tracker.failed)),
        "achieved": round(achieved, 1),
        "p50": summary(padded, 50),
        "p99": p99,
        "max": max(padded) if padded else float("inf"),
        "ok": missing == 0 and p99 <= target,
        "timeline": timeline(tracker, keys, first),
    }


def timeline(tracker: Tracker, keys: list[Key], first: float) -> list[list[float]]:
    """Per second of sending: [p50, max] latency in ms of the messages scheduled in it (stalls show)."""
    by_second: dict[int, list[float]] = defaultdict(list)
    for k in keys:
        late = tracker.done[k] - tracker.sched[k] if k in tracker.done else float("inf")
        by_second[int(tracker.sched[k] - first)].append(late)
    return [
        [round(summary(v, 50) * 1000), round(max(v) * 1000) if max(v) < float("inf") else -1]
        for _, v in sorted(by_second.items())
    ]


class GcPauses:
    """The harness's own garbage-collection pauses during a step (they delay sends and answers alike).

    Entering also freezes what the harness holds so far (the trackers and the test server's record of
    every message only grow), so a full collection during the step walks only what it creates.
    """

    def __init__(self) -> None:
        self.pauses: list[float] = []
        self._started = 0.0

    def _callback(self, phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append(time.perf_counter() - self._started)

    def __enter__(self) -> GcPauses:
        gc.collect()
        gc.freeze()
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *_exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def summary(self) -> dict[str, float]:
        """Collections, and the longest and total pause in ms."""
        return {
            "count": len(self.pauses),
            "max_ms": round(max(self.pauses, default=0.0) * 1000, 1),
            "total_ms": round(sum(self.pauses) * 1000, 1),
        }


class LoopLag:
    """How late the harness's event loop runs a 5 ms timer, per second of a step.

    The harness also hosts the Bot API test server: if its loop is late, webhook deliveries and
    answers are late too, and the step's latency counts it against the product.
    """

    TICK = 0.005

    def __init__(self) -> None:
        self.per_second: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        while True:
            before = loop.time()
            await asyncio.sleep(self.TICK)
            late = loop.time() - before - self.TICK
            second = int(before - start)
            while len(self.per_second) <= second:
                self.per_second.append(0.0)
            self.per_second[second] = max(self.per_second[second], late)

    async def __aenter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def summary(self) -> dict[str, Any]:
        """The longest lateness, and each second's, in ms."""
        per_second = [round(x * 1000) for x in self.per_second]
        return {"max_ms": max(per_second, default=0), "per_second_ms": per_second}


async def step(
    fire: Fire,
    tracker: Tracker,
    pids: dict[str, int],
    *,
    rate: float,
    seconds: float,
    target: float,
    grace: float,
    clients: list[Any] | None = None,
    holds: HoldLog | None = None,
) -> dict[str, Any]:
    """One open-loop step with CPU / RSS sampling (and the product's loop holds); returns its measurements."""
    if holds is not None:
        holds.skip()
    sampler = Sampler(pids)
    sampler.start()
    count = len(clients) if clients is not None else max(1, int(rate * seconds))
    with GcPauses() as pauses:
        async with LoopLag() as lag:
            keys = await open_loop(fire, rate=rate, count=count, clients=clients)
            await drain(tracker, keys, grace)
    result = measure(tracker, keys, rate=rate, target=target)
    result["procs"] = sampler.stop()
    result["harness_gc"] = pauses.summary()
    result["harness_lag"] = lag.summary()
    result["loop_holds"] = holds.read() if holds is not None else []
    result["load"] = loadavg()
    return result


async def settle(
    pids: dict[str, list[int]], *, busy: float, window: float = 2.0, limit: float = 90.0
) -> dict[str, float]:
    """Wait until the product's processes together use less than `busy` of a core over `window` s.

    First contact forms 500 teams and queues their greetings and staff topics; the product works
    that off for several seconds after the last first contact was answered. A step started then
    measures that aftermath, not a sustained rate. Returns the seconds waited and the last CPU share.
    """
    product = [pid for label, ps in pids.items() if label not in ("harness", "postgres") for pid in ps]
    started = time.monotonic()
    share = float("inf")
    while time.monotonic() - started < limit:
        before = sum(cpu_seconds(pid) for pid in product)
        await asyncio.sleep(window)
        share = (sum(cpu_seconds(pid) for pid in product) - before) / window
        if share < busy:
            break
    return {"seconds": round(time.monotonic() - started, 1), "cpu_share": round(share, 2)}


async def ramp(
    fire: Fire,
    tracker: Tracker,
    pids: dict[str, int],
    *,
    rates: list[float],
    seconds: float,
    target: float,
    grace: float,
    refine: bool,
    log: Callable[[str], None],
    holds: HoldLog | None = None,
) -> list[dict[str, Any]]:
    """Step the offered rate up until a step fails; then (refine) try once halfway back."""
    results: list[dict[str, Any]] = []
    best = 0.0
    for rate in rates:
        res = await step(
            fire, tracker, pids, rate=rate, seconds=seconds, target=target, grace=grace, holds=holds
        )
        results.append(res)
        log(line(res))
        if not res["ok"]:
            if refine and best > 0 and rate - best > 0.15 * best:
                await asyncio.sleep(2)
                mid = round((best + rate) / 2)
                res = await step(
                    fire, tracker, pids, rate=mid, seconds=seconds, target=target, grace=grace, holds=holds
                )
                results.append(res)
                log(line(res))
            break
        best = rate
        await asyncio.sleep(1)
    return results


def line(res: dict[str, Any]) -> str:
    """One step as a log line."""
    procs = " ".join(f"{k}={v['cpu_pct']:.0f}%/{v['rss_mb']:.0f}MB" for k, v in res["procs"].items())
    p50 = "inf" if res["p50"] == float("inf") else f"{res['p50'] * 1000:.0f}"
    p99 = "inf" if res["p99"] == float("inf") else f"{res['p99'] * 1000:.0f}"
    return (
        f"  offered {res['offered']:>5.0f}/s achieved {res['achieved']:>6.1f}/s "
        f"p50 {p50:>5} ms p99 {p99:>5} ms done {res['completed']}/{res['messages']} "
        f"fail {res['failed']} {'OK ' if res['ok'] else 'MISS'} load {res['load']:.1f} "
        f"harness gc max {res['harness_gc']['max_ms']:.0f} ms, "
        f"loop late max {res['harness_lag']['max_ms']} ms | {procs}{held(res.get('loop_holds', []))}"
    )


def held(holds: list[dict[str, Any]]) -> str:
    """The product's loop holds of a step, per process: count, longest, and its CPU and GC share."""
    out = []
    for process in sorted({h["process"] for h in holds}):
        mine = [h for h in holds if h["process"] == process]
        worst = max(mine, key=lambda h: h["held_ms"])
        out.append(
            f"{process} {len(mine)}x max {worst['held_ms']} ms (cpu {worst['cpu_ms']}, gc {worst['gc_ms']})"
        )
    return " | loop held: " + ", ".join(out) if out else ""


def write_json(path: Path, data: Any) -> None:
    """Results as JSON (inf as a string)."""
    import json

    def clean(o: Any) -> Any:
        if isinstance(o, float) and o == float("inf"):
            return "inf"
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, list):
            return [clean(v) for v in o]
        return o

    path.write_text(json.dumps(clean(data), indent=1, default=str))
