"""Telegram channel: update receipts, staff topics, staff link tokens, booking drafts

Revision ID: 0003
Revises: 0004
Create Date: 2026-11-22 04:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import bot.db

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql")


def upgrade() -> None:
    """Apply."""
    op.create_table(
        "telegram_updates",
        sa.Column("update_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("received_at", bot.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("update_id", name=op.f("pk_telegram_updates")),
    )
    with op.batch_alter_table("telegram_updates", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_telegram_updates_received_at"), ["received_at"], unique=False)

    op.create_table(
        "telegram_topics",
        sa.Column("group_id", BIG_ID, autoincrement=False, nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("thread_id", sa.BigInteger(), nullable=True),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("requested_at", bot.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("created_at", bot.db.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["butler_groups.id"],
            name=op.f("fk_telegram_topics_group_id_butler_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_id", name=op.f("pk_telegram_topics")),
        sa.UniqueConstraint("chat_id", "thread_id", name=op.f("uq_telegram_topics_chat_id_thread_id")),
    )

    op.create_table(
        "telegram_link_tokens",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("staff_id", BIG_ID, nullable=False),
        sa.Column("created_at", bot.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", bot.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("used_at", bot.db.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["staff_id"],
            ["staff.id"],
            name=op.f("fk_telegram_link_tokens_staff_id_staff"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telegram_link_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_telegram_link_tokens_token_hash")),
    )
    with op.batch_alter_table("telegram_link_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_telegram_link_tokens_staff_id"), ["staff_id"], unique=False)

    op.create_table(
        "booking_drafts",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("customer_id", BIG_ID, nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("step", sa.String(length=24), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.Column("case_id", BIG_ID, nullable=True),
        sa.Column("created_at", bot.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", bot.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_booking_drafts_case_id_cases"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_booking_drafts_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_booking_drafts")),
    )
    with op.batch_alter_table("booking_drafts", schema=None) as batch_op:
        batch_op.create_index("ix_booking_drafts_customer_status", ["customer_id", "status"], unique=False)


def downgrade() -> None:
    """Revert."""
    with op.batch_alter_table("booking_drafts", schema=None) as batch_op:
        batch_op.drop_index("ix_booking_drafts_customer_status")
    op.drop_table("booking_drafts")
    with op.batch_alter_table("telegram_link_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_telegram_link_tokens_staff_id"))
    op.drop_table("telegram_link_tokens")
    op.drop_table("telegram_topics")
    with op.batch_alter_table("telegram_updates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_telegram_updates_received_at"))
    op.drop_table("telegram_updates")
