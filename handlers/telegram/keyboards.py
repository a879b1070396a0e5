"""Keyboards as Bot API JSON (they travel in outbox rows); callback data stays under 64 bytes."""

from __future__ import annotations

from typing import Any

from bot.bookings.flows import Prompt
from bot.tg.bridge import inline
from handlers.telegram.texts import ct

MENU_ITEMS = ("ask", "test_drive", "service", "onsite_repair", "parts_delivery", "team", "person")
BOOKING_ITEMS = ("test_drive", "service", "onsite_repair", "parts_delivery")


def menu(locale: str) -> dict[str, Any]:
    """The main menu, two buttons a row."""
    buttons = [(ct(f"menu.{item}", locale), f"m:{item}") for item in MENU_ITEMS]
    return inline([buttons[i : i + 2] for i in range(0, len(buttons), 2)])


def languages() -> dict[str, Any]:
    """Language choice."""
    return inline([[("中文", "lang:zh-CN"), ("English", "lang:en")]])


def booking(prompt: Prompt) -> dict[str, Any] | None:
    """A booking step's options (three a row for days and times, else two), cancel last."""
    per_row = 3 if prompt.step in ("date", "slot") else 2
    options = [(label, f"bk:{prompt.draft_id}:{prompt.step}:{code}"[:64]) for code, label in prompt.options]
    body, last = options[:-1], options[-1:]
    rows = [body[i : i + per_row] for i in range(0, len(body), per_row)]
    return inline([*rows, last]) if options else None


def share_phone(locale: str) -> dict[str, Any]:
    """A one-time reply keyboard with the contact button."""
    return {
        "keyboard": [[{"text": ct("phone.button", locale), "request_contact": True}]],
        "resize_keyboard": True,
        "one_time_keyboard": True,
    }


def remove() -> dict[str, Any]:
    """Remove a reply keyboard."""
    return {"remove_keyboard": True}
