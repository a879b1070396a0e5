"""Event-loop watch: how late the loop runs, how long collections pause it, and what blocked it.

One process serves every request on one event loop, so anything that holds the loop (a slow
callback, a long garbage collection, a synchronous call, or the OS not scheduling the process)
delays every message in flight at once. A percentile in a load test shows that it happened; this
says where. A task on the loop beats every `TICK` seconds and records how late each beat came
(`butler_event_loop_lag_seconds`); `gc.callbacks` time each collection (`butler_gc_pause_seconds`).
While the loop has been silent longer than the threshold, a daemon thread samples the loop thread's
stack; the beat that ends the hold logs one warning: how long the loop was held, how much CPU the
process used meanwhile (about the whole time: Python code ran; far less: a synchronous wait, or the
machine did not run the process), how much of it went to collections, and where the loop was.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import threading
import time
import traceback
from collections import Counter as Tally
from typing import Any

from bot.metrics import EVENT_LOOP_LAG as LAG
from bot.metrics import GC_PAUSE

log = logging.getLogger(__name__)

# Each beat wakes the loop; 20 a second cost next to nothing. A hold is measured to within a tick.
TICK = 0.05


class LoopWatch:
    """Beats on the running loop; warns each time a beat came more than `threshold_s` late."""

    def __init__(self, threshold_s: float) -> None:
        self.threshold = threshold_s
        self._beat = time.perf_counter()
        self._stacks: Tally[str] = Tally()
        self._stacks_of = 0.0  # the beat after which the stacks in `_stacks` were sampled
        self._gc_started = 0.0
        self._gc_since_beat = 0.0
        self._loop_thread = threading.get_ident()
        self._stop = threading.Event()

    async def run(self) -> None:
        """Beat until cancelled, with the sampling thread alongside (none when the threshold is 0)."""
        self._loop_thread = threading.get_ident()
        gc.callbacks.append(self._on_gc)
        thread = threading.Thread(target=self._sample_while_held, name="loop-watch", daemon=True)
        if self.threshold > 0:
            thread.start()
        cpu = time.process_time()
        try:
            while True:
                due = time.perf_counter() + TICK
                await asyncio.sleep(TICK)
                now, cpu_now = time.perf_counter(), time.process_time()
                late = max(0.0, now - due)
                LAG.observe(late)
                if self.threshold and late > self.threshold:
                    self._report(late, cpu_now - cpu)
                self._beat, cpu, self._gc_since_beat = now, cpu_now, 0.0
        finally:
            gc.callbacks.remove(self._on_gc)
            self._stop.set()
            if thread.is_alive():
                thread.join(timeout=1.0)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
            return
        pause = time.perf_counter() - self._gc_started
        self._gc_since_beat += pause
        GC_PAUSE.labels(str(info.get("generation", "?"))).observe(pause)

    def _sample_while_held(self) -> None:
        """Thread: while the loop has not beaten for longer than the threshold, note where it is."""
        # Asleep until a hold could begin (each wake-up takes the GIL from the loop), then every
        # quarter threshold while it lasts.
        pause = self.threshold
        while not self._stop.wait(pause):
            beat = self._beat
            silent = time.perf_counter() - beat
            if silent <= self.threshold:
                pause = max(self.threshold - silent, self.threshold / 4)
                continue
            pause = self.threshold / 4
            frame = sys._current_frames().get(self._loop_thread)
            if frame is None:
                continue
            if self._stacks_of != beat:  # a new hold
                self._stacks, self._stacks_of = Tally(), beat
            where = reversed(traceback.extract_stack(frame)[-6:])
            self._stacks[" < ".join(f"{f.name} ({_short(f.filename)}:{f.lineno})" for f in where)] += 1

    def _report(self, late: float, cpu: float) -> None:
        stacks = self._stacks if self._stacks_of == self._beat else Tally()
        where = "; ".join(f"{n}x {stack}" for stack, n in stacks.most_common(3)) or "no sample"
        # CPU and collections are counted from the previous beat: the hold plus one tick.
        log.warning(
            "event loop held %.0f ms (process CPU %.0f ms, garbage collection %.0f ms) at %s",
            late * 1000,
            cpu * 1000,
            self._gc_since_beat * 1000,
            where,
        )


def _short(path: str) -> str:
    """The last two parts of a source path: enough to find it, short enough for a log line."""
    return "/".join(path.replace("\\", "/").split("/")[-2:])
