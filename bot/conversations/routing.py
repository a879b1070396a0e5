"""Routing decision for requests a person must handle: which role, how urgent, and why."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bot.conversations.enums import Category
from bot.teams.enums import Role

ROLE_FOR_CATEGORY: dict[str, str] = {
    Category.SALES: Role.SALES,
    Category.SERVICE: Role.SERVICE,
    Category.FACTORY: Role.FACTORY,
    Category.COMPLAINT: Role.BUTLER,
    Category.GENERAL: Role.BUTLER,
}


@dataclass(frozen=True)
class RoutingDecision:
    """Where a request goes; `reason` is shown to staff."""

    category: str
    priority: str
    reason: str


class Router(Protocol):
    """Classifies a request that needs a person."""

    def route(
        self, text: str, *, locale: str, recent_case_count: int = 0, kb_hint: str | None = None
    ) -> RoutingDecision: ...
