"""Read models of messages for customers and staff."""

from __future__ import annotations

from typing import Any

from bot.conversations.enums import AuthorKind
from bot.conversations.models import Message
from bot.i18n import role_name, t


def signature(name: str, role: str, locale: str) -> str:
    """How a staff reply is signed for the customer: "Name · Role"."""
    return f"{name} · {role_name(role, locale)}"


def customer_view(message: Message, *, locale: str) -> dict[str, Any]:
    """A public message as the customer sees it (never called with internal notes)."""
    assert not message.internal
    staff = message.author_staff
    buttons: list[dict[str, str]] = []
    if message.author_kind == AuthorKind.BOT and message.meta.get("feedback") is None:
        buttons = [
            {"id": "helpful", "label": t("button.helpful", locale)},
            {"id": "not_helpful", "label": t("button.not_helpful", locale)},
            {"id": "person", "label": t("button.person", locale)},
        ]
    if "rating_for_case" in message.meta:
        buttons = [{"id": f"rate:{n}", "label": "★" * n} for n in (5, 4, 3, 2, 1)]
    return {
        "id": message.id,
        "author_kind": message.author_kind,
        "author_name": staff.display_name if staff else None,
        "author_role": role_name(staff.role, locale) if staff else None,
        "signature": signature(staff.display_name, staff.role, locale) if staff else None,
        "body": message.body,
        "attachments": message.attachments,
        "case_id": message.case_id,
        "buttons": buttons,
        "created_at": message.created_at.isoformat(),
    }


def staff_view(message: Message) -> dict[str, Any]:
    """A message as staff see it, internal notes included."""
    staff = message.author_staff
    return {
        "id": message.id,
        "author_kind": message.author_kind,
        "author_staff_id": message.author_staff_id,
        "author_name": staff.display_name if staff else None,
        "author_role": staff.role if staff else None,
        "body": message.body,
        "internal": message.internal,
        "channel": message.channel,
        "case_id": message.case_id,
        "attachments": message.attachments,
        "meta": message.meta,
        "created_at": message.created_at.isoformat(),
    }
