"""Imports every domain's models so metadata is complete (Alembic, test schema)."""

from bot.bookings import models as bookings_models
from bot.conversations import models as conversations_models
from bot.db import Base
from bot.outbox import models as outbox_models
from bot.teams import models as teams_models
from bot.tg import models as tg_models
from escalation import models as escalation_models
from escalation import policy_store as sla_policy_models
from knowledge import models as knowledge_models

__all__ = [
    "Base",
    "bookings_models",
    "conversations_models",
    "escalation_models",
    "knowledge_models",
    "outbox_models",
    "sla_policy_models",
    "teams_models",
    "tg_models",
]
