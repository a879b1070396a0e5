"""Case categories, priorities, statuses, and message authors."""

from __future__ import annotations

from enum import StrEnum


class Category(StrEnum):
    """Which kind of specialist a case needs."""

    SALES = "sales"
    SERVICE = "service"
    FACTORY = "factory"
    COMPLAINT = "complaint"
    GENERAL = "general"


class Priority(StrEnum):
    """How urgent a case is."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class CaseStatus(StrEnum):
    """Lifecycle of a case."""

    OPEN = "open"
    WAITING_STAFF = "waiting_staff"
    WAITING_CUSTOMER = "waiting_customer"
    RESOLVED = "resolved"
    CLOSED = "closed"


ACTIVE_STATUSES: tuple[CaseStatus, ...] = (
    CaseStatus.OPEN,
    CaseStatus.WAITING_STAFF,
    CaseStatus.WAITING_CUSTOMER,
)


class AuthorKind(StrEnum):
    """Who wrote a message."""

    CUSTOMER = "customer"
    STAFF = "staff"
    BOT = "bot"
    SYSTEM = "system"
