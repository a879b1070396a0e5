"""FAQ entries stored in the database."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.db import Base, BigId


class FaqEntry(Base):
    """One topic in one locale: several phrasings of the question and the answer."""

    __tablename__ = "faq_entries"
    __table_args__ = (UniqueConstraint("topic", "locale"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    topic: Mapped[str] = mapped_column(String(64), index=True)
    category: Mapped[str] = mapped_column(String(16))
    locale: Mapped[str] = mapped_column(String(8))
    questions: Mapped[list[str]] = mapped_column(default=list)
    answer: Mapped[str] = mapped_column(Text)
    actions: Mapped[list[str]] = mapped_column(default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime]
    updated_by: Mapped[int | None] = mapped_column(Integer)
