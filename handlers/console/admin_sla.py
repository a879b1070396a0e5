"""Admin page: SLA policies and calendars (view what applies to what, edit the YAML as a new version)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bot.errors import DomainError
from bot.teams.models import Staff
from escalation import policy_store
from escalation.policies import METRICS, PolicySet, duration_label
from handlers.common import runtime
from handlers.console.admin_common import AdminDep, render_admin
from handlers.console.auth import check_csrf

router = APIRouter()


async def _page(
    request: Request,
    me: Staff,
    *,
    text: str | None = None,
    comment: str = "",
    error: DomainError | None = None,
    status: int = 200,
    show_version: int | None = None,
    notice: str | None = None,
) -> HTMLResponse:
    rt = runtime(request)
    async with rt.maker() as session:
        latest = await policy_store.latest_version(session)
        versions = await policy_store.list_versions(session, limit=20)
    shown = next((v for v in versions if v.version == show_version), None)
    if latest is not None:
        active_text, source = latest.yaml_text, f"v{latest.version}"
    else:
        active_text, source = policy_store.file_text(rt.settings.sla_policies_file)
    policies: PolicySet = rt.sla.policies
    return render_admin(
        request,
        "admin_sla.html",
        me,
        section="sla",
        status=status,
        editor_text=text if text is not None else (shown.yaml_text if shown else active_text),
        comment=comment,
        error=error,
        source=source,
        latest=latest,
        versions=versions,
        shown=shown,
        rows=policy_store.policy_rows(policies),
        calendars=[c.describe() for c in policies.calendars.values()],
        in_force=policies.source,
        metrics=METRICS,
        duration=duration_label,
        notice=notice,
        loaded_version=rt.extras.get(policy_store.VERSION_KEY, 0),
    )


@router.get("/sla", response_class=HTMLResponse)
async def sla_page(
    request: Request, me: AdminDep, version: int | None = None, done: str = ""
) -> HTMLResponse:
    """The policies in force as a table, the YAML editor and the saved versions."""
    return await _page(request, me, show_version=version, notice=done[:20] or None)


@router.post("/sla", response_model=None)
async def sla_save(
    request: Request,
    me: AdminDep,
    yaml_text: Annotated[str, Form(max_length=policy_store.MAX_YAML)] = "",
    comment: Annotated[str, Form(max_length=200)] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Validate and save the YAML as a new version; every process reloads it."""
    check_csrf(request, csrf)
    rt = runtime(request)
    try:
        async with rt.transaction() as session:
            row, _ = await policy_store.save_policies(
                session, text=yaml_text, comment=comment, actor_staff_id=me.id, now=rt.clock.now()
            )
    except DomainError as exc:
        return await _page(request, me, text=yaml_text, comment=comment, error=exc, status=exc.status)
    # This process applies it at once; the others follow the bus event (or their periodic check).
    await policy_store.apply_stored(rt)
    return RedirectResponse(f"/console/admin/sla?done=v{row.version}", status_code=303)
