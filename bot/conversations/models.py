"""Cases, their events, messages, per-channel message ids, inbound receipts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bot.db import Base, BigId
from bot.teams.models import ButlerGroup, Staff


class Case(Base):
    """One customer request handled inside the butler group."""

    __tablename__ = "cases"
    __table_args__ = (
        Index("ix_cases_assignee_status", "assignee_id", "status"),
        # Dashboard range scans: backlog (resolved per day), CSAT (asked per day), bot-resolved
        # ("was a case opened in this group soon after the answer?").
        Index("ix_cases_resolved_at", "resolved_at"),
        Index("ix_cases_csat_asked_at", "csat_asked_at"),
        Index("ix_cases_group_id_opened_at", "group_id", "opened_at"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("butler_groups.id", ondelete="CASCADE"), index=True)
    subject: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(16))
    priority: Mapped[str] = mapped_column(String(8), default="normal")
    status: Mapped[str] = mapped_column(String(20), index=True)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    routing_reason: Mapped[str] = mapped_column(Text, default="")
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    opened_at: Mapped[datetime] = mapped_column(index=True)
    first_response_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    csat_asked_at: Mapped[datetime | None]
    csat_score: Mapped[int | None] = mapped_column(Integer)
    csat_comment: Mapped[str | None] = mapped_column(Text)
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
    group: Mapped[ButlerGroup] = relationship(lazy="joined")
    assignee: Mapped[Staff | None] = relationship(lazy="joined")


class CaseEvent(Base):
    """Everything that happened to a case, status changes first of all."""

    __tablename__ = "case_events"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str | None] = mapped_column(String(20))
    actor_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Message(Base):
    """A message in a butler group: from the customer, a specialist, the bot or the system."""

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_group_id_id", "group_id", "id"),
        # Dashboard: bot answers by time, and "did staff write in this group soon after?".
        Index(
            "ix_messages_bot_created_at",
            "created_at",
            postgresql_where=text("author_kind = 'bot'"),
            sqlite_where=text("author_kind = 'bot'"),
        ),
        # Every inbound message: when did the bot last answer in this group (migration 0008).
        Index(
            "ix_messages_bot_group_id_id",
            "group_id",
            "id",
            postgresql_where=text("author_kind = 'bot'"),
            sqlite_where=text("author_kind = 'bot'"),
        ),
        Index(
            "ix_messages_staff_group_created_at",
            "group_id",
            "created_at",
            postgresql_where=text("author_kind = 'staff'"),
            sqlite_where=text("author_kind = 'staff'"),
        ),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("butler_groups.id", ondelete="CASCADE"))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="SET NULL"), index=True)
    author_kind: Mapped[str] = mapped_column(String(16))
    author_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    channel: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text, default="")
    attachments: Mapped[list[Any]] = mapped_column(default=list)
    internal: Mapped[bool] = mapped_column(Boolean, default=False)
    # Bot answers keep the FAQ topic, buttons and the like here.
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]
    author_staff: Mapped[Staff | None] = relationship(lazy="joined")


class MessageRef(Base):
    """A message's id on one channel (chat + message id), for replies and edits both ways."""

    __tablename__ = "message_refs"
    __table_args__ = (UniqueConstraint("channel", "chat_id", "external_id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str] = mapped_column(String(64))


class InboundReceipt(Base):
    """First sighting of an inbound platform event; its key makes redelivery a no-op."""

    __tablename__ = "inbound_receipts"
    __table_args__ = (UniqueConstraint("channel", "chat_id", "external_id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime]
