"""The runtime: everything a flow needs (settings, db, bus, clock, collaborators), built by the factory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.bus import EventBus, take_pending
from bot.clock import Clock
from bot.conversations.routing import Router
from bot.group_commit import GroupCommit, Prefetch
from bot.metrics import run_after_commit
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.conversations.models import Message
    from bot.outbox.sender import Deliverer, OutboxSender
    from bot.teams.models import ButlerGroup, ChannelIdentity, Staff
    from escalation.engine import SlaEngine

T = TypeVar("T")


@dataclass(frozen=True)
class AutoAnswer:
    """A knowledge-base answer confident enough to send."""

    topic: str
    text: str
    score: float
    locale: str
    category: str = "general"
    actions: tuple[str, ...] = ()


class Answerer(Protocol):
    """Answers from the knowledge base, or returns None to hand off."""

    def answer(self, text: str, *, locale: str) -> AutoAnswer | None: ...

    def suggest(self, text: str, *, locale: str, k: int = 3) -> list[AutoAnswer]: ...

    def consult(self, text: str, *, locale: str) -> tuple[AutoAnswer | None, AutoAnswer | None]: ...


class ChannelBridge(Protocol):
    """A push channel (Telegram): customer delivery, staff-side mirroring, staff notifications."""

    async def to_customer(
        self, session: AsyncSession, *, identity: ChannelIdentity, message: Message, buttons: list[str]
    ) -> None: ...

    async def mirror(self, session: AsyncSession, *, group: ButlerGroup, message: Message) -> None: ...

    async def notify_staff(self, session: AsyncSession, *, staff: Staff, text: str) -> None: ...


@dataclass
class Runtime:
    """Shared collaborators of one process."""

    settings: Settings
    engine: AsyncEngine
    maker: async_sessionmaker[AsyncSession]
    bus: EventBus
    clock: Clock
    router: Router
    sla: SlaEngine
    answerer: Answerer | None = None
    bridges: dict[str, ChannelBridge] = field(default_factory=dict)
    deliverers: dict[str, Deliverer] = field(default_factory=dict)
    sender: OutboxSender | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    # SQLite has one write lock, and its busy handler makes waiting writers sleep and poll (up to
    # 100 ms a try, no order): units of work queue here instead, first come first served.
    serial: asyncio.Lock | None = None
    group_commit: GroupCommit | None = None  # see unit_of_work

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A unit of work: commit on success, then publish its live events (never before commit)."""
        async with self.maker() as session:
            async with self.serial or contextlib.nullcontext(), session.begin():
                yield session
            events = take_pending(session)
            run_after_commit(session)  # metrics count committed work only
        await self.publish(events)

    async def unit_of_work(
        self,
        work: Callable[[AsyncSession], Coroutine[Any, Any, T]],
        prefetch: tuple[Prefetch, Any] | None = None,
    ) -> T:
        """An inbound message's unit of work: in a transaction shared with those arriving meanwhile.

        See bot.group_commit: `work` may run twice (alone after a shared transaction failed), its
        result is returned once committed, and `prefetch` may look up its rows along with others'.
        """
        if self.group_commit is None:
            async with self.transaction() as session:
                return await work(session)
        return await self.group_commit.run(work, prefetch)

    async def publish(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        """Send committed events to the bus, waking the local outbox sender directly."""
        if self.sender is not None and any(topic == "outbox" for topic, _ in events):
            self.sender.wake()
        await self.bus.publish_many(events)
