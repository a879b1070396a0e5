"""Staff authentication: passwords, API tokens, failed-login throttling."""

from __future__ import annotations

import time
from collections import defaultdict, deque

from sqlalchemy.ext.asyncio import AsyncSession

from bot.errors import DomainError
from bot.security import issue_staff_token, read_staff_token, verify_password
from bot.settings import Settings
from bot.teams import service as teams_service
from bot.teams.models import Staff


class LoginThrottled(DomainError):
    """Too many failed logins; try again later."""

    status = 429


class Unauthorized(DomainError):
    """Missing or bad credentials."""

    status = 401


class LoginThrottle:
    """Refuses logins for a key (username + address) after repeated failures in a window."""

    def __init__(self, max_failures: int = 5, window_seconds: float = 300.0) -> None:
        self._max = max_failures
        self._window = window_seconds
        self._failures: dict[str, deque[float]] = defaultdict(deque)

    def check(self, key: str) -> None:
        """Raise LoginThrottled if the key has failed too often recently."""
        recent = self._recent(key)
        if len(recent) >= self._max:
            wait = int(self._window - (time.monotonic() - recent[0])) + 1
            raise LoginThrottled("login.throttled", f"too many failed logins; try again in {wait} s")

    def failed(self, key: str) -> None:
        """Count a failure."""
        self._recent(key).append(time.monotonic())

    def succeeded(self, key: str) -> None:
        """Forget failures after a good login."""
        self._failures.pop(key, None)

    def _recent(self, key: str) -> deque[float]:
        q = self._failures[key]
        cutoff = time.monotonic() - self._window
        while q and q[0] < cutoff:
            q.popleft()
        return q


async def authenticate(
    session: AsyncSession, *, username: str, password: str, throttle: LoginThrottle, client: str
) -> Staff:
    """The active staff member with these credentials; Unauthorized or LoginThrottled otherwise."""
    key = f"{username.lower()}|{client}"
    throttle.check(key)
    staff = await teams_service.get_staff_by_username(session, username=username.strip())
    ok = verify_password(staff.password_hash if staff else None, password)
    if staff is None or not ok or not staff.active:
        throttle.failed(key)
        raise Unauthorized("auth.invalid", "wrong username or password")
    throttle.succeeded(key)
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
