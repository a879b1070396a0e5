"""Admin pages: staff accounts (list, create, edit, deactivate, reset password, Telegram link)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bot.errors import DomainError
from bot.teams import admin
from bot.teams.enums import Role
from bot.teams.models import Staff
from handlers.common import runtime
from handlers.console.admin_common import NO_STORE, AdminDep, form_bool, opt_bool, opt_int, render_admin
from handlers.console.auth import check_csrf

router = APIRouter()
ROLES = [r.value for r in Role]
LANGS = ["zh-CN", "en"]

Text = Annotated[str, Form(max_length=300)]


def _values(staff: Staff | None = None) -> dict[str, Any]:
    if staff is None:
        return {
            "username": "",
            "display_name": "",
            "role": "butler",
            "languages": ["zh-CN"],
            "dealer_id": None,
            "capacity": 20,
            "on_duty": True,
        }
    return {"username": staff.username, **admin.staff_fields(staff)}


@router.get("/staff", response_class=HTMLResponse)
async def staff_list(
    request: Request,
    me: AdminDep,
    role: str = "",
    dealer: str = "",
    active: str = "yes",
    q: str = "",
) -> HTMLResponse:
    """Staff accounts, filtered by role, dealer, active and a name search."""
    rt = runtime(request)
    async with rt.maker() as session:
        rows = await admin.list_staff_filtered(
            session,
            role=role if role in ROLES else None,
            dealer_id=opt_int(dealer),
            active=opt_bool(active),
            query=q[:100],
        )
        dealers = await admin.list_dealers(session)
    return render_admin(
        request,
        "admin_staff.html",
        me,
        section="staff",
        rows=rows,
        dealers={d.id: d for d in dealers},
        roles=ROLES,
        filters={"role": role, "dealer": dealer, "active": active, "q": q},
    )


async def _form_page(
    request: Request,
    me: Staff,
    *,
    target: Staff | None,
    values: dict[str, Any],
    error: DomainError | None = None,
    status: int = 200,
    secret: dict[str, Any] | None = None,
    notice: str | None = None,
) -> HTMLResponse:
    rt = runtime(request)
    async with rt.maker() as session:
        dealers = await admin.list_dealers(session)
    return render_admin(
        request,
        "admin_staff_form.html",
        me,
        section="staff",
        status=status,
        headers=NO_STORE if secret else None,
        target=target,
        v=values,
        dealers=dealers,
        roles=ROLES,
        langs=LANGS,
        error=error,
        secret=secret,
        notice=notice,
        link_available=link_issuer() is not None and bool(rt.settings.telegram_token),
    )


@router.get("/staff/new", response_class=HTMLResponse)
async def staff_new(request: Request, me: AdminDep) -> HTMLResponse:
    """An empty form for a new account."""
    return await _form_page(request, me, target=None, values=_values())


def _submitted(
    username: str,
    display_name: str,
    role: str,
    languages: list[str],
    dealer: str,
    capacity: str,
    on_duty: str,
) -> dict[str, Any]:
    return {
        "username": username,
        "display_name": display_name,
        "role": role,
        "languages": languages,
        "dealer_id": opt_int(dealer),
        "capacity": capacity,
        "on_duty": form_bool(on_duty),
    }


async def _fields(session: Any, values: dict[str, Any]) -> admin.StaffFields:
    try:
        capacity = int(str(values["capacity"]).strip())
    except ValueError as exc:
        raise admin.AdminError("capacity must be a whole number", "staff.capacity") from exc
    return await admin.check_staff_fields(
        session,
        display_name=values["display_name"],
        role=values["role"],
        languages=values["languages"],
        dealer_id=values["dealer_id"],
        capacity=capacity,
        on_duty=values["on_duty"],
    )


@router.post("/staff/new", response_model=None)
async def staff_create(
    request: Request,
    me: AdminDep,
    username: Annotated[str, Form(max_length=100)] = "",
    display_name: Text = "",
    role: Annotated[str, Form(max_length=20)] = "",
    languages: Annotated[list[str] | None, Form()] = None,
    dealer: Annotated[str, Form(max_length=20)] = "",
    capacity: Annotated[str, Form(max_length=10)] = "20",
    on_duty: Annotated[str, Form(max_length=5)] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Create an account; the generated password is shown once on the answer page."""
    check_csrf(request, csrf)
    values = _submitted(username, display_name, role, languages or [], dealer, capacity, on_duty)
    rt = runtime(request)
    try:
        async with rt.transaction() as session:
            fields = await _fields(session, values)
            staff, password = await admin.create_staff(
                session, username=username, fields=fields, actor_staff_id=me.id, now=rt.clock.now()
            )
            values = _values(staff)
    except DomainError as exc:
        return await _form_page(request, me, target=None, values=values, error=exc, status=exc.status)
    return await _form_page(
        request,
        me,
        target=staff,
        values=values,
        secret={"kind": "password", "username": staff.username, "value": password},
        notice="created",
    )


@router.get("/staff/{staff_id:int}", response_class=HTMLResponse)
async def staff_edit(staff_id: int, request: Request, me: AdminDep, done: str = "") -> HTMLResponse:
    """One account: edit form and account actions."""
    rt = runtime(request)
    async with rt.maker() as session:
        target = await admin.require_staff(session, staff_id=staff_id)
    return await _form_page(request, me, target=target, values=_values(target), notice=done[:20] or None)


@router.post("/staff/{staff_id:int}", response_model=None)
async def staff_update(
    staff_id: int,
    request: Request,
    me: AdminDep,
    display_name: Text = "",
    role: Annotated[str, Form(max_length=20)] = "",
    languages: Annotated[list[str] | None, Form()] = None,
    dealer: Annotated[str, Form(max_length=20)] = "",
    capacity: Annotated[str, Form(max_length=10)] = "",
    on_duty: Annotated[str, Form(max_length=5)] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Save role, dealer, capacity, languages, on-duty and name."""
    check_csrf(request, csrf)
    rt = runtime(request)
    values: dict[str, Any] = {}
    try:
        async with rt.transaction() as session:
            target = await admin.require_staff(session, staff_id=staff_id)
            values = {
                **_submitted(target.username, display_name, role, languages or [], dealer, capacity, on_duty)
            }
            fields = await _fields(session, values)
            await admin.update_staff(
                session, staff_id=staff_id, fields=fields, actor_staff_id=me.id, now=rt.clock.now()
            )
    except DomainError as exc:
        if not values:
            raise
        async with rt.maker() as session:
            target = await admin.require_staff(session, staff_id=staff_id)
        return await _form_page(request, me, target=target, values=values, error=exc, status=exc.status)
    return RedirectResponse(f"/console/admin/staff/{staff_id}?done=saved", status_code=303)


async def _action(request: Request, me: Staff, staff_id: int, csrf: str, name: str) -> Response:
    check_csrf(request, csrf)
    rt = runtime(request)
    now = rt.clock.now()
    secret: dict[str, Any] | None = None
    try:
        async with rt.transaction() as session:
            if name in ("deactivate", "reactivate"):
                await admin.set_staff_active(
                    session, staff_id=staff_id, active=name == "reactivate", actor_staff_id=me.id, now=now
                )
            elif name == "password":
                target, password = await admin.reset_password(
                    session, staff_id=staff_id, actor_staff_id=me.id, now=now
                )
                secret = {"kind": "password", "username": target.username, "value": password}
            elif name == "telegram-unlink":
                await admin.unlink_telegram(session, staff_id=staff_id, actor_staff_id=me.id, now=now)
            elif name == "telegram-link":
                secret = await _issue_link(session, rt, me, staff_id, now)
    except DomainError as exc:
        async with rt.maker() as session:
            target = await admin.require_staff(session, staff_id=staff_id)
        return await _form_page(
            request, me, target=target, values=_values(target), error=exc, status=exc.status
        )
    if secret is None:
        return RedirectResponse(f"/console/admin/staff/{staff_id}?done={name}", status_code=303)
    async with rt.maker() as session:
        target = await admin.require_staff(session, staff_id=staff_id)
    return await _form_page(request, me, target=target, values=_values(target), secret=secret, notice=name)


@router.post("/staff/{staff_id:int}/deactivate", response_model=None)
async def staff_deactivate(
    staff_id: int, request: Request, me: AdminDep, csrf: Annotated[str, Form()] = ""
) -> Response:
    """Deactivate: no login, no new assignments."""
    return await _action(request, me, staff_id, csrf, "deactivate")


@router.post("/staff/{staff_id:int}/reactivate", response_model=None)
async def staff_reactivate(
    staff_id: int, request: Request, me: AdminDep, csrf: Annotated[str, Form()] = ""
) -> Response:
    """Reactivate a deactivated account."""
    return await _action(request, me, staff_id, csrf, "reactivate")


@router.post("/staff/{staff_id:int}/password", response_model=None)
async def staff_password(
    staff_id: int, request: Request, me: AdminDep, csrf: Annotated[str, Form()] = ""
) -> Response:
    """Reset the password (shown once); the account's console sessions end."""
    return await _action(request, me, staff_id, csrf, "password")


@router.post("/staff/{staff_id:int}/telegram-link", response_model=None)
async def staff_telegram_link(
    staff_id: int, request: Request, me: AdminDep, csrf: Annotated[str, Form()] = ""
) -> Response:
    """Issue a one-time Telegram deep link that links the account that opens it."""
    return await _action(request, me, staff_id, csrf, "telegram-link")


@router.post("/staff/{staff_id:int}/telegram-unlink", response_model=None)
async def staff_telegram_unlink(
    staff_id: int, request: Request, me: AdminDep, csrf: Annotated[str, Form()] = ""
) -> Response:
    """Forget the linked Telegram account."""
    return await _action(request, me, staff_id, csrf, "telegram-unlink")


# --- Telegram link tokens come from the Telegram flows (bot.tg) --------------------------------


def link_issuer() -> Any:
    """bot.tg.flows.issue_link_token, or None when the Telegram channel is not installed."""
    try:
        from bot.tg.flows import issue_link_token
    except ImportError:
        return None
    return issue_link_token


async def _issue_link(session: Any, rt: Any, me: Staff, staff_id: int, now: Any) -> dict[str, Any]:
    issue = link_issuer()
    if issue is None or not rt.settings.telegram_token:
        raise admin.AdminError("Telegram is not configured (BUTLER_TELEGRAM_TOKEN)", "staff.no_link")
    target = await admin.require_staff(session, staff_id=staff_id)
    if not target.active:
        raise admin.AdminError("reactivate the account before linking Telegram", "staff.inactive")
    link = await issue(session, rt, staff=target)
    admin.record_telegram_link_issued(session, staff=target, actor_staff_id=me.id, now=now)
    return {"kind": "telegram", "username": target.username, "value": str(link)}
