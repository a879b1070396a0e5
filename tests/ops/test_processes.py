"""`butler web --workers 2` and `butler worker` as real processes on SQLite and PostgreSQL.

Both answer /readyz; a customer message through the web processes is counted once in the summed
multiprocess metrics; the logs are JSON with request ids and without the message or phone number;
SIGTERM ends both with exit code 0 (the worker after finishing its passes).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bot.migrate import upgrade_async
from tests.conftest import PG_URL, REDIS_URL, drop_pg_database, make_pg_database, need
from tests.ops.conftest import metric

BUTLER = str(Path(sys.executable).parent / "butler")
START_TIMEOUT = 120.0  # a fresh process imports the whole app; CI machines are small and busy
PHONE = "+86 138 0013 8000"
SECRET_TEXT = "my secret brake noise story"


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_env(database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a butler process: this one's minus BUTLER_* and metrics settings."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("BUTLER_") and k != "PROMETHEUS_MULTIPROC_DIR"
    }
    env.update(
        BUTLER_DATABASE_URL=database_url,
        BUTLER_SECRET_KEY="ops-test-secret",
        BUTLER_KB_SEMANTIC="off",
        BUTLER_LOG_FORMAT="json",
        BUTLER_LOG_LEVEL="DEBUG",
        **extra,
    )
    return env


class Proc:
    """A butler subprocess whose stderr goes to a file."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.popen = subprocess.Popen(
            [BUTLER, *args], env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def log(self) -> str:
        """Everything the process printed so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, then wait; returns the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        """Make sure nothing is left running (this process and the children it started)."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)
        self._log.close()


def child_environs(pid: int) -> list[list[bytes]]:
    """The starting environment of each child process of `pid`."""
    kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [Path(f"/proc/{kid}/environ").read_bytes().split(b"\0") for kid in kids]


async def wait_ready(proc: Proc, url: str) -> httpx.Response:
    """Poll /readyz until it answers 200 (or the process dies, or time runs out)."""
    deadline = asyncio.get_running_loop().time() + START_TIMEOUT
    async with httpx.AsyncClient(timeout=10) as client:
        while True:
            if proc.popen.poll() is not None:
                raise AssertionError(f"process exited with {proc.popen.returncode}:\n{proc.log()[-3000:]}")
            try:
                r = await client.get(url + "/readyz")
                if r.status_code == 200:
                    return r
            except httpx.TransportError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{url} not ready in {START_TIMEOUT}s:\n{proc.log()[-3000:]}")
            await asyncio.sleep(0.5)


@pytest.fixture(params=["sqlite", "postgresql"])
async def migrated_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A migrated database on each backend (PostgreSQL when configured)."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'ops.db'}"
        await upgrade_async(url)
        yield url
        return
    base = need(PG_URL, "BUTLER_TEST_DATABASE_URL")
    url = await make_pg_database(base)
    try:
        await upgrade_async(url)
        yield url
    finally:
        await drop_pg_database(base, url)


async def test_web_and_worker_processes(migrated_url: str, tmp_path: Path) -> None:
    extra = {"BUTLER_REDIS_URL": REDIS_URL} if REDIS_URL and not migrated_url.startswith("sqlite") else {}
    env = process_env(migrated_url, **extra)
    web_port, health_port = free_port(), free_port()
    web = Proc(["web", "--workers", "2", "--port", str(web_port)], env, tmp_path / "web.log")
    worker = Proc(["worker", "--health-port", str(health_port)], env, tmp_path / "worker.log")
    web_url, worker_url = f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{health_port}"
    try:
        ready = await wait_ready(web, web_url)
        assert ready.json()["migrations"] == "head"
        if extra:
            assert ready.json()["redis"] == "ok"
        worker_ready = await wait_ready(worker, worker_url)
        assert worker_ready.json()["database"] == "ok"

        async with httpx.AsyncClient(base_url=web_url, timeout=30) as client:
            r = await client.post("/api/v1/webchat/sessions", json={"display_name": "Ops", "locale": "en"})
            assert r.status_code == 201
            chat = {"X-Webchat-Session": r.json()["session_id"], "X-Request-ID": "ops-test-1"}
            r = await client.post(
                "/api/v1/webchat/messages", json={"text": f"{SECRET_TEXT}, call me {PHONE}"}, headers=chat
            )
            assert r.status_code == 201, r.text
            assert r.headers["x-request-id"] == "ops-test-1"
            for _ in range(10):
                assert (await client.get("/healthz")).status_code == 200
            exposition = (await client.get("/metrics")).text
        # Summed over both web processes, whichever answered each request.
        assert metric(exposition, "butler_inbound_messages_total", channel="webchat", outcome="stored") == 1
        assert metric(exposition, "butler_inbound_latency_seconds_count", channel="webchat") == 1
        assert metric(exposition, "butler_http_requests_total", route="/healthz", status="200") == 10
        assert metric(exposition, "butler_metrics_database_up") == 1
        assert "butler_outbox_depth" in exposition
        # Server processes watch their event loop (bot.loop_watch): a beat every 50 ms.
        assert metric(exposition, "butler_event_loop_lag_seconds_count") >= 2

        # uvicorn's worker processes start with glibc's arenas capped (bot.processes.limit_malloc_arenas).
        environs = child_environs(web.popen.pid)
        assert len(environs) >= 2 and all(b"MALLOC_ARENA_MAX=2" in env for env in environs)  # + a helper

        async with httpx.AsyncClient(timeout=30) as client:
            worker_metrics = (await client.get(worker_url + "/metrics")).text
        assert "butler_sla_timers_due" in worker_metrics
        assert metric(worker_metrics, "butler_event_loop_lag_seconds_count") >= 1

        assert worker.stop() == 0
        assert web.stop() == 0
    finally:
        worker.kill()
        web.kill()

    worker_log = worker.log()
    assert "worker stopping: finishing the current passes" in worker_log
    assert "worker stopped" in worker_log
    web_log = web.log()
    lines = [json.loads(line) for line in web_log.splitlines() if line.startswith("{")]
    assert lines, web_log[-2000:]
    assert len(lines) == len([ln for ln in web_log.splitlines() if ln.strip()]), "every log line is JSON"
    access = [ln for ln in lines if ln["logger"] == "butler.access" and ln.get("request_id") == "ops-test-1"]
    assert access and access[0]["route"] == "/api/v1/webchat/messages"
    assert access[0].get("case_id") is not None
    # Every process runs on uvloop: Settings.event_loop "auto" and uvloop pinned in pyproject.toml.
    worker_lines = [json.loads(line) for line in worker_log.splitlines() if line.startswith("{")]
    assert [ln["msg"] for ln in lines if ln["msg"].startswith("event loop:")] == ["event loop: uvloop"] * 2
    assert [ln["msg"] for ln in worker_lines if ln["msg"].startswith("event loop:")] == ["event loop: uvloop"]
    for text in (web_log, worker_log):
        assert SECRET_TEXT not in text
        assert PHONE not in text and "13800138000" not in text


def test_event_loop_choice() -> None:
    import uvloop

    from bot.processes import loop_factory

    assert loop_factory("auto") is uvloop.new_event_loop
    assert loop_factory("uvloop") is uvloop.new_event_loop
    assert loop_factory("asyncio") is asyncio.new_event_loop


def test_malloc_arenas_are_capped_unless_the_operator_chose(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.processes import limit_malloc_arenas

    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False
    assert os.environ["MALLOC_ARENA_MAX"] == "4"
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    assert limit_malloc_arenas() is True  # glibc accepted the cap
    assert os.environ["MALLOC_ARENA_MAX"] == "2"
