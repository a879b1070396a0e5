"""Staff console (minimum): sign in, inbox, group view with transcript and team, reply, note, resolve."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from bot.conversations import inbox as inbox_service
from bot.conversations import service as conv_service
from bot.conversations import staff_flows
from bot.conversations.inbox import InboxFilters, InboxRow
from bot.conversations.workspace import load_workspace
from bot.errors import DomainError, InvalidInput
from bot.i18n import normalize_locale, role_name
from bot.teams import access
from bot.teams import service as teams_service
from bot.teams.auth import LoginThrottled, Unauthorized, authenticate
from bot.teams.enums import Channel
from bot.teams.models import Staff
from handlers.common import runtime, sse
from handlers.console.auth import check_csrf, console_staff, csrf_token, sign_in
from handlers.console.texts import canned_replies, ui

router = APIRouter(prefix="/console", include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
StaffDep = Annotated[Staff, Depends(console_staff)]


def _locale(request: Request, staff: Staff | None) -> str:
    chosen = request.query_params.get("lang") or request.session.get("lang")
    if chosen:
        request.session["lang"] = normalize_locale(chosen, "en")
        return str(request.session["lang"])
    return staff.ui_locale if staff else normalize_locale(request.headers.get("accept-language"), "en")


def _render(request: Request, name: str, staff: Staff | None, status: int = 200, **ctx: Any) -> HTMLResponse:
    locale = _locale(request, staff)
    base = {
        "me": staff,
        "tx": ui(locale),
        "locale": locale,
        "csrf": csrf_token(request),
        "role_name": lambda r: role_name(r, locale),
    }
    return templates.TemplateResponse(request, name, {**base, **ctx}, status_code=status)


def render_error(request: Request, exc: DomainError) -> HTMLResponse:
    """A console page for a refused request (403, 404)."""
    return _render(request, "error.html", None, status=exc.status, error=exc)


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request) -> HTMLResponse:
    """The sign-in form."""
    return _render(request, "login.html", None)


@router.post("/login", response_model=None)
async def login(
    request: Request,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Check credentials; on success start the session and go to the inbox."""
    check_csrf(request, csrf)
    rt = runtime(request)
    client = request.client.host if request.client else "?"
    try:
        async with rt.maker() as session:
            staff = await authenticate(
                session,
                username=username,
                password=password,
                throttle=request.app.state.throttle,
                client=client,
            )
    except (Unauthorized, LoginThrottled) as exc:
        return _render(request, "login.html", None, status=exc.status, error=exc.message, username=username)
    sign_in(request, staff)
    return RedirectResponse("/console/", status_code=303)


@router.post("/logout")
async def logout(request: Request, csrf: Annotated[str, Form()] = "") -> RedirectResponse:
    """End the session."""
    check_csrf(request, csrf)
    request.session.clear()
    return RedirectResponse("/console/login", status_code=303)


def _filters(request: Request, staff: Staff) -> InboxFilters:
    p = request.query_params
    supervisor = staff.role in ("lead", "manager", "admin")
    return InboxFilters(
        scope=p.get("scope") or ("team" if supervisor else "mine"),
        status=p.get("status") or None,
        category=p.get("category") or None,
        role=p.get("role") or None,
        dealer_id=_int(p.get("dealer")),
        at_risk=p.get("at_risk") == "1",
        breached=p.get("breached") == "1",
        q=(p.get("q") or "").strip() or None,
    )


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


async def _inbox_rows(request: Request, staff: Staff) -> tuple[InboxFilters, list[InboxRow]]:
    rt = runtime(request)
    filters = _filters(request, staff)
    async with rt.maker() as session:
        rows = await inbox_service.inbox(session, staff=staff, filters=filters, now=rt.clock.now())
    return filters, rows


@router.get("/", response_class=HTMLResponse)
async def inbox(request: Request, staff: StaffDep) -> HTMLResponse:
    """The inbox: cases by SLA urgency with filters and search, plus the caller's groups."""
    filters, rows = await _inbox_rows(request, staff)
    rt = runtime(request)
    async with rt.maker() as session:
        groups = await access.visible_groups(session, staff=staff, limit=50)
        dealers = await teams_service.list_dealers(session)
    return _render(
        request,
        "inbox.html",
        staff,
        rows=rows,
        filters=filters,
        groups=groups,
        dealers=dealers,
        now=rt.clock.now(),
        query=str(request.url.query),
    )


@router.get("/inbox/cases", response_class=HTMLResponse)
async def inbox_cases(request: Request, staff: StaffDep) -> HTMLResponse:
    """The inbox's case table alone, for live refresh."""
    _filters_used, rows = await _inbox_rows(request, staff)
    return _render(request, "_cases.html", staff, rows=rows, now=runtime(request).clock.now())


@router.get("/groups/{group_id}", response_class=HTMLResponse)
async def group_page(group_id: int, request: Request, staff: StaffDep) -> HTMLResponse:
    """A butler group: transcript, team, customer and car, clocks and timeline, suggestions, actions."""
    rt = runtime(request)
    async with rt.transaction() as session:
        ws = await load_workspace(session, rt, staff=staff, group_id=group_id)
        if ws.messages:
            await teams_service.mark_read(
                session,
                staff_id=staff.id,
                group_id=group_id,
                message_id=ws.messages[-1].id,
                now=rt.clock.now(),
            )
    locale = _locale(request, staff)
    return _render(
        request,
        "group.html",
        staff,
        ws=ws,
        group=ws.group,
        members=ws.members,
        cases=ws.cases,
        messages=ws.messages,
        active=ws.active,
        last_id=ws.messages[-1].id if ws.messages else 0,
        canned=canned_replies(locale),
        now=rt.clock.now(),
    )


@router.get("/groups/{group_id}/messages", response_class=HTMLResponse)
async def group_messages(group_id: int, request: Request, staff: StaffDep, after: int = 0) -> HTMLResponse:
    """Transcript items after an id, for live append."""
    rt = runtime(request)
    async with rt.maker() as session:
        group = await access.require_group(session, staff=staff, group_id=group_id)
        messages = await conv_service.list_messages(
            session, group_id=group.id, after_id=after, include_internal=True
        )
    return _render(request, "_messages.html", staff, messages=messages)


@router.post("/groups/{group_id}/reply", response_model=None)
async def reply(
    group_id: int,
    request: Request,
    staff: StaffDep,
    body: Annotated[str, Form(max_length=8192)] = "",
    internal: Annotated[str | None, Form()] = None,
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Send a reply or an internal note, then show the group again."""
    check_csrf(request, csrf)
    rt = runtime(request)
    async with rt.transaction() as session:
        await staff_flows.staff_reply(
            session,
            rt,
            staff=staff,
            group_id=group_id,
            body=body,
            internal=internal is not None,
            channel=Channel.CONSOLE,
        )
    return _back(request, f"/console/groups/{group_id}")


@router.post("/cases/{case_id}/resolve", response_model=None)
async def resolve(
    case_id: int, request: Request, staff: StaffDep, csrf: Annotated[str, Form()] = ""
) -> Response:
    """Resolve a case."""
    check_csrf(request, csrf)
    rt = runtime(request)
    async with rt.transaction() as session:
        case = await staff_flows.resolve_case(session, rt, staff=staff, case_id=case_id)
    return _back(request, f"/console/groups/{case.group_id}")


@router.post("/cases/{case_id}/reopen", response_model=None)
async def reopen(
    case_id: int, request: Request, staff: StaffDep, csrf: Annotated[str, Form()] = ""
) -> Response:
    """Reopen a resolved case."""
    check_csrf(request, csrf)
    rt = runtime(request)
    async with rt.transaction() as session:
        case = await staff_flows.reopen_case(session, rt, staff=staff, case_id=case_id)
    return _back(request, f"/console/groups/{case.group_id}")


@router.post("/groups/{group_id}/invite", response_model=None)
async def invite(
    group_id: int,
    request: Request,
    staff: StaffDep,
    role: Annotated[str, Form()] = "",
    staff_id: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Bring another specialist (a named one, or the policy's pick for the role) into the group."""
    check_csrf(request, csrf)
    rt = runtime(request)
    async with rt.transaction() as session:
        await staff_flows.invite_member(
            session, rt, staff=staff, group_id=group_id, role=role, staff_id=_int(staff_id)
        )
    return _back(request, f"/console/groups/{group_id}")


@router.post("/cases/{case_id}/transfer", response_model=None)
async def transfer(
    case_id: int,
    request: Request,
    staff: StaffDep,
    to_staff_id: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Hand a case to another staff member."""
    check_csrf(request, csrf)
    target = _int(to_staff_id)
    if target is None:
        raise InvalidInput("transfer.target", "choose who takes the case")
    rt = runtime(request)
    async with rt.transaction() as session:
        case = await staff_flows.transfer_case(session, rt, staff=staff, case_id=case_id, to_staff_id=target)
    return _back(request, f"/console/groups/{case.group_id}")


def _back(request: Request, url: str) -> Response:
    if request.headers.get("x-requested-with") == "fetch":
        return Response(status_code=204)
    return RedirectResponse(url, status_code=303)


@router.get("/events")
async def staff_events(request: Request, staff: StaffDep) -> Response:
    """Live events for the signed-in staff member (new cases, messages in their cases)."""
    return sse(request, runtime(request), [f"staff:{staff.id}"])


@router.get("/groups/{group_id}/events")
async def group_events(group_id: int, request: Request, staff: StaffDep) -> Response:
    """Live events of one group (messages, case status)."""
    rt = runtime(request)
    async with rt.maker() as session:
        await access.require_group(session, staff=staff, group_id=group_id)
    return sse(request, rt, [f"group:{group_id}"])
