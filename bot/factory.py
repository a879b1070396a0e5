"""Builds the runtime of a process from Settings: database, bus, clock, collaborators."""

from __future__ import annotations

import asyncio

from bot.bus import make_bus
from bot.clock import Clock, SystemClock
from bot.conversations.routing import Router
from bot.db import make_engine, make_sessionmaker
from bot.group_commit import GroupCommit
from bot.runtime import Runtime
from bot.settings import Settings
from escalation.engine import SlaEngine
from knowledge.answerer import KnowledgeAnswerer
from knowledge.matcher import MatcherConfig
from knowledge.router import KnowledgeRouter


def build_runtime(settings: Settings, *, clock: Clock | None = None, router: Router | None = None) -> Runtime:
    """Wire the collaborators; nothing connects until first use."""
    engine = make_engine(settings.database_url, pool_size=settings.db_pool_size)
    rt = Runtime(
        settings=settings,
        engine=engine,
        maker=make_sessionmaker(engine),
        bus=make_bus(settings.redis_url),
        clock=clock or SystemClock(),
        router=router or KnowledgeRouter(),
        answerer=KnowledgeAnswerer(MatcherConfig(semantic=settings.kb_semantic)),
        sla=SlaEngine(settings),
        serial=asyncio.Lock() if engine.dialect.name == "sqlite" else None,
    )
    # SQLite writes one transaction at a time anyway, so sharing costs nothing there. On PostgreSQL
    # it took a quarter off the database's CPU per message but a fifth off one process's rate: the
    # units of a shared transaction wait for their round trips one after another, where separate
    # transactions overlap them (docs/BENCHMARKS.md). So there it is off unless asked for.
    group = settings.db_group_commit or (32 if engine.dialect.name == "sqlite" else 1)
    if group > 1:
        rt.group_commit = GroupCommit(rt.transaction, max_units=group)
    return rt


async def close_runtime(rt: Runtime) -> None:
    """Release connections."""
    await rt.bus.close()
    await rt.engine.dispose()
