"""Console sessions: who is signed in, CSRF tokens for every form."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable

from fastapi import Request

from bot.errors import DomainError
from bot.teams import service as teams_service
from bot.teams.models import Staff
from handlers.common import runtime


class LoginRequired(Exception):
    """No signed-in staff member; the console redirects to the login page."""


class CsrfFailed(DomainError):
    """A form arrived without the session's CSRF token."""

    status = 403


def csrf_token(request: Request) -> str:
    """The session's CSRF token, created on first use."""
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(24)
        request.session["csrf"] = token
    return str(token)


def check_csrf(request: Request, submitted: str | None) -> None:
    """Refuse a form whose token does not match the session's."""
    expected = request.session.get("csrf")
    submitted = submitted or request.headers.get("x-csrf-token")  # htmx sends it as a header
    if not expected or not submitted or not hmac.compare_digest(str(expected), submitted):
        raise CsrfFailed("csrf.invalid", "missing or invalid CSRF token")


async def console_staff(request: Request) -> Staff:
    """The signed-in, active staff member; LoginRequired otherwise."""
    staff_id = request.session.get("staff_id")
    if not isinstance(staff_id, int):
        raise LoginRequired
    rt = runtime(request)
    async with rt.maker() as session:
        staff = await teams_service.get_staff(session, staff_id=staff_id)
    if staff is None or not staff.active or request.session.get("pw") != staff.password_hash[-16:]:
        # A password reset (or deactivation) ends every console session of that account.
        request.session.clear()
        raise LoginRequired
    return staff


def sign_in(request: Request, staff: Staff) -> None:
    """Start a console session (a fresh CSRF token too; the chosen UI language survives)."""
    lang = request.session.get("lang")
    request.session.clear()
    if lang:
        request.session["lang"] = lang
    request.session["staff_id"] = staff.id
    request.session["pw"] = staff.password_hash[-16:]
    request.session["csrf"] = secrets.token_urlsafe(24)


def require_roles(*roles: str) -> Callable[[Request], Awaitable[Staff]]:
    """A dependency: the signed-in staff member, who must hold one of the roles (403 otherwise)."""
    from bot.errors import Forbidden

    async def dependency(request: Request) -> Staff:
        staff = await console_staff(request)
        if staff.role not in roles:
            raise Forbidden("role.forbidden", f"this page is for: {', '.join(roles)}")
        return staff

    return dependency
