"""Admin page: the audit log, newest first, filtered by actor, action and object, paginated."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from bot.teams import admin
from handlers.common import runtime
from handlers.console.admin_common import AdminDep, render_admin

router = APIRouter()


def as_json(data: Any) -> str:
    """Audit data as readable JSON text (autoescaped by the template)."""
    return json.dumps(data, ensure_ascii=False, sort_keys=True, default=str)


@router.get("/audit", response_class=HTMLResponse)
async def audit_page(
    request: Request,
    me: AdminDep,
    actor: str = "",
    action: str = "",
    object_type: str = "",
    object_id: str = "",
    page: int = 1,
) -> HTMLResponse:
    """One page of audit entries."""
    filters = {
        "actor": actor[:64],
        "action": action[:64],
        "object_type": object_type[:32],
        "object_id": object_id[:64],
    }
    rt = runtime(request)
    async with rt.maker() as session:
        result = await admin.list_audit(
            session,
            actor=filters["actor"],
            action=filters["action"],
            object_type=filters["object_type"],
            object_id=filters["object_id"],
            page=max(1, min(page, 100_000)),
        )
        types = await admin.audit_object_types(session)
    query = {k: v for k, v in filters.items() if v}
    return render_admin(
        request,
        "admin_audit.html",
        me,
        section="audit",
        result=result,
        filters=filters,
        object_types=types,
        as_json=as_json,
        prev_url=f"?{urlencode({**query, 'page': result.page - 1})}" if result.page > 1 else None,
        next_url=f"?{urlencode({**query, 'page': result.page + 1})}" if result.has_more else None,
    )
