"""Group commit: inbound units of work that arrive together share one transaction and one commit."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger(__name__)
T = TypeVar("T")
_UNSET = object()
Work = Callable[[AsyncSession], Coroutine[Any, Any, Any]]


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
        self._queue: deque[tuple[Work, asyncio.Future[Any], contextvars.Context]] = deque()
        self._drainers: set[asyncio.Task[None]] = set()
        self.shared = 0  # transactions that carried more than one unit (a gauge for tests and benchmarks)

    async def run(self, work: Callable[[AsyncSession], Coroutine[Any, Any, T]]) -> T:
        """Run `work` in a transaction shared with units arriving meanwhile; its result once committed."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        # The unit runs in a copy of the caller's context: its request id stays on the log lines it
        # writes, and what it sets there (the case id for the access log) comes back afterwards.
        context = contextvars.copy_context()
        self._queue.append((work, future, context))
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
        batch: list[tuple[Work, asyncio.Future[Any], contextvars.Context]] = []
        try:
            while self._queue:
                batch = []
                while self._queue and len(batch) < self._max:
                    unit = self._queue.popleft()
                    if not unit[1].cancelled():  # the caller went away before its unit started
                        batch.append(unit)
                if len(batch) > 1 and await self._together(batch):
                    continue
                for unit in batch:
                    await self._alone(unit)
        finally:
            # Cancelled (shutdown): nobody is left waiting for an answer that will not come.
            for _work, future, _context in [*batch, *self._queue]:
                if not future.done():
                    future.cancel()

    async def _together(self, batch: list[tuple[Work, asyncio.Future[Any], contextvars.Context]]) -> bool:
        """Run the units in one transaction; False (all rolled back) if any of it failed."""
        try:
            async with self._transaction() as session:
                results: list[Any] = [
                    await asyncio.create_task(work(session), context=ctx) for work, _, ctx in batch
                ]
        except Exception as exc:
            log.info(
                "a transaction of %d units failed (%s); running them one by one",
                len(batch),
                type(exc).__name__,
            )
            return False
        self.shared += 1
        for (_work, future, _context), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
        return True

    async def _alone(self, unit: tuple[Work, asyncio.Future[Any], contextvars.Context]) -> None:
        work, future, context = unit
        try:
            async with self._transaction() as session:
                result: Any = await asyncio.create_task(work(session), context=context)
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(result)
