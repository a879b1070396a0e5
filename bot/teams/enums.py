"""Staff roles and channels."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """What a staff member does; the first four make up a butler team."""

    BUTLER = "butler"
    SALES = "sales"
    SERVICE = "service"
    FACTORY = "factory"
    LEAD = "lead"
    MANAGER = "manager"
    ADMIN = "admin"


TEAM_ROLES: tuple[Role, ...] = (Role.BUTLER, Role.SALES, Role.SERVICE, Role.FACTORY)
SUPERVISOR_ROLES: tuple[Role, ...] = (Role.LEAD, Role.MANAGER, Role.ADMIN)


class Channel(StrEnum):
    """Where a customer or staff message comes from or goes to."""

    WEBCHAT = "webchat"
    TELEGRAM = "telegram"
    CONSOLE = "console"
    API = "api"
