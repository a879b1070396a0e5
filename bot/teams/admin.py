"""Staff administration used by the CLI and the console admin pages; console changes are audited."""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import SystemClock
from bot.db import make_engine, make_sessionmaker, session_scope
from bot.errors import Conflict, InvalidInput, NotFound
from bot.security import hash_password
from bot.settings import Settings
from bot.teams import service as teams_service
from bot.teams.enums import Role
from bot.teams.models import AuditLog, Dealer, Staff

T = TypeVar("T")
LANGUAGES = {"zh-CN", "en"}


class AdminError(InvalidInput):
    """A refused admin command, with a message for people."""

    def __init__(self, message: str, code: str = "admin.invalid") -> None:
        super().__init__(code, message)


async def run_with_session(settings: Settings, fn: Callable[..., Awaitable[T]], **kwargs: Any) -> T:
    """Run one admin function in its own committed transaction."""
    engine = make_engine(settings.database_url)
    try:
        async with session_scope(make_sessionmaker(engine)) as session:
            return await fn(session, **kwargs)
    finally:
        await engine.dispose()


async def add_staff(
    session: AsyncSession,
    *,
    username: str,
    display_name: str,
    role: str,
    languages: list[str],
    capacity: int,
    password: str | None,
) -> str:
    """Create a staff account; returns the password (generated when not given)."""
    if role not in {r.value for r in Role}:
        raise AdminError(f"unknown role {role!r}; use one of {', '.join(r.value for r in Role)}")
    bad = [lang for lang in languages if lang not in LANGUAGES]
    if bad:
        raise AdminError(f"unsupported language(s) {', '.join(bad)}; use zh-CN and/or en")
    if not username.strip() or len(username) > 64:
        raise AdminError("username must be 1 to 64 characters")
    if await teams_service.get_staff_by_username(session, username=username):
        raise AdminError(f"username {username!r} is taken")
    if password is not None and len(password) < 8:
        raise AdminError("password must have at least 8 characters")
    pw = password or secrets.token_urlsafe(9)
    dealer_id = (
        await session.scalars(Dealer.__table__.select().with_only_columns(Dealer.id).limit(1))
    ).first()
    session.add(
        Staff(
            username=username,
            display_name=display_name,
            role=role,
            languages=languages,
            dealer_id=dealer_id,
            capacity=capacity,
            on_duty=True,
            active=True,
            password_hash=hash_password(pw),
            created_at=SystemClock().now(),
        )
    )
    await session.flush()
    return pw


async def set_password(session: AsyncSession, *, username: str, password: str | None) -> str:
    """Replace a staff password; returns it."""
    staff = await teams_service.get_staff_by_username(session, username=username)
    if staff is None:
        raise AdminError(f"no staff account {username!r}")
    if password is not None and len(password) < 8:
        raise AdminError("password must have at least 8 characters")
    pw = password or secrets.token_urlsafe(9)
    staff.password_hash = hash_password(pw)
    await session.flush()
    return pw


async def staff_rows(session: AsyncSession) -> list[dict[str, Any]]:
    """Staff as plain rows for listing."""
    return [
        {
            "id": s.id,
            "username": s.username,
            "display_name": s.display_name,
            "role": s.role,
            "on_duty": s.on_duty,
            "active": s.active,
            "languages": s.languages or [],
        }
        for s in await teams_service.list_staff(session)
    ]


# --- console administration (every change audited) -------------------------------------------

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
MAX_CAPACITY = 500
AUDIT_PAGE = 50


def generate_password() -> str:
    """A fresh random password to show once."""
    return secrets.token_urlsafe(12)


@dataclass(frozen=True)
class StaffFields:
    """The editable attributes of a staff account, validated."""

    display_name: str
    role: str
    languages: list[str]
    dealer_id: int | None
    capacity: int
    on_duty: bool


async def check_staff_fields(
    session: AsyncSession,
    *,
    display_name: str,
    role: str,
    languages: list[str],
    dealer_id: int | None,
    capacity: int,
    on_duty: bool,
) -> StaffFields:
    """Validate the editable attributes; AdminError says which one is wrong."""
    name = display_name.strip()
    if not name or len(name) > 200:
        raise AdminError("the name must be 1 to 200 characters", "staff.name")
    if role not in {r.value for r in Role}:
        raise AdminError(f"unknown role {role!r}", "staff.role")
    langs: list[str] = [lang for lang in ("zh-CN", "en") if lang in languages]
    if not langs or len(langs) != len(set(languages)):
        raise AdminError("choose at least one language: zh-CN and/or en", "staff.languages")
    if dealer_id is not None and await session.get(Dealer, dealer_id) is None:
        raise AdminError("unknown dealer", "staff.dealer")
    if not 0 <= capacity <= MAX_CAPACITY:
        raise AdminError(f"capacity must be between 0 and {MAX_CAPACITY}", "staff.capacity")
    return StaffFields(name, role, langs, dealer_id, capacity, on_duty)


async def require_staff(session: AsyncSession, *, staff_id: int) -> Staff:
    """A staff member by id; NotFound otherwise."""
    staff = await teams_service.get_staff(session, staff_id=staff_id)
    if staff is None:
        raise NotFound("staff.not_found", f"staff member {staff_id} does not exist")
    return staff


async def list_dealers(session: AsyncSession) -> list[Dealer]:
    """All dealers, by code."""
    return list((await session.scalars(select(Dealer).order_by(Dealer.code))).all())


async def list_staff_filtered(
    session: AsyncSession,
    *,
    role: str | None = None,
    dealer_id: int | None = None,
    active: bool | None = None,
    query: str | None = None,
) -> list[Staff]:
    """Staff matching the filters, by role then username."""
    stmt = select(Staff).order_by(Staff.role, Staff.username)
    if role:
        stmt = stmt.where(Staff.role == role)
    if dealer_id is not None:
        stmt = stmt.where(Staff.dealer_id == dealer_id)
    if active is not None:
        stmt = stmt.where(Staff.active.is_(active))
    if query and query.strip():
        like = f"%{query.strip().lower()}%"
        stmt = stmt.where(func.lower(Staff.username).like(like) | func.lower(Staff.display_name).like(like))
    return list((await session.scalars(stmt)).all())


async def create_staff(
    session: AsyncSession,
    *,
    username: str,
    fields: StaffFields,
    actor_staff_id: int | None,
    now: datetime,
) -> tuple[Staff, str]:
    """Create an account with a generated password; returns (staff, password to show once)."""
    username = username.strip()
    if not USERNAME.match(username):
        raise AdminError(
            "username: 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit",
            "staff.username",
        )
    taken = await session.scalar(select(Staff.id).where(func.lower(Staff.username) == username.lower()))
    if taken is not None:
        raise AdminError(f"username {username!r} is taken", "staff.username_taken")
    password = generate_password()
    staff = Staff(
        username=username,
        display_name=fields.display_name,
        role=fields.role,
        languages=fields.languages,
        dealer_id=fields.dealer_id,
        capacity=fields.capacity,
        on_duty=fields.on_duty,
        active=True,
        password_hash=hash_password(password),
        ui_locale=fields.languages[0],
        created_at=now,
    )
    session.add(staff)
    await session.flush()
    teams_service.audit(
        session,
        action="staff.create",
        object_type="staff",
        object_id=staff.id,
        actor_staff_id=actor_staff_id,
        now=now,
        data={"username": username, **staff_fields(staff)},
    )
    return staff, password


def staff_fields(staff: Staff) -> dict[str, Any]:
    """The editable fields of a staff account (the admin form's values, the audit log's before/after)."""
    return {
        "display_name": staff.display_name,
        "role": staff.role,
        "languages": list(staff.languages or []),
        "dealer_id": staff.dealer_id,
        "capacity": staff.capacity,
        "on_duty": staff.on_duty,
    }


async def _other_active_admins(session: AsyncSession, *, staff_id: int) -> int:
    return int(
        await session.scalar(
            select(func.count())
            .select_from(Staff)
            .where(Staff.role == Role.ADMIN, Staff.active.is_(True), Staff.id != staff_id)
        )
        or 0
    )


async def update_staff(
    session: AsyncSession, *, staff_id: int, fields: StaffFields, actor_staff_id: int | None, now: datetime
) -> Staff:
    """Change role, dealer, capacity, languages, on-duty and name; audits what changed."""
    staff = await require_staff(session, staff_id=staff_id)
    if staff.role == Role.ADMIN and fields.role != Role.ADMIN:
        if staff.id == actor_staff_id:
            raise AdminError("you cannot take the admin role from yourself", "staff.self")
        if staff.active and await _other_active_admins(session, staff_id=staff.id) == 0:
            raise AdminError("this is the last active admin", "staff.last_admin")
    before = staff_fields(staff)
    staff.display_name, staff.role, staff.languages = fields.display_name, fields.role, fields.languages
    staff.dealer_id, staff.capacity, staff.on_duty = fields.dealer_id, fields.capacity, fields.on_duty
    after = staff_fields(staff)
    changes = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
    await session.flush()
    if changes:
        teams_service.audit(
            session,
            action="staff.update",
            object_type="staff",
            object_id=staff.id,
            actor_staff_id=actor_staff_id,
            now=now,
            data={"username": staff.username, "changes": changes},
        )
    return staff


async def set_staff_active(
    session: AsyncSession, *, staff_id: int, active: bool, actor_staff_id: int | None, now: datetime
) -> Staff:
    """Deactivate (no login, no new assignments, off duty) or reactivate an account."""
    staff = await require_staff(session, staff_id=staff_id)
    if staff.active == active:
        return staff
    if not active:
        if staff.id == actor_staff_id:
            raise AdminError("you cannot deactivate your own account", "staff.self")
        if staff.role == Role.ADMIN and await _other_active_admins(session, staff_id=staff.id) == 0:
            raise AdminError("this is the last active admin", "staff.last_admin")
        staff.on_duty = False
    staff.active = active
    await session.flush()
    teams_service.audit(
        session,
        action="staff.reactivate" if active else "staff.deactivate",
        object_type="staff",
        object_id=staff.id,
        actor_staff_id=actor_staff_id,
        now=now,
        data={"username": staff.username},
    )
    return staff


async def reset_password(
    session: AsyncSession, *, staff_id: int, actor_staff_id: int | None, now: datetime
) -> tuple[Staff, str]:
    """Set a generated password (ending that account's console sessions); returns it once."""
    staff = await require_staff(session, staff_id=staff_id)
    password = generate_password()
    staff.password_hash = hash_password(password)
    await session.flush()
    teams_service.audit(
        session,
        action="staff.password_reset",
        object_type="staff",
        object_id=staff.id,
        actor_staff_id=actor_staff_id,
        now=now,
        data={"username": staff.username},
    )
    return staff, password


def record_telegram_link_issued(
    session: AsyncSession, *, staff: Staff, actor_staff_id: int | None, now: datetime
) -> None:
    """Audit that a one-time Telegram link was issued for an account (the token is never stored here)."""
    teams_service.audit(
        session,
        action="staff.telegram_link_issued",
        object_type="staff",
        object_id=staff.id,
        actor_staff_id=actor_staff_id,
        now=now,
        data={"username": staff.username},
    )


async def unlink_telegram(
    session: AsyncSession, *, staff_id: int, actor_staff_id: int | None, now: datetime
) -> Staff:
    """Forget the linked Telegram account of a staff member."""
    staff = await require_staff(session, staff_id=staff_id)
    if staff.telegram_user_id is None:
        raise Conflict("staff.not_linked", "this account has no linked Telegram user")
    old = staff.telegram_user_id
    staff.telegram_user_id = None
    await session.flush()
    teams_service.audit(
        session,
        action="staff.telegram_unlink",
        object_type="staff",
        object_id=staff.id,
        actor_staff_id=actor_staff_id,
        now=now,
        data={"username": staff.username, "telegram_user_id": old},
    )
    return staff


@dataclass(frozen=True)
class AuditPage:
    """One page of the audit log, newest first."""

    rows: list[tuple[AuditLog, Staff | None]]
    page: int
    has_more: bool


async def list_audit(
    session: AsyncSession,
    *,
    actor: str | None = None,
    action: str | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    page: int = 1,
    per_page: int = AUDIT_PAGE,
) -> AuditPage:
    """Audit rows filtered by actor username, action (prefix) and object, newest first."""
    page = max(1, page)
    stmt = select(AuditLog, Staff).outerjoin(Staff, Staff.id == AuditLog.actor_staff_id)
    if actor and actor.strip():
        stmt = stmt.where(func.lower(Staff.username) == actor.strip().lower())
    if action and action.strip():
        stmt = stmt.where(AuditLog.action.startswith(action.strip(), autoescape=True))
    if object_type and object_type.strip():
        stmt = stmt.where(AuditLog.object_type == object_type.strip())
    if object_id and object_id.strip():
        stmt = stmt.where(AuditLog.object_id == object_id.strip())
    stmt = stmt.order_by(AuditLog.at.desc(), AuditLog.id.desc()).offset((page - 1) * per_page)
    rows: list[tuple[AuditLog, Staff | None]] = [
        (a, s) for a, s in (await session.execute(stmt.limit(per_page + 1))).all()
    ]
    return AuditPage(rows=rows[:per_page], page=page, has_more=len(rows) > per_page)


async def audit_object_types(session: AsyncSession) -> list[str]:
    """The object types present in the audit log (for the filter)."""
    return sorted((await session.scalars(select(AuditLog.object_type).distinct())).all())
