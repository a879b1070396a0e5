"""Indexes for the manager dashboard (escalation/metrics.py)

Revision ID: 0004
Revises: 0005
Create Date: 2026-11-22 04:00:00.000000

Numbered 0004 but applied after 0005: 0005 (admin) was the head when this was written.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LIVE = "state IN ('running', 'paused', 'breached')"


def upgrade() -> None:
    """Apply."""
    # Backlog (resolved per day) and CSAT (asked per day) scan these by range.
    op.create_index("ix_cases_resolved_at", "cases", ["resolved_at"])
    op.create_index("ix_cases_csat_asked_at", "cases", ["csat_asked_at"])
    # Bot-resolved: "was a case opened in this group within W after the answer?"
    op.create_index("ix_cases_group_id_opened_at", "cases", ["group_id", "opened_at"])
    # Bot answers by time, and "did staff write in this group within W after it?".
    op.create_index(
        "ix_messages_bot_created_at",
        "messages",
        ["created_at"],
        postgresql_where=sa.text("author_kind = 'bot'"),
        sqlite_where=sa.text("author_kind = 'bot'"),
    )
    op.create_index(
        "ix_messages_staff_group_created_at",
        "messages",
        ["group_id", "created_at"],
        postgresql_where=sa.text("author_kind = 'staff'"),
        sqlite_where=sa.text("author_kind = 'staff'"),
    )
    # Tiles: live clocks by state (at risk, breached now, the escalation queue).
    op.create_index(
        "ix_sla_timers_live_state",
        "sla_timers",
        ["state", "due_at"],
        postgresql_where=sa.text(_LIVE),
        sqlite_where=sa.text(_LIVE),
    )


def downgrade() -> None:
    """Revert."""
    op.drop_index("ix_sla_timers_live_state", table_name="sla_timers")
    op.drop_index("ix_messages_staff_group_created_at", table_name="messages")
    op.drop_index("ix_messages_bot_created_at", table_name="messages")
    op.drop_index("ix_cases_group_id_opened_at", table_name="cases")
    op.drop_index("ix_cases_csat_asked_at", table_name="cases")
    op.drop_index("ix_cases_resolved_at", table_name="cases")
