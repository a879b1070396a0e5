"""Console and API login: throttling after repeated failures (shared through Redis), cookie flags, CSRF."""

from __future__ import annotations

import secrets

import pytest

from bot.teams.auth import LoginThrottled, RedisLoginThrottle
from tests.conftest import REDIS_URL, need
from tests.live import DEMO_PASSWORD, LiveServer


def _csrf(page: str) -> str:
    marker = 'name="csrf" value="'
    start = page.index(marker) + len(marker)
    return page[start : page.index('"', start)]


async def test_failed_logins_are_throttled_then_the_right_password_is_refused_too(live: LiveServer) -> None:
    client = live.client()
    token = _csrf((await client.get("/console/login")).text)
    for _ in range(5):
        r = await client.post(
            "/console/login", data={"username": "service1", "password": "wrong", "csrf": token}
        )
        assert r.status_code == 401, r.text
    # The sixth try is refused before the password is even checked, with a clear message.
    r = await client.post(
        "/console/login", data={"username": "service1", "password": DEMO_PASSWORD, "csrf": token}
    )
    assert r.status_code == 429 and "try again in" in r.text
    api = await client.post("/api/v1/auth/token", json={"username": "service1", "password": DEMO_PASSWORD})
    assert api.status_code == 429, api.text
    # Other accounts are not locked out by someone guessing at service1.
    r = await client.post(
        "/console/login", data={"username": "sales1", "password": DEMO_PASSWORD, "csrf": token}
    )
    assert r.status_code == 303


async def test_session_cookie_is_httponly_and_samesite(live: LiveServer) -> None:
    client = live.client()
    page = await client.get("/console/login")
    r = await client.post(
        "/console/login", data={"username": "butler1", "password": DEMO_PASSWORD, "csrf": _csrf(page.text)}
    )
    assert r.status_code == 303
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    assert "secure" not in cookie  # plain http here; Secure is set when BUTLER_PUBLIC_URL is https


async def test_login_form_without_csrf_token_is_refused(live: LiveServer) -> None:
    client = live.client()
    await client.get("/console/login")
    r = await client.post("/console/login", data={"username": "butler1", "password": DEMO_PASSWORD})
    assert r.status_code in (400, 403), r.text
    assert (await client.get("/console/")).status_code in (303, 401)


async def test_failures_count_across_processes_sharing_redis() -> None:
    url = need(REDIS_URL, "BUTLER_TEST_REDIS_URL")
    web1, web2 = RedisLoginThrottle(url), RedisLoginThrottle(url)  # two web processes
    key = f"user-{secrets.token_hex(4)}|10.0.0.7"
    try:
        for throttle in (web1, web2, web1, web2, web1):
            await throttle.check(key)
            await throttle.failed(key)
        for throttle in (web1, web2):  # five in all: refused in every process
            with pytest.raises(LoginThrottled, match="try again in"):
                await throttle.check(key)
        await web2.check(f"other-{key}")  # another account is not affected
        await web1.succeeded(key)  # a good login (after the window) resets it everywhere
        await web2.check(key)
    finally:
        await web1.close()
        await web2.close()


async def test_throttle_keeps_counting_in_the_process_when_redis_is_away() -> None:
    throttle = RedisLoginThrottle("redis://127.0.0.1:1/0")
    try:
        for _ in range(5):
            await throttle.check("butler1|10.0.0.8")
            await throttle.failed("butler1|10.0.0.8")
        with pytest.raises(LoginThrottled):
            await throttle.check("butler1|10.0.0.8")
    finally:
        await throttle.close()
