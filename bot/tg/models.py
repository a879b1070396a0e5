"""Telegram state: processed updates, the forum topic of each butler group, staff link tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.db import Base, BigId


class TelegramUpdate(Base):
    """An update_id seen by the webhook or the poller; committed with the update's effects."""

    __tablename__ = "telegram_updates"
    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(32), default="")
    # done: processed (or refused politely); retrying: failed before commit; failed: given up.
    status: Mapped[str] = mapped_column(String(12), default="done")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[datetime] = mapped_column(index=True)
    error: Mapped[str | None] = mapped_column(Text)


class TelegramTopic(Base):
    """The forum topic that stands for a butler group in the staff supergroup."""

    __tablename__ = "telegram_topics"
    __table_args__ = (UniqueConstraint("chat_id", "thread_id"),)
    group_id: Mapped[int] = mapped_column(
        ForeignKey("butler_groups.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    chat_id: Mapped[int] = mapped_column(BigInteger)
    thread_id: Mapped[int | None] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(128))
    requested_at: Mapped[datetime]
    created_at: Mapped[datetime | None]


class StaffLinkToken(Base):
    """A one-time token that links a staff account to the Telegram account that opens it."""

    __tablename__ = "telegram_link_tokens"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
