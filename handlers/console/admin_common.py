"""Shared bits of the console admin pages: the admin guard, rendering with the sub-nav, form helpers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse

from bot.errors import DomainError
from bot.teams.models import Staff
from handlers.console.auth import require_roles
from handlers.console.pages import _render

AdminDep = Annotated[Staff, Depends(require_roles("admin"))]
SECTIONS = ("staff", "sla", "kb", "telegram", "audit")
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def render_admin(
    request: Request,
    template: str,
    staff: Staff,
    *,
    section: str,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **ctx: Any,
) -> HTMLResponse:
    """An admin page: the console layout plus the admin sub-nav with `section` highlighted."""
    response = _render(request, template, staff, status=status, section=section, sections=SECTIONS, **ctx)
    response.headers.update(headers or {})
    return response


def error_text(tx: dict[str, str], exc: DomainError) -> str:
    """The localized text for a refusal when there is one, else its own message."""
    return tx.get("adm_err_" + exc.code.replace(".", "_"), exc.message)


def form_bool(value: str | None) -> bool:
    """A checkbox: present means on."""
    return value not in (None, "", "0", "off", "false")


def opt_int(value: str | None) -> int | None:
    """An optional integer from a query string or select ('' means none)."""
    if value is None or not value.strip():
        return None
    try:
        return int(value)
    except ValueError:
        return None


def opt_bool(value: str | None) -> bool | None:
    """A tri-state filter: 'yes' / 'no' / anything else (all)."""
    return {"yes": True, "no": False}.get(value or "")
