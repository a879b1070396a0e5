"""The engine's Router backed by the bilingual routing classifier."""

from __future__ import annotations

from bot.conversations.routing import RoutingDecision
from knowledge import routing


class KnowledgeRouter:
    """Routes requests with knowledge.routing (complaints and safety first, then keyword votes)."""

    def route(
        self, text: str, *, locale: str, recent_case_count: int = 0, kb_hint: str | None = None
    ) -> RoutingDecision:
        """Category, priority and the reason shown to staff."""
        decision = routing.route_request(
            text, locale=locale, kb_hint=kb_hint, recent_case_count=recent_case_count
        )
        return RoutingDecision(decision.category, decision.priority, decision.reason)
