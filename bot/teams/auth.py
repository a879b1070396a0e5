"""Staff authentication: passwords, API tokens, failed-login throttling."""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections import defaultdict, deque
from typing import Any, NoReturn

from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.errors import DomainError
from bot.security import issue_staff_token, read_staff_token, verify_password
from bot.settings import Settings
from bot.teams import service as teams_service
from bot.teams.models import Staff

log = logging.getLogger(__name__)


class LoginThrottled(DomainError):
    """Too many failed logins; try again later."""

    status = 429


class Unauthorized(DomainError):
    """Missing or bad credentials."""

    status = 401


class LoginThrottle:
    """Refuses logins for a key (username + address) after repeated failures in a window (this process)."""

    def __init__(self, max_failures: int = 5, window_seconds: float = 300.0) -> None:
        self._max = max_failures
        self._window = window_seconds
        self._failures: dict[str, deque[float]] = defaultdict(deque)

    async def check(self, key: str) -> None:
        """Raise LoginThrottled if the key has failed too often recently."""
        recent = self._recent(key)
        if len(recent) >= self._max:
            _refuse(self._window - (time.time() - recent[0]))

    async def failed(self, key: str) -> None:
        """Count a failure."""
        self._recent(key).append(time.time())

    async def succeeded(self, key: str) -> None:
        """Forget failures after a good login."""
        self._failures.pop(key, None)

    async def close(self) -> None:
        """Nothing to release."""

    def _recent(self, key: str) -> deque[float]:
        q = self._failures[key]
        cutoff = time.time() - self._window
        while q and q[0] < cutoff:
            q.popleft()
        return q


def _refuse(wait: float) -> NoReturn:
    raise LoginThrottled("login.throttled", f"too many failed logins; try again in {int(wait) + 1} s")


class RedisLoginThrottle(LoginThrottle):
    """The same window kept in Redis, so N web processes allow 5 failures in all, not 5 each.

    Keys are hashes (no usernames or addresses in Redis). If Redis is unreachable, this process's
    own window takes over (logged): logins keep working and stay throttled per process.
    """

    def __init__(self, url: str, max_failures: int = 5, window_seconds: float = 300.0) -> None:
        from redis import asyncio as redis_asyncio

        super().__init__(max_failures, window_seconds)
        self._redis: Any = redis_asyncio.from_url(url, socket_timeout=2, socket_connect_timeout=2)

    @staticmethod
    def _key(key: str) -> str:
        return "butler:login:" + hashlib.sha256(key.encode()).hexdigest()[:32]

    async def check(self, key: str) -> None:
        """Raise LoginThrottled if the key has failed too often recently, in any process."""
        now, rkey = time.time(), self._key(key)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zremrangebyscore(rkey, "-inf", now - self._window)
                pipe.zrange(rkey, 0, 0, withscores=True)
                pipe.zcard(rkey)
                _, oldest, count = await pipe.execute()
        except RedisError as exc:
            log.warning(
                "login throttle: Redis unavailable (%s); counting in this process", type(exc).__name__
            )
            await super().check(key)
            return
        if count >= self._max:
            _refuse(self._window - (now - oldest[0][1]))

    async def failed(self, key: str) -> None:
        """Count a failure for every process."""
        await super().failed(key)  # also here, in case Redis goes away before the next try
        now, rkey = time.time(), self._key(key)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zadd(rkey, {f"{now}:{secrets.token_hex(4)}": now})
                pipe.expire(rkey, int(self._window) + 1)
                await pipe.execute()
        except RedisError as exc:
            log.warning("login throttle: failure not shared (%s)", type(exc).__name__)

    async def succeeded(self, key: str) -> None:
        """Forget failures after a good login, everywhere."""
        await super().succeeded(key)
        try:
            await self._redis.delete(self._key(key))
        except RedisError as exc:
            log.warning("login throttle: reset not shared (%s)", type(exc).__name__)

    async def close(self) -> None:
        """Close the Redis connections."""
        await self._redis.aclose()


def make_throttle(redis_url: str | None) -> LoginThrottle:
    """Shared through Redis when processes share one (production), else per process."""
    return RedisLoginThrottle(redis_url) if redis_url else LoginThrottle()


async def authenticate(
    session: AsyncSession, *, username: str, password: str, throttle: LoginThrottle, client: str
) -> Staff:
    """The active staff member with these credentials; Unauthorized or LoginThrottled otherwise."""
    key = f"{username.lower()}|{client}"
    await throttle.check(key)
    staff = await teams_service.get_staff_by_username(session, username=username.strip())
    ok = verify_password(staff.password_hash if staff else None, password)
    if staff is None or not ok or not staff.active:
        await throttle.failed(key)
        raise Unauthorized("auth.invalid", "wrong username or password")
    await throttle.succeeded(key)
    return staff


def token_for(settings: Settings, staff: Staff) -> str:
    """A bearer token for the REST API."""
    return issue_staff_token(settings.secret_key, staff_id=staff.id)


async def staff_from_token(session: AsyncSession, settings: Settings, token: str) -> Staff:
    """The active staff member a bearer token names; Unauthorized otherwise."""
    staff_id = read_staff_token(
        settings.secret_key, token, max_age_seconds=settings.api_token_ttl_hours * 3600
    )
    staff = await teams_service.get_staff(session, staff_id=staff_id) if staff_id else None
    if staff is None or not staff.active:
        raise Unauthorized("auth.token", "missing, invalid or expired token")
    return staff
