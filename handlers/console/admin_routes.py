"""The console admin section (admins only): staff, SLA policies, knowledge base, Telegram, audit log."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import RedirectResponse

from handlers.console import admin_audit, admin_kb, admin_sla, admin_staff, admin_telegram
from handlers.console.admin_common import AdminDep

router = APIRouter(prefix="/console/admin", include_in_schema=False)


@router.get("")
@router.get("/")
async def admin_home(me: AdminDep) -> RedirectResponse:
    """The admin section starts at the staff list."""
    return RedirectResponse("/console/admin/staff", status_code=303)


for part in (admin_staff, admin_sla, admin_kb, admin_telegram, admin_audit):
    router.include_router(part.router)
