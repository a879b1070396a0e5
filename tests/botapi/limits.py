"""Telegram's flood limits (429 + retry_after) with honour tracking, and fault injection."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.botapi.model import ApiError


@dataclass
class RateLimitConfig:
    """Limits from the Bot API FAQ ("My bot is hitting limits").

    Telegram documents ~1 message/s per private chat and says short bursts may pass; the
    private chat is a token bucket of `private_burst` messages refilled at `private_per_second`.
    The default burst of 1 is the strict reading (a second message within a second gets 429),
    which is what a sender must survive; raise it to model Telegram's tolerance.
    """

    overall_per_second: int = 30
    private_per_second: float = 1.0
    private_burst: int = 1
    group_per_minute: int = 20


@dataclass
class RateLimitEvent:
    """One 429 the server issued; `honoured` is settled by the next send in the same scope."""

    bot_id: int
    scope: str  # "private", "group" or "overall"
    chat_id: int
    method: str
    retry_after: int
    issued_at: float
    deadline: float
    honoured: bool | None = None


@dataclass
class _Bucket:
    """Token bucket state for one private chat."""

    tokens: float
    updated: float


class RateLimiter:
    """Per-bot flood control counted on a monotonic clock; 429s and their honouring are recorded."""

    def __init__(
        self,
        config: RateLimitConfig | None = None,
        *,
        enabled: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config or RateLimitConfig()
        self.enabled = enabled
        self.clock = clock
        self.events: list[RateLimitEvent] = []
        self.early_retries = 0  # sends made inside a retry_after window
        self._overall: dict[int, deque[float]] = {}
        self._groups: dict[tuple[int, int], deque[float]] = {}
        self._private: dict[tuple[int, int], _Bucket] = {}
        self._open: dict[tuple[int, str, int], RateLimitEvent] = {}

    def check(self, bot_id: int, chat_id: int, chat_type: str, method: str) -> None:
        """Count one outgoing message, or raise 429 if it goes over a limit."""
        if not self.enabled:
            return
        now = self.clock()
        chat_key = (bot_id, "chat", chat_id)
        overall_key = (bot_id, "overall", 0)
        for key in (chat_key, overall_key):
            event = self._open.get(key)
            if event is None:
                continue
            if now < event.deadline:
                # Retrying inside the window: Telegram keeps answering 429 and the sender misbehaved.
                event.honoured = False
                self.early_retries += 1
                self._reject(event.scope, key, bot_id, chat_id, method, event.deadline - now, now)
            if event.honoured is None:
                event.honoured = True
            del self._open[key]
        cfg = self.config
        overall = self._overall.setdefault(bot_id, deque())
        while overall and overall[0] <= now - 1.0:
            overall.popleft()
        wait_chat = 0.0
        bucket: _Bucket | None = None
        window: deque[float] | None = None
        scope = "private"
        if chat_type == "private":
            bucket = self._private.get((bot_id, chat_id)) or _Bucket(float(cfg.private_burst), now)
            bucket.tokens = min(
                float(cfg.private_burst), bucket.tokens + (now - bucket.updated) * cfg.private_per_second
            )
            bucket.updated = now
            self._private[(bot_id, chat_id)] = bucket
            if bucket.tokens < 1.0:
                wait_chat = (1.0 - bucket.tokens) / cfg.private_per_second
        else:
            scope = "group"
            window = self._groups.setdefault((bot_id, chat_id), deque())
            while window and window[0] <= now - 60.0:
                window.popleft()
            if len(window) >= cfg.group_per_minute:
                wait_chat = window[0] + 60.0 - now
        if wait_chat > 0:
            self._reject(scope, chat_key, bot_id, chat_id, method, wait_chat, now)
        if len(overall) >= cfg.overall_per_second:
            self._reject("overall", overall_key, bot_id, chat_id, method, overall[0] + 1.0 - now, now)
        overall.append(now)
        if bucket is not None:
            bucket.tokens -= 1.0
        if window is not None:
            window.append(now)

    def _reject(
        self,
        scope: str,
        key: tuple[int, str, int],
        bot_id: int,
        chat_id: int,
        method: str,
        wait: float,
        now: float,
    ) -> None:
        """Record a 429 and raise it; retry_after is whole seconds, rounded up, at least 1."""
        retry_after = max(1, math.ceil(wait))
        event = RateLimitEvent(bot_id, scope, chat_id, method, retry_after, now, now + retry_after)
        self.events.append(event)
        self._open[key] = event
        raise ApiError(429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after})

    @property
    def stats(self) -> dict[str, int]:
        """Counters: 429s issued, honoured, not honoured, still open, and early retries."""
        return {
            "issued": len(self.events),
            "honoured": sum(1 for e in self.events if e.honoured is True),
            "not_honoured": sum(1 for e in self.events if e.honoured is False),
            "pending": sum(1 for e in self.events if e.honoured is None),
            "early_retries": self.early_retries,
        }


@dataclass
class Fault:
    """One armed fault: answer with an HTTP error, or stall before answering."""

    kind: str  # "fail" or "hang"
    remaining: int
    status: int = 500
    description: str | None = None
    seconds: float = 0.0
    execute: bool = False


_PHRASES = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass
class Faults:
    """Fault injection for the next calls of a method ("*" matches every method)."""

    armed: dict[str, list[Fault]] = field(default_factory=dict)

    def fail_next(
        self, method: str, status: int = 500, times: int = 1, description: str | None = None
    ) -> None:
        """Answer the next `times` calls of `method` with an error status (500, 502...)."""
        self.armed.setdefault(method.lower(), []).append(
            Fault("fail", times, status=status, description=description)
        )

    def hang_next(self, method: str, seconds: float, times: int = 1, *, execute: bool = False) -> None:
        """Stall the next `times` calls of `method` for `seconds` so the client times out.

        execute=False: stall first, then run the method only if the client is still connected.
        execute=True: run the method first, then stall, so the effect happened but the answer is lost.
        """
        self.armed.setdefault(method.lower(), []).append(
            Fault("hang", times, seconds=seconds, execute=execute)
        )

    def clear(self) -> None:
        """Disarm everything."""
        self.armed.clear()

    def take(self, method: str) -> Fault | None:
        """Consume one armed fault for a call of `method`, if any."""
        for key in (method.lower(), "*"):
            faults = self.armed.get(key)
            if faults:
                fault = faults[0]
                fault.remaining -= 1
                if fault.remaining <= 0:
                    faults.pop(0)
                return fault
        return None

    @staticmethod
    def error_for(fault: Fault) -> ApiError:
        """The error answer for a "fail" fault."""
        return ApiError(
            fault.status, fault.description or _PHRASES.get(fault.status, "Internal Server Error")
        )
