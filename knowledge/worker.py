"""Keeping each process's knowledge index current."""

from __future__ import annotations

import asyncio
import logging

from bot.runtime import Runtime
from knowledge.answerer import KnowledgeAnswerer

log = logging.getLogger(__name__)


async def prepare_index(rt: Runtime) -> None:
    """Build the index before the process serves its first message."""
    if isinstance(rt.answerer, KnowledgeAnswerer):
        count = await rt.answerer.reload(rt.maker)
        if count == 0:
            log.warning("the knowledge base is empty: every question goes to a person (`butler kb import`)")


async def run_index_refresh(rt: Runtime, stop: asyncio.Event) -> None:
    """Rebuild this process's index whenever any process announces a change."""
    if isinstance(rt.answerer, KnowledgeAnswerer):
        await rt.answerer.follow_changes(rt.maker, rt.bus, stop)
