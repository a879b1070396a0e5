"""Dealers, customers and their vehicles, staff, butler groups and memberships."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bot.db import Base, BigId


class Dealer(Base):
    """A dealer outlet; staff and customers belong to one."""

    __tablename__ = "dealers"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")


class Customer(Base):
    """A car owner."""

    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    display_name: Mapped[str] = mapped_column(String(200))
    locale: Mapped[str] = mapped_column(String(8), default="zh-CN")
    phone: Mapped[str | None] = mapped_column(String(32))
    dealer_id: Mapped[int | None] = mapped_column(ForeignKey("dealers.id"))
    created_at: Mapped[datetime]
    # Loaded only where shown (bookings, the group view): not on every inbound message.
    vehicles: Mapped[list[Vehicle]] = relationship(back_populates="customer", lazy="raise")


class Vehicle(Base):
    """A car a customer owns."""

    __tablename__ = "vehicles"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    vin: Mapped[str] = mapped_column(String(17), unique=True)
    model: Mapped[str] = mapped_column(String(100))
    purchase_date: Mapped[date | None]
    dealer_id: Mapped[int | None] = mapped_column(ForeignKey("dealers.id"))
    customer: Mapped[Customer] = relationship(back_populates="vehicles")


class ChannelIdentity(Base):
    """How we reach a customer on one channel (a Telegram user, a web chat session)."""

    __tablename__ = "channel_identities"
    __table_args__ = (UniqueConstraint("channel", "external_id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(64))
    chat_id: Mapped[str | None] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]


class WebchatSession(Base):
    """A browser's chat session; the cookie carries its id."""

    __tablename__ = "webchat_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class Staff(Base):
    """A specialist, lead, manager or admin."""

    __tablename__ = "staff"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), index=True)
    languages: Mapped[list[str]] = mapped_column(default=list)
    dealer_id: Mapped[int | None] = mapped_column(ForeignKey("dealers.id"), index=True)
    capacity: Mapped[int] = mapped_column(Integer, default=20)
    on_duty: Mapped[bool] = mapped_column(Boolean, default=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    telegram_user_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    ui_locale: Mapped[str] = mapped_column(String(8), default="zh-CN")
    created_at: Mapped[datetime]


class ButlerGroup(Base):
    """The one dedicated team of a customer."""

    __tablename__ = "butler_groups"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), unique=True)
    dealer_id: Mapped[int | None] = mapped_column(ForeignKey("dealers.id"), index=True)
    created_at: Mapped[datetime]
    # Roles nobody could fill when the team formed; shown to staff until filled.
    gaps: Mapped[list[str]] = mapped_column(default=list)
    telegram_thread_id: Mapped[int | None] = mapped_column(BigInteger)
    customer: Mapped[Customer] = relationship(lazy="joined")


class Membership(Base):
    """A staff member's seat in a group, with history (left_at set when they leave)."""

    __tablename__ = "memberships"
    __table_args__ = (
        Index(
            "uq_memberships_active",
            "group_id",
            "staff_id",
            unique=True,
            postgresql_where=text("left_at IS NULL"),
            sqlite_where=text("left_at IS NULL"),
        ),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("butler_groups.id", ondelete="CASCADE"), index=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    joined_at: Mapped[datetime]
    left_at: Mapped[datetime | None]
    reason: Mapped[str] = mapped_column(String(32), default="formed")
    staff: Mapped[Staff] = relationship(lazy="joined")


class AuditLog(Base):
    """Who did what to which object; sensitive actions land here."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ReadMark(Base):
    """How far a staff member has read a group's conversation (for unread markers)."""

    __tablename__ = "read_marks"
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), primary_key=True)
    group_id: Mapped[int] = mapped_column(
        ForeignKey("butler_groups.id", ondelete="CASCADE"), primary_key=True
    )
    last_message_id: Mapped[int] = mapped_column(BigId, default=0)
    updated_at: Mapped[datetime]
