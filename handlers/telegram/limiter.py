"""Telegram flood limits as sliding windows: in-process, or shared by every process through Redis.

A send is admitted only when, at that very moment, each of its rules (overall, the chat, the group)
has fewer than `limit` sends in the last `period` seconds; the admission time is what the window
records. Recording actual times (not planned slots) matters: a send that woke late must not let the
next one through early. Waiting for the bot-wide window is short and fair, so sends wait for it;
a chat or group that is full for longer than the caller's patience hands the send back (the outbox
retries the row later) so one busy chat never holds up the others.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rule:
    """At most `limit` sends per `period` seconds under `key`.

    `hand_back`: when this rule alone would hold the send longer than the caller's patience, the
    send is handed back at once (a chat or group that is full for a while); otherwise it waits.
    """

    key: str
    limit: int
    period: float
    hand_back: bool = False


@dataclass(frozen=True)
class Reservation:
    """granted: admitted after waiting `wait` seconds; else `wait` more would be needed (not admitted)."""

    granted: bool
    wait: float


class Limiter(Protocol):
    """Admits sends within the windows and honours the platform's retry_after."""

    async def reserve(self, rules: list[Rule], *, max_wait: float, patience: float) -> Reservation: ...

    async def penalize(self, key: str, seconds: float) -> None: ...

    async def close(self) -> None: ...


async def admit(
    check: Callable[[], Any],
    *,
    max_wait: float,
    patience: float,
    sleep: Callable[[float], Any],
    queue: asyncio.Lock,
    clock: Callable[[], float] = time.monotonic,
) -> Reservation:
    """Try `check` until admitted; hand back when a hand_back rule or max_wait says it is too long.

    `check` admits now (returns (0, 0)) or returns (wait, wait imposed by hand_back rules). A send
    first waits out its own chat and group windows on its own; once only the bot-wide windows hold
    it, it joins `queue` and sends go first come, first served. Without the queue every waiter
    polled the window and a random one won each slot: some chats fell seconds behind the others
    and their backlog trailed at the end of a busy spell.
    """
    start = clock()
    wait, strict = await check()
    if wait <= 0:
        return Reservation(True, 0.0)
    # Patience is judged on arrival: time spent queueing for the bot-wide window does not count.
    if strict > patience:
        return Reservation(False, wait)
    while strict > 0:
        if clock() - start + strict > max_wait:
            return Reservation(False, wait)
        await sleep(strict + random.uniform(0.0, 0.003))
        wait, strict = await check()
        if wait <= 0:
            return Reservation(True, clock() - start)
    async with queue:
        while True:
            wait, strict = await check()
            if wait <= 0:
                return Reservation(True, clock() - start)
            if strict > 0 or clock() - start + wait > max_wait:
                return Reservation(False, wait)
            await sleep(wait + random.uniform(0.0, 0.001))


class LocalLimiter:
    """Sliding-window logs in this process (the embedded default)."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], Any] = asyncio.sleep
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._logs: dict[str, deque[float]] = {}
        self._until: dict[str, float] = {}
        self._calls = 0
        self._queue = asyncio.Lock()

    def try_now(self, rules: list[Rule]) -> tuple[float, float]:
        """Admit now ((0, 0), recorded) or say how long until every rule (and every strict one) allows it."""
        now = self._clock()
        at = strict = now
        for rule in rules:
            allowed = self._until.get(rule.key, now)
            entries = self._logs.get(rule.key)
            if entries is not None and len(entries) >= rule.limit:
                allowed = max(allowed, entries[-rule.limit] + rule.period)
            at = max(at, allowed)
            if rule.hand_back:
                strict = max(strict, allowed)
        if at > now:
            return at - now, strict - now
        for rule in rules:
            entries = self._logs.get(rule.key)
            if entries is None or entries.maxlen != rule.limit:
                entries = deque(entries or (), maxlen=rule.limit)
                self._logs[rule.key] = entries
            entries.append(now)
        self._calls += 1
        if self._calls % 5000 == 0:
            self._prune(now)
        return 0.0, 0.0

    async def reserve(self, rules: list[Rule], *, max_wait: float, patience: float) -> Reservation:
        """Wait until the windows admit a send (and record it), or hand it back; see `admit`."""

        async def check() -> tuple[float, float]:
            return self.try_now(rules)

        return await admit(
            check,
            max_wait=max_wait,
            patience=patience,
            sleep=self._sleep,
            queue=self._queue,
            clock=self._clock,
        )

    async def penalize(self, key: str, seconds: float) -> None:
        """Send nothing under `key` for `seconds` (a 429's retry_after)."""
        self._until[key] = max(self._until.get(key, 0.0), self._clock() + seconds)

    def _prune(self, now: float) -> None:
        """Forget chats that have been quiet for a while."""
        stale = [k for k, v in self._logs.items() if v and v[-1] < now - 120]
        for key in stale:
            del self._logs[key]
        for key in [k for k, v in self._until.items() if v < now]:
            del self._until[key]

    async def close(self) -> None:
        """Nothing to release."""


_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local at = now
local strict = now
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[3 * i - 2])
  local period = tonumber(ARGV[3 * i - 1])
  local allowed = now
  local nth = redis.call('LINDEX', key, limit - 1)
  if nth then allowed = math.max(allowed, tonumber(nth) + period) end
  local blocked = redis.call('GET', key .. ':until')
  if blocked then allowed = math.max(allowed, tonumber(blocked)) end
  at = math.max(at, allowed)
  if ARGV[3 * i] == '1' then strict = math.max(strict, allowed) end
end
if at > now then return {at - now, strict - now} end
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[3 * i - 2])
  local period = tonumber(ARGV[3 * i - 1])
  redis.call('LPUSH', key, now)
  redis.call('LTRIM', key, 0, limit - 1)
  redis.call('PEXPIRE', key, period + 1000)
end
return {0, 0}
"""

_PENALIZE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local target = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if target > current then redis.call('SET', KEYS[1], target, 'PX', tonumber(ARGV[1]) + 1000) end
return target
"""


class RedisLimiter:
    """The same windows kept in Redis (one Lua call per check, on Redis' clock), shared by all senders.

    If Redis is unreachable the limiter falls back to this process's windows, so messages keep
    flowing (Telegram's 429s still hold the line), and logs it.
    """

    def __init__(self, url: str, *, prefix: str = "butler:tglimit:") -> None:
        from redis import asyncio as redis_asyncio

        self._redis: Any = redis_asyncio.from_url(url, socket_timeout=2)
        self._prefix = prefix
        self._admit = self._redis.register_script(_ADMIT)
        self._penalize = self._redis.register_script(_PENALIZE)
        self._fallback = LocalLimiter()
        self._warned = False
        self._queue = asyncio.Lock()

    async def reserve(self, rules: list[Rule], *, max_wait: float, patience: float) -> Reservation:
        """Wait until the shared windows admit a send, or hand it back; see LocalLimiter.reserve."""
        keys = [self._prefix + r.key for r in rules]
        args: list[Any] = []
        for rule in rules:
            args += [rule.limit, int(rule.period * 1000), "1" if rule.hand_back else "0"]
        try:
            return await admit(
                lambda: self._check(keys, args),
                max_wait=max_wait,
                patience=patience,
                sleep=asyncio.sleep,
                queue=self._queue,
            )
        except Exception as exc:  # Redis down: keep sending under local limits
            self._warn(exc)
            return await self._fallback.reserve(rules, max_wait=max_wait, patience=patience)

    async def _check(self, keys: list[str], args: list[Any]) -> tuple[float, float]:
        """One atomic check-and-record in Redis: (0, 0) when admitted, else the waits in seconds."""
        wait, strict = await self._admit(keys=keys, args=args)
        return int(wait) / 1000, int(strict) / 1000

    async def penalize(self, key: str, seconds: float) -> None:
        """Block `key` for every process."""
        await self._fallback.penalize(key, seconds)
        try:
            await self._penalize(keys=[f"{self._prefix}{key}:until"], args=[int(seconds * 1000)])
        except Exception as exc:
            self._warn(exc)

    def _warn(self, exc: Exception) -> None:
        if not self._warned:
            log.warning("Telegram rate limiter: Redis unavailable (%s); using per-process limits", exc)
            self._warned = True

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()


def make_limiter(redis_url: str | None) -> Limiter:
    """Redis-backed when configured, else in-process."""
    return RedisLimiter(redis_url) if redis_url else LocalLimiter()
