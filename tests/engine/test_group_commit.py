"""Group commit: concurrent inbound units share transactions; a failing unit fails alone."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import FrozenClock
from bot.factory import build_runtime, close_runtime
from bot.group_commit import GroupCommit
from bot.outbox import service as outbox_service
from bot.outbox.models import OutboxRow
from bot.runtime import Runtime
from bot.settings import Settings

_REQUEST: contextvars.ContextVar[str] = contextvars.ContextVar("request", default="-")
_CASE: contextvars.ContextVar[str] = contextvars.ContextVar("case", default="-")


def _unit(
    rt: Runtime, text: str, *, fail: bool = False
) -> Callable[[AsyncSession], Coroutine[Any, Any, Any]]:
    async def work(session: AsyncSession) -> tuple[str, str]:
        _CASE.set(f"case-{text}")  # as the flows set the case id for the access log
        outbox_service.enqueue(
            session, channel="test", lane=f"lane:{text}", payload={"text": text}, now=rt.clock.now()
        )
        await session.flush()
        if fail:
            raise ValueError(f"unit {text} refuses")
        return text, _REQUEST.get()

    return work


async def _submit(rt: Runtime, text: str, *, fail: bool = False) -> tuple[str, str]:
    _REQUEST.set(f"req-{text}")
    result = await rt.unit_of_work(_unit(rt, text, fail=fail))
    assert _CASE.get() == f"case-{text}", "what the unit set in its context is the caller's afterwards"
    return result


async def _stored(rt: Runtime) -> list[str]:
    async with rt.maker() as session:
        rows = (await session.scalars(select(OutboxRow).order_by(OutboxRow.id))).all()
    return [r.payload["text"] for r in rows]


def _count_commits(rt: Runtime) -> list[int]:
    commits: list[int] = []
    event.listen(rt.engine.sync_engine, "commit", lambda _conn: commits.append(1))
    return commits


@pytest.fixture
async def grouped(settings: Settings, clock: FrozenClock) -> AsyncIterator[Runtime]:
    """A runtime with group commit on (the default on SQLite; PostgreSQL may switch it on)."""
    rt = build_runtime(settings.model_copy(update={"db_group_commit": 32}), clock=clock)
    yield rt
    await close_runtime(rt)


async def test_units_arriving_together_share_a_commit_and_keep_their_order_and_context(
    grouped: Runtime,
) -> None:
    rt = grouped
    assert rt.group_commit is not None
    commits = _count_commits(rt)
    texts = [f"m{i:02d}" for i in range(20)]
    results = await asyncio.gather(*(_submit(rt, text) for text in texts))
    assert results == [(text, f"req-{text}") for text in texts]  # each unit saw its own request's context
    assert await _stored(rt) == texts, "all committed, in arrival order"
    assert len(commits) < 5, commits  # 20 with a transaction each
    assert rt.group_commit.shared >= 1


async def test_a_failing_unit_fails_alone_and_the_others_commit(grouped: Runtime) -> None:
    rt = grouped
    texts = [f"m{i:02d}" for i in range(10)]
    outcomes = await asyncio.gather(
        *(_submit(rt, text, fail=text == "m04") for text in texts), return_exceptions=True
    )
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(failed) == 1 and isinstance(failed[0], ValueError) and "m04" in str(failed[0])
    assert await _stored(rt) == [t for t in texts if t != "m04"], "nothing of the failed unit is kept"


async def test_an_idle_process_commits_each_unit_at_once(grouped: Runtime) -> None:
    rt = grouped
    commits = _count_commits(rt)
    for text in ("a", "b", "c"):
        assert await _submit(rt, text) == (text, f"req-{text}")
        assert await _stored(rt) == ["a", "b", "c"][: ["a", "b", "c"].index(text) + 1]
    assert len(commits) == 3


async def test_one_unit_per_transaction_when_switched_off(settings: Settings, clock: FrozenClock) -> None:
    rt = build_runtime(settings.model_copy(update={"db_group_commit": 1}), clock=clock)
    try:
        assert rt.group_commit is None
        commits = _count_commits(rt)
        await asyncio.gather(*(_submit(rt, f"m{i}") for i in range(5)))
        assert len(commits) == 5 and len(await _stored(rt)) == 5
    finally:
        await close_runtime(rt)


def test_on_by_default_one_lane_on_sqlite_two_on_postgresql(rt: Runtime) -> None:
    assert rt.group_commit is not None
    assert rt.group_commit.lanes == (1 if rt.engine.dialect.name == "sqlite" else 2)


async def test_lanes_run_shared_transactions_side_by_side() -> None:
    """With lanes, units queued behind busy transactions go in batches, at most `lanes` at once."""
    open_now, most_open, sizes = 0, 0, []
    release = asyncio.Event()

    @contextlib.asynccontextmanager
    async def transaction() -> AsyncIterator[Any]:
        nonlocal open_now, most_open
        open_now += 1
        most_open = max(most_open, open_now)
        units: list[int] = []
        try:
            yield units
            await release.wait()  # the commit's round trip: the transaction stays open meanwhile
        finally:
            open_now -= 1
            sizes.append(len(units))

    async def work(units: Any) -> int:
        units.append(1)
        return len(units)

    group = GroupCommit(transaction, max_units=8, lanes=3)
    first = []
    for _ in range(3):  # one at a time: each finds the lanes before it busy and opens one more
        first.append(asyncio.create_task(group.run(work)))
        await asyncio.sleep(0.001)
    later = [asyncio.create_task(group.run(work)) for _ in range(12)]
    await asyncio.sleep(0.01)
    assert open_now == 3, "a fourth transaction waits for a lane"
    release.set()
    await asyncio.gather(*first, *later)
    assert most_open == 3
    assert sorted(sizes) == [1, 1, 1, 4, 8], "the queued units went in batches of up to 8"


def _recording(sizes: list[int]) -> Callable[[], contextlib.AbstractAsyncContextManager[Any]]:
    """A stand-in transaction (a list the units append to) that records how many units it carried."""

    @contextlib.asynccontextmanager
    async def transaction() -> AsyncIterator[Any]:
        units: list[int] = []
        yield units
        sizes.append(len(units))

    return transaction


async def test_a_lookup_named_by_several_units_runs_once_for_all_of_them() -> None:
    """Prefetch: once per shared transaction with every naming unit's key; never for a unit alone."""
    calls: list[tuple[str, list[Any]]] = []
    sizes: list[int] = []

    def lookup(name: str) -> Any:
        async def run(_session: Any, keys: list[Any]) -> None:
            calls.append((name, keys))

        return run

    claims, senders = lookup("claims"), lookup("senders")

    async def work(units: Any) -> None:
        units.append(1)

    group = GroupCommit(_recording(sizes), max_units=8)
    await group.run(work, (claims, 0))  # alone: nothing to share
    together = [group.run(work, (claims, k)) for k in (1, 2, 3)] + [group.run(work, (senders, "a"))]
    await asyncio.gather(*together, group.run(work))
    assert sizes == [1, 5], sizes
    assert calls == [("claims", [1, 2, 3])], "named by one unit only, `senders` is not worth a lookup"


async def test_a_failing_lookup_sends_its_units_alone() -> None:
    sizes: list[int] = []

    async def broken(_session: Any, _keys: list[Any]) -> None:
        raise ConnectionError("the lookup's round trip failed")

    async def work(units: Any) -> str:
        units.append(1)
        return "done"

    group = GroupCommit(_recording(sizes), max_units=8)
    assert await asyncio.gather(*(group.run(work, (broken, k)) for k in range(3))) == ["done"] * 3
    assert sizes == [1, 1, 1], "rolled back together, then each alone (where no lookup runs)"
