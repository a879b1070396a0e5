"""Group commit: inbound units of work that arrive together share one transaction and one commit."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger(__name__)
T = TypeVar("T")
_UNSET = object()
Work = Callable[[AsyncSession], Coroutine[Any, Any, Any]]
# Looks up, for all units of a shared transaction that name it, what each would read by itself;
# called once per transaction with every such unit's key (see GroupCommit.run).
Prefetch = Callable[[AsyncSession, list[Any]], Awaitable[None]]


@dataclass(eq=False)
class _Unit:
    work: Work
    future: asyncio.Future[Any]
    context: contextvars.Context
    prefetch: tuple[Prefetch, Any] | None


class GroupCommit:
    """Runs units of work submitted concurrently in shared transactions, up to `lanes` at a time.

    Each inbound message paid a BEGIN and a COMMIT of its own (SQLite: a turn at the write lock and
    a sync of the log; PostgreSQL: a WAL flush), and the rows every unit queues for commit (outbox
    deliveries, channel ids) went in one INSERT per unit. Units that arrive while `lanes`
    transactions run now go together in the next one; a quiet process still commits each unit at
    once. One lane suits SQLite, which writes one transaction at a time anyway; PostgreSQL overlaps
    the round trips of several transactions, so there a few lanes each carry a batch.

    A shared transaction that fails is rolled back whole, and each of its units runs again alone:
    one bad unit fails by itself and the others commit. Units must not commit or roll back the
    session themselves (none does), and may run twice (as a redelivered webhook does).
    """

    def __init__(
        self,
        transaction: Callable[[], AbstractAsyncContextManager[AsyncSession]],
        *,
        max_units: int,
        lanes: int = 1,
    ) -> None:
        self._transaction = transaction
        self._max = max(1, max_units)
        self.lanes = max(1, lanes)
        self._queue: deque[_Unit] = deque()
        self._drainers: set[asyncio.Task[None]] = set()
        self.shared = 0  # transactions that carried more than one unit (a gauge for tests and benchmarks)

    async def run(
        self,
        work: Callable[[AsyncSession], Coroutine[Any, Any, T]],
        prefetch: tuple[Prefetch, Any] | None = None,
    ) -> T:
        """Run `work` in a transaction shared with units arriving meanwhile; its result once committed.

        `prefetch` is (lookup, key): when other units of the same transaction name the same lookup,
        it runs once for all their keys before any of them, so that each unit finds (in the session)
        what it would have read with a statement of its own. A unit must also work without it: alone,
        or with no other unit to share the lookup, it is not called.
        """
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        # The unit runs in a copy of the caller's context: its request id stays on the log lines it
        # writes, and what it sets there (the case id for the access log) comes back afterwards.
        context = contextvars.copy_context()
        self._queue.append(_Unit(work, future, context, prefetch))
        # A finished drainer may still be in the set until its done-callback runs: count live ones.
        if sum(not task.done() for task in self._drainers) < self.lanes:
            task = asyncio.create_task(self._drain(), name="group-commit")
            self._drainers.add(task)
            task.add_done_callback(self._drainers.discard)
        result = await future
        for var, value in context.items():
            if var.get(_UNSET) is not value:
                var.set(value)
        return result

    async def _drain(self) -> None:
        batch: list[_Unit] = []
        try:
            while self._queue:
                batch = []
                while self._queue and len(batch) < self._max:
                    unit = self._queue.popleft()
                    if not unit.future.cancelled():  # the caller went away before its unit started
                        batch.append(unit)
                if len(batch) > 1 and await self._together(batch):
                    continue
                for unit in batch:
                    await self._alone(unit)
        finally:
            # Cancelled (shutdown): nobody is left waiting for an answer that will not come.
            for unit in [*batch, *self._queue]:
                if not unit.future.done():
                    unit.future.cancel()

    async def _together(self, batch: list[_Unit]) -> bool:
        """Run the units in one transaction; False (all rolled back) if any of it failed."""
        try:
            async with self._transaction() as session:
                await _prefetch(session, batch)
                results: list[Any] = [
                    await asyncio.create_task(unit.work(session), context=unit.context) for unit in batch
                ]
        except Exception as exc:
            log.info(
                "a transaction of %d units failed (%s); running them one by one",
                len(batch),
                type(exc).__name__,
            )
            return False
        self.shared += 1
        for unit, result in zip(batch, results, strict=True):
            if not unit.future.done():
                unit.future.set_result(result)
        return True

    async def _alone(self, unit: _Unit) -> None:
        try:
            async with self._transaction() as session:
                result: Any = await asyncio.create_task(unit.work(session), context=unit.context)
        except Exception as exc:
            if not unit.future.done():
                unit.future.set_exception(exc)
            return
        if not unit.future.done():
            unit.future.set_result(result)


async def _prefetch(session: AsyncSession, batch: list[_Unit]) -> None:
    """Each lookup named by two or more units of the batch, once, with all their keys."""
    keys: dict[Prefetch, list[Any]] = {}
    for unit in batch:
        if unit.prefetch is not None:
            lookup, key = unit.prefetch
            keys.setdefault(lookup, []).append(key)
    for lookup, some in keys.items():
        if len(some) > 1:
            await lookup(session, some)
