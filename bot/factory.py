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
    # SQLite writes one transaction at a time anyway, so one shared transaction at a time costs
    # nothing there. On PostgreSQL a single one made units wait for their round trips one after
    # another, where separate transactions overlap them; two at a time overlap the round trips and
    # still share the BEGIN, the COMMIT (a WAL flush) and the commit-time INSERTs among the units
    # that arrive meanwhile: a third less CPU per message in the web process (docs/BENCHMARKS.md).
    sqlite = engine.dialect.name == "sqlite"
    group = settings.db_group_commit or (32 if sqlite else 16)
    lanes = settings.db_group_commit_lanes or (1 if sqlite else 2)
    if group > 1:
        rt.group_commit = GroupCommit(rt.transaction, max_units=group, lanes=lanes)
    return rt


async def close_runtime(rt: Runtime) -> None:
    """Release connections."""
    await rt.bus.close()
    await rt.engine.dispose()
