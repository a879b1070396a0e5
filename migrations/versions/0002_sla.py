"""SLA timers (clock + ladder cursor) and SLA events

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 02:26:34.775190
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import bot.db

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply."""
    op.create_table(
        "sla_timers",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("metric", sa.String(length=16), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("policy", sa.String(length=64), nullable=False),
        sa.Column("calendar", sa.String(length=64), nullable=False),
        sa.Column("target_seconds", sa.Float(), nullable=False),
        sa.Column("started_at", bot.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("due_at", bot.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("paused_at", bot.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("paused_seconds", sa.Float(), nullable=False),
        sa.Column(
            "pauses",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("pause_when_waiting", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("breached_at", bot.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", bot.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column(
            "ladder",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("next_step", sa.Integer(), nullable=False),
        sa.Column("next_due_at", bot.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("replaced_by_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_sla_timers_case_id_cases"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["replaced_by_id"],
            ["sla_timers.id"],
            name=op.f("fk_sla_timers_replaced_by_id_sla_timers"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sla_timers")),
    )
    with op.batch_alter_table("sla_timers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sla_timers_case_id"), ["case_id"], unique=False)
        batch_op.create_index(
            "ix_sla_timers_next_due_at",
            ["next_due_at"],
            unique=False,
            postgresql_where=sa.text("next_due_at IS NOT NULL"),
            sqlite_where=sa.text("next_due_at IS NOT NULL"),
        )
        batch_op.create_index(
            "uq_sla_timers_active",
            ["case_id", "metric"],
            unique=True,
            postgresql_where=sa.text("state IN ('running', 'paused', 'breached')"),
            sqlite_where=sa.text("state IN ('running', 'paused', 'breached')"),
        )

    op.create_table(
        "sla_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("timer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("metric", sa.String(length=16), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("step", sa.Integer(), nullable=True),
        sa.Column("at", bot.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("staff_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("target_staff_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column(
            "data", sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_sla_events_case_id_cases"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["staff_id"], ["staff.id"], name=op.f("fk_sla_events_staff_id_staff"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["target_staff_id"],
            ["staff.id"],
            name=op.f("fk_sla_events_target_staff_id_staff"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["timer_id"],
            ["sla_timers.id"],
            name=op.f("fk_sla_events_timer_id_sla_timers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sla_events")),
        sa.UniqueConstraint("timer_id", "step", name=op.f("uq_sla_events_timer_id_step")),
    )
    with op.batch_alter_table("sla_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sla_events_case_id"), ["case_id"], unique=False)
        batch_op.create_index("ix_sla_events_kind_at", ["kind", "at"], unique=False)


def downgrade() -> None:
    """Revert."""
    with op.batch_alter_table("sla_events", schema=None) as batch_op:
        batch_op.drop_index("ix_sla_events_kind_at")
        batch_op.drop_index(batch_op.f("ix_sla_events_case_id"))

    op.drop_table("sla_events")
    with op.batch_alter_table("sla_timers", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_sla_timers_active",
            postgresql_where=sa.text("state IN ('running', 'paused', 'breached')"),
            sqlite_where=sa.text("state IN ('running', 'paused', 'breached')"),
        )
        batch_op.drop_index(
            "ix_sla_timers_next_due_at",
            postgresql_where=sa.text("next_due_at IS NOT NULL"),
            sqlite_where=sa.text("next_due_at IS NOT NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_sla_timers_case_id"))

    op.drop_table("sla_timers")
