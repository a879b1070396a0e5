"""The event-loop watch: a held loop is reported with its length, the CPU spent and where it was."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable

import pytest

from bot import metrics
from bot.app import create_app
from bot.loop_watch import LoopWatch
from bot.settings import Settings


@contextlib.asynccontextmanager
async def watching(threshold_s: float) -> AsyncIterator[LoopWatch]:
    watch = LoopWatch(threshold_s)
    task = asyncio.create_task(watch.run())
    await asyncio.sleep(0.1)  # a few beats first
    try:
        yield watch
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def waits_synchronously(seconds: float) -> None:
    time.sleep(seconds)


def computes(cpu_seconds: float) -> None:
    until = time.process_time() + cpu_seconds
    while time.process_time() < until:
        pass


def held(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("event loop held")]


def figures(message: str) -> tuple[float, float]:
    """(held ms, process CPU ms) from a warning."""
    words = message.split()
    return float(words[3]), float(words[7])


async def one_hold(caplog: pytest.LogCaptureFixture, hold: Callable[[], None]) -> tuple[str, float, float]:
    """Hold a watched loop (threshold 100 ms) once; the warning and its held and CPU ms."""
    caplog.set_level(logging.WARNING, logger="bot.loop_watch")
    async with watching(0.1):
        hold()
        await asyncio.sleep(0.1)
    [message] = held(caplog)
    return message, *figures(message)


async def test_a_synchronous_wait_is_reported_with_where_and_little_cpu(
    caplog: pytest.LogCaptureFixture,
) -> None:
    message, held_ms, cpu_ms = await one_hold(caplog, lambda: waits_synchronously(0.4))
    assert held_ms >= 350
    assert cpu_ms < held_ms / 2  # the process was not computing
    assert "waits_synchronously (ops/test_loop_watch.py:" in message


async def test_computing_is_reported_with_its_cpu(caplog: pytest.LogCaptureFixture) -> None:
    message, held_ms, cpu_ms = await one_hold(caplog, lambda: computes(0.3))
    assert held_ms >= 250 and cpu_ms >= 250
    assert "computes (ops/test_loop_watch.py:" in message


async def test_short_holds_only_count_and_collections_are_timed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="bot.loop_watch")
    beats = metrics.EVENT_LOOP_LAG.collect()[0]
    before = {s.name: s.value for s in beats.samples}
    collections = sum(s.value for s in metrics.GC_PAUSE.collect()[0].samples if s.name.endswith("_count"))
    async with watching(0.5):
        waits_synchronously(0.12)  # the next beat comes 70-120 ms late (a beat every 50 ms)
        gc.collect(0)  # the young generation: a full collection of a long test run's heap takes seconds
        await asyncio.sleep(0.1)
    assert held(caplog) == []
    after = {s.name: s.value for s in metrics.EVENT_LOOP_LAG.collect()[0].samples}
    assert after["butler_event_loop_lag_seconds_count"] > before["butler_event_loop_lag_seconds_count"]
    assert after["butler_event_loop_lag_seconds_sum"] - before["butler_event_loop_lag_seconds_sum"] >= 0.06
    assert (
        sum(s.value for s in metrics.GC_PAUSE.collect()[0].samples if s.name.endswith("_count")) > collections
    )


async def test_threshold_zero_keeps_the_metrics_without_a_thread(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="bot.loop_watch")
    async with watching(0):
        assert "loop-watch" not in [t.name for t in threading.enumerate()]
        waits_synchronously(0.2)
        await asyncio.sleep(0.05)
    assert held(caplog) == []


async def test_a_server_process_freezes_and_tunes_the_collector_and_watches_its_loop(
    settings: Settings,
) -> None:
    app = create_app(settings, server_process=True)
    thresholds = gc.get_threshold()
    try:
        async with app.router.lifespan_context(app):
            assert gc.get_threshold() == (settings.gc_young_threshold, 10, 10) == (5000, 10, 10)
            assert gc.get_freeze_count() > 0
            assert "loop-watch" in [t.get_name() for t in asyncio.all_tasks()]
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
