"""Partial index: a group's bot answers, newest first

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 21:50:00

Every inbound message asks when the bot last answered in its group (a second question soon after
suggests the answer did not help). With only (group_id, id) and the dashboard's bot-answers-by-time
index, PostgreSQL combined both and read every bot answer ever written for each message (2,394 rows
for one lookup in the load benchmark, growing with the table). This index answers it with one entry.
Built CONCURRENTLY on PostgreSQL, so writes to messages go on meanwhile (docs/operations.md).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BOT = "author_kind = 'bot'"


def upgrade() -> None:
    """Apply."""
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_messages_bot_group_id_id",
            "messages",
            ["group_id", "id"],
            postgresql_where=sa.text(_BOT),
            sqlite_where=sa.text(_BOT),
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    """Revert."""
    with op.get_context().autocommit_block():
        op.drop_index("ix_messages_bot_group_id_id", table_name="messages", postgresql_concurrently=True)
