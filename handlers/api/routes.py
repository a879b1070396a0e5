"""REST API v1: web chat for customers, token-authenticated endpoints for staff."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Cookie, Depends, Header, Request, Response, Security
from fastapi.security import HTTPAuthorizationCredentials

from bot.conversations import buttons, staff_flows, webchat
from bot.conversations import service as conv_service
from bot.conversations.views import customer_view, staff_view
from bot.teams import access
from bot.teams import service as teams_service
from bot.teams.auth import authenticate, token_for
from bot.teams.enums import Channel
from bot.teams.models import Staff
from handlers.api.deps import bearer, token_staff
from handlers.api.schemas import (
    AfterId,
    ButtonIn,
    ChatMessageIn,
    ChatMessageOut,
    InviteIn,
    LoginIn,
    Page,
    PathId,
    SessionIn,
    SessionOut,
    StaffMessageIn,
    TokenOut,
    TransferIn,
)
from handlers.common import runtime, sse

router = APIRouter(prefix="/api/v1")
COOKIE = "butler_chat"


async def current_staff(
    request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]
) -> Staff:
    """The staff member behind the bearer token."""
    return await token_staff(request, creds)


StaffDep = Annotated[Staff, Depends(current_staff)]


def _chat_session_id(header: str | None, cookie: str | None) -> str | None:
    return header or cookie


@router.post("/webchat/sessions", response_model=SessionOut, status_code=201, tags=["web chat"])
async def create_session(body: SessionIn, request: Request, response: Response) -> SessionOut:
    """Start a web chat session (also set as an HttpOnly cookie)."""
    rt = runtime(request)
    async with rt.transaction() as session:
        chat = await webchat.start_session(session, rt, display_name=body.display_name, locale=body.locale)
    response.set_cookie(
        COOKIE,
        chat.id,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        max_age=rt.settings.session_ttl_hours * 3600,
    )
    return SessionOut(session_id=chat.id, customer_id=chat.customer_id, expires_at=chat.expires_at)


@router.post("/webchat/messages", response_model=ChatMessageOut, status_code=201, tags=["web chat"])
async def post_chat_message(
    body: ChatMessageIn,
    request: Request,
    x_webchat_session: Annotated[str | None, Header()] = None,
    butler_chat: Annotated[str | None, Cookie()] = None,
) -> ChatMessageOut:
    """Send a customer message; the same client_message_id twice is stored once."""
    rt = runtime(request)
    session_id = _chat_session_id(x_webchat_session, butler_chat)
    external = body.client_message_id or uuid.uuid4().hex
    result = await webchat.post_message(rt, session_id=session_id, external_id=external, text=body.text)
    return ChatMessageOut(
        message_id=result.message_id,
        duplicate=result.duplicate,
        case_id=result.case_id,
        answered_by_bot=result.answered_by_bot,
    )


@router.get("/webchat/messages", response_model=Page, tags=["web chat"])
async def list_chat_messages(
    request: Request,
    after: AfterId = 0,
    x_webchat_session: Annotated[str | None, Header()] = None,
    butler_chat: Annotated[str | None, Cookie()] = None,
) -> Page:
    """The conversation after a message id, as the customer sees it (no internal notes)."""
    rt = runtime(request)
    async with rt.transaction() as session:
        _chat, customer = await webchat.require_session(
            session, rt, session_id=_chat_session_id(x_webchat_session, butler_chat)
        )
        group = await teams_service.get_group_for_customer(session, customer_id=customer.id)
        if group is None:
            return Page(items=[])
        messages = await conv_service.list_messages(
            session, group_id=group.id, after_id=after, include_internal=False
        )
        return Page(items=[customer_view(m, locale=customer.locale) for m in messages])


@router.post("/webchat/buttons", tags=["web chat"])
async def press_chat_button(
    body: ButtonIn,
    request: Request,
    x_webchat_session: Annotated[str | None, Header()] = None,
    butler_chat: Annotated[str | None, Cookie()] = None,
) -> dict[str, Any]:
    """Press a button under a message: helpful, not_helpful, person, rate:1..5."""
    rt = runtime(request)
    async with rt.transaction() as session:
        _chat, customer = await webchat.require_session(
            session, rt, session_id=_chat_session_id(x_webchat_session, butler_chat)
        )
        result = await buttons.press_button(
            session, rt, customer=customer, message_id=body.message_id, button=body.button
        )
    return {"action": result.action, "case_id": result.case_id}


@router.get("/webchat/events", tags=["web chat"])
async def chat_events(
    request: Request,
    x_webchat_session: Annotated[str | None, Header()] = None,
    butler_chat: Annotated[str | None, Cookie()] = None,
    session_id: str | None = None,
) -> Response:
    """Server-sent events: a `message.new` whenever something arrives for this customer."""
    rt = runtime(request)
    async with rt.maker() as session:
        _chat, customer = await webchat.require_session(
            session, rt, session_id=x_webchat_session or session_id or butler_chat
        )
    return sse(request, rt, [f"customer:{customer.id}"])


@router.post("/auth/token", response_model=TokenOut, tags=["staff"])
async def issue_token(body: LoginIn, request: Request) -> TokenOut:
    """Exchange a username and password for a bearer token."""
    rt = runtime(request)
    async with rt.maker() as session:
        staff = await authenticate(
            session,
            username=body.username,
            password=body.password,
            throttle=request.app.state.throttle,
            client=_client(request),
        )
    return TokenOut(
        access_token=token_for(rt.settings, staff), expires_in=rt.settings.api_token_ttl_hours * 3600
    )


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"


@router.get("/me", tags=["staff"])
async def me(staff: StaffDep) -> dict[str, Any]:
    """The authenticated staff member."""
    return {
        "id": staff.id,
        "username": staff.username,
        "display_name": staff.display_name,
        "role": staff.role,
        "dealer_id": staff.dealer_id,
        "languages": staff.languages,
        "on_duty": staff.on_duty,
    }


@router.get("/groups", response_model=Page, tags=["staff"])
async def my_groups(request: Request, staff: StaffDep) -> Page:
    """Butler groups the caller may see (their own, their dealer's for leads, all for managers)."""
    rt = runtime(request)
    async with rt.maker() as session:
        groups = await access.visible_groups(session, staff=staff)
        return Page(
            items=[
                {
                    "id": g.id,
                    "customer_id": g.customer_id,
                    "customer_name": g.customer.display_name,
                    "dealer_id": g.dealer_id,
                    "gaps": g.gaps,
                    "created_at": g.created_at.isoformat(),
                }
                for g in groups
            ]
        )


@router.get("/groups/{group_id}", tags=["staff"])
async def get_group(group_id: PathId, request: Request, staff: StaffDep) -> dict[str, Any]:
    """A group with its customer, current members and cases."""
    rt = runtime(request)
    async with rt.maker() as session:
        group = await access.require_group(session, staff=staff, group_id=group_id)
        members = await teams_service.active_members(session, group_id=group.id)
        cases = await conv_service.list_group_cases(session, group_id=group.id)
        return {
            "id": group.id,
            "gaps": group.gaps,
            "customer": {
                "id": group.customer.id,
                "display_name": group.customer.display_name,
                "locale": group.customer.locale,
            },
            "members": [
                {
                    "staff_id": m.staff_id,
                    "display_name": m.staff.display_name,
                    "role": m.role,
                    "on_duty": m.staff.on_duty,
                    "joined_at": m.joined_at.isoformat(),
                }
                for m in members
            ],
            "cases": [
                {
                    "id": c.id,
                    "subject": c.subject,
                    "category": c.category,
                    "priority": c.priority,
                    "status": c.status,
                    "assignee_id": c.assignee_id,
                    "routing_reason": c.routing_reason,
                    "opened_at": c.opened_at.isoformat(),
                    "csat_score": c.csat_score,
                }
                for c in cases
            ],
        }


@router.get("/groups/{group_id}/messages", response_model=Page, tags=["staff"])
async def group_messages(group_id: PathId, request: Request, staff: StaffDep, after: AfterId = 0) -> Page:
    """A group's messages after an id, internal notes included."""
    rt = runtime(request)
    async with rt.maker() as session:
        group = await access.require_group(session, staff=staff, group_id=group_id)
        messages = await conv_service.list_messages(
            session, group_id=group.id, after_id=after, include_internal=True
        )
        return Page(items=[staff_view(m) for m in messages])


@router.post("/groups/{group_id}/messages", status_code=201, tags=["staff"])
async def post_staff_message(
    group_id: PathId, body: StaffMessageIn, request: Request, staff: StaffDep
) -> dict[str, Any]:
    """Reply to the customer (public) or write an internal note."""
    rt = runtime(request)
    async with rt.transaction() as session:
        message = await staff_flows.staff_reply(
            session,
            rt,
            staff=staff,
            group_id=group_id,
            body=body.body,
            internal=body.internal,
            channel=Channel.API,
        )
        return staff_view(message)


@router.post("/groups/{group_id}/invite", status_code=201, tags=["staff"])
async def invite(group_id: PathId, body: InviteIn, request: Request, staff: StaffDep) -> dict[str, Any]:
    """Bring another specialist into the group."""
    rt = runtime(request)
    async with rt.transaction() as session:
        member = await staff_flows.invite_member(
            session, rt, staff=staff, group_id=group_id, role=body.role, staff_id=body.staff_id
        )
        return {"staff_id": member.staff_id, "role": member.role}


@router.post("/cases/{case_id}/resolve", tags=["staff"])
async def resolve(case_id: PathId, request: Request, staff: StaffDep) -> dict[str, Any]:
    """Resolve a case; the customer is asked for a rating."""
    rt = runtime(request)
    async with rt.transaction() as session:
        case = await staff_flows.resolve_case(session, rt, staff=staff, case_id=case_id)
        return {"id": case.id, "status": case.status}


@router.post("/cases/{case_id}/reopen", tags=["staff"])
async def reopen(case_id: PathId, request: Request, staff: StaffDep) -> dict[str, Any]:
    """Reopen a resolved case."""
    rt = runtime(request)
    async with rt.transaction() as session:
        case = await staff_flows.reopen_case(session, rt, staff=staff, case_id=case_id)
        return {"id": case.id, "status": case.status}


@router.post("/cases/{case_id}/transfer", tags=["staff"])
async def transfer(case_id: PathId, body: TransferIn, request: Request, staff: StaffDep) -> dict[str, Any]:
    """Hand a case to another staff member."""
    rt = runtime(request)
    async with rt.transaction() as session:
        case = await staff_flows.transfer_case(
            session, rt, staff=staff, case_id=case_id, to_staff_id=body.to_staff_id
        )
        return {"id": case.id, "assignee_id": case.assignee_id}
