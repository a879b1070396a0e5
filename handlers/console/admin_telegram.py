"""Admin page: Telegram settings (read-only, secrets masked) and a live check of the bot's setup.

The live check is the Telegram adapter's (`butler telegram check`, handlers.telegram.cli.run_checks);
without the adapter installed the page shows the settings only.
"""

from __future__ import annotations

import inspect
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse

from bot.settings import Settings
from bot.teams.models import Staff
from handlers.common import runtime
from handlers.console.admin_common import AdminDep, render_admin
from handlers.console.auth import check_csrf

log = logging.getLogger(__name__)
router = APIRouter()


def _check_function() -> Any:
    """handlers.telegram.cli.run_checks(settings), or None when the adapter is not installed."""
    try:
        from handlers.telegram.cli import run_checks
    except ImportError:
        return None
    return run_checks


def _mask(token: str | None) -> str | None:
    """'123456:ABC…' -> '123456:…' (the bot id is public; the secret part is not)."""
    if not token:
        return None
    head = token.split(":", 1)[0]
    return f"{head}:…" if head.isdigit() else "…"


def settings_rows(settings: Settings) -> list[tuple[str, str | None, bool]]:
    """(setting, shown value, is set) for the page; secrets are masked."""
    mode = "webhook" if settings.public_url else "polling"
    return [
        ("BUTLER_TELEGRAM_TOKEN", _mask(settings.telegram_token), bool(settings.telegram_token)),
        ("BUTLER_TELEGRAM_API_BASE_URL", settings.telegram_api_base_url, True),
        (
            "BUTLER_TELEGRAM_STAFF_CHAT_ID",
            None if settings.telegram_staff_chat_id is None else str(settings.telegram_staff_chat_id),
            settings.telegram_staff_chat_id is not None,
        ),
        (
            "BUTLER_TELEGRAM_WEBHOOK_SECRET",
            "••••" if settings.telegram_webhook_secret else None,
            bool(settings.telegram_webhook_secret),
        ),
        ("BUTLER_PUBLIC_URL", settings.public_url, bool(settings.public_url)),
        ("mode", mode if settings.telegram_token else None, bool(settings.telegram_token)),
    ]


def normalize_checks(findings: Any) -> list[dict[str, Any]]:
    """The adapter's findings (ok, what, fix) as rows for the page."""
    return [
        {
            "name": str(getattr(f, "what", "")),
            "ok": bool(getattr(f, "ok", False)),
            "detail": str(getattr(f, "fix", "")),
        }
        for f in findings or []
    ]


def _page(
    request: Request, me: Staff, *, checks: list[dict[str, Any]] | None, error: str | None
) -> HTMLResponse:
    settings = runtime(request).settings
    return render_admin(
        request,
        "admin_telegram.html",
        me,
        section="telegram",
        rows=settings_rows(settings),
        configured=bool(settings.telegram_token),
        check_available=_check_function() is not None,
        checks=checks,
        check_error=error,
    )


@router.get("/telegram", response_class=HTMLResponse)
async def telegram_page(request: Request, me: AdminDep) -> HTMLResponse:
    """The Telegram settings in force."""
    return _page(request, me, checks=None, error=None)


@router.post("/telegram/check", response_class=HTMLResponse)
async def telegram_check(request: Request, me: AdminDep, csrf: Annotated[str, Form()] = "") -> HTMLResponse:
    """Run the live check (token, getMe, forum supergroup, bot rights) and show the results."""
    check_csrf(request, csrf)
    fn = _check_function()
    if fn is None:
        return _page(request, me, checks=None, error=None)
    try:
        result = fn(runtime(request).settings)
        if inspect.isawaitable(result):
            result = await result
        checks, error = normalize_checks(result), None
    except Exception as exc:  # the check talks to Telegram; show what went wrong instead of a 500
        log.warning("telegram check failed: %s", exc)
        error = f"{type(exc).__name__}: {exc}"
        token = runtime(request).settings.telegram_token
        checks, error = None, error.replace(token, _mask(token) or "") if token else error
    return _page(request, me, checks=checks, error=error)
