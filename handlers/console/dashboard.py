"""Manager dashboard: live tiles, charts, escalation queue, team load, drill-down lists and CSV export.

Leads see their own dealer only; managers and admins all dealers or one; specialists get 403.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import as_utc
from bot.errors import Forbidden, InvalidInput
from bot.i18n import role_name
from bot.teams.enums import Role
from bot.teams.models import Dealer, Staff
from escalation import metrics
from escalation.metrics import METRICS, Dashboard, Scope
from escalation.metrics_drill import DETAIL, LIVE, CaseRow, Drill, drill_rows
from escalation.policies import duration_label
from handlers.common import runtime, sse
from handlers.console.auth import require_roles
from handlers.console.pages import _locale, _render
from handlers.console.texts import ui

router = APIRouter(prefix="/console/dashboard", include_in_schema=False)
SupervisorDep = Annotated[Staff, Depends(require_roles(Role.LEAD, Role.MANAGER, Role.ADMIN))]
DEFAULT_DAYS = 14
PAGE_ROWS = 500
CSV_ROWS = 100_000
ROLES = (*(str(r) for r in Role), "unassigned")
# Bus events that can move a tile (new cases on "cases", clock changes on "cases" and "sla").
LIVE_TOPICS = ["cases", "sla"]
CSV_COLUMNS = (
    "case_id",
    "group_id",
    "customer",
    "dealer",
    "subject",
    "category",
    "priority",
    "status",
    "assignee",
    "assignee_role",
    "opened_at",
    "first_response_at",
    "resolved_at",
    "csat_score",
    "detail",
)
_RISKY_START = ("=", "+", "-", "@", "\t", "\r")


def _day(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput("dashboard.bad_date", f"{name} must be a date like 2026-11-02") from exc


def _int(value: str | None, name: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(str(value))
    except ValueError as exc:
        raise InvalidInput("dashboard.bad_number", f"{name} must be a whole number") from exc


async def _scope(
    request: Request, session: AsyncSession, staff: Staff, dealers: list[Dealer] | None = None
) -> Scope:
    """Period, dealer and timezone from the query; a lead is held to their own dealer.

    `dealers` (all of them, already loaded for the filter) saves looking the timezone up.
    """
    q = request.query_params
    dealer_id = _int(q.get("dealer"), "dealer")
    if staff.role == Role.LEAD:
        if staff.dealer_id is None:
            raise Forbidden("dashboard.no_dealer", "a team lead without a dealer has no dashboard")
        dealer_id = staff.dealer_id
    home = dealer_id or staff.dealer_id
    known = {d.id: d.timezone for d in dealers or []}
    if home in known:
        tz = metrics.safe_timezone(known[home])
    else:
        tz = await metrics.dealer_timezone(session, dealer_id=home)
    now = runtime(request).clock.now()
    today = metrics.default_scope(now, tz=tz).today
    last = _day(q.get("to"), "to") or today
    first = _day(q.get("from"), "from") or last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise InvalidInput("dashboard.bad_range", "the period starts after it ends")
    if (last - first).days >= metrics.MAX_DAYS:
        raise InvalidInput("dashboard.bad_range", f"the period is longer than {metrics.MAX_DAYS} days")
    try:
        risk = min(240.0, max(0.0, float(q.get("risk") or 2)))
    except ValueError as exc:
        raise InvalidInput("dashboard.bad_number", "risk must be a number of minutes") from exc
    return Scope(first, last, now, tz, dealer_id, risk)


def _facts_cache(request: Request) -> metrics.FactsCache:
    """The process's cache of settled days (one per runtime)."""
    extras = runtime(request).extras
    cache = extras.get("dashboard_facts")
    if not isinstance(cache, metrics.FactsCache):
        cache = extras["dashboard_facts"] = metrics.FactsCache()
    return cache


def _drill(request: Request) -> Drill:
    q = request.query_params
    metric = q.get("metric") or ""
    if metric not in DETAIL:
        raise InvalidInput("dashboard.bad_metric", f"unknown metric {metric[:40]!r}")
    sla_metric = q.get("sla_metric") or None
    if sla_metric is not None and sla_metric not in METRICS:
        raise InvalidInput("dashboard.bad_metric", f"unknown SLA metric {sla_metric[:40]!r}")
    role = q.get("role") or None
    if role is not None and role not in ROLES:
        raise InvalidInput("dashboard.bad_role", f"unknown role {role[:40]!r}")
    return Drill(
        metric=metric,
        day=_day(q.get("day"), "day"),
        sla_metric=sla_metric,
        role=role,
        staff_id=_int(q.get("staff"), "staff"),
        missed_only=q.get("missed") == "1",
    )


class Links:
    """URLs that keep the period and dealer of the current view (hundreds per page: built cheaply)."""

    def __init__(self, scope: Scope) -> None:
        base = {"from": scope.first_day.isoformat(), "to": scope.last_day.isoformat()}
        if scope.dealer_id is not None:
            base["dealer"] = str(scope.dealer_id)
        self._base = urlencode(base)

    def query(self, **extra: Any) -> str:
        """The query string with extra parameters (None values dropped)."""
        parts = [self._base]
        parts.extend(f"{k}={quote(str(v), safe='')}" for k, v in extra.items() if v is not None)
        return "&".join(parts)

    def cases(self, metric: str, **extra: Any) -> str:
        """The drill-down list."""
        return f"/console/dashboard/cases?{self.query(metric=metric, **extra)}"

    def export(self, metric: str, **extra: Any) -> str:
        """The drill-down as CSV."""
        return f"/console/dashboard/export.csv?{self.query(metric=metric, **extra)}"


def _formatters(scope: Scope, tx: dict[str, str]) -> dict[str, Any]:
    zone = scope.zone

    def dt(value: datetime | None, fmt: str = "%m-%d %H:%M") -> str:
        return tx["none"] if value is None else as_utc(value).astimezone(zone).strftime(fmt)

    def pct(value: float | None) -> str:
        return tx["none"] if value is None else f"{value * 100:.1f}%"

    def dur(seconds: float | None) -> str:
        return tx["none"] if seconds is None else duration_label(max(0.0, seconds))

    return {"fmt_dt": dt, "fmt_pct": pct, "fmt_dur": dur}


def _pct(value: float | None) -> float | None:
    return None if value is None else round(value * 100, 1)


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60, 2)


def _role_label(role: str, tx: dict[str, str], locale: str) -> str:
    return tx["dash_unassigned"] if role == "unassigned" else role_name(role, locale)


def _charts(data: Dashboard, links: Links, tx: dict[str, str], locale: str) -> dict[str, Any]:
    """Chart specs for dashboard.js: labels, datasets with values and a drill-down URL per point."""
    days = data.series.days
    labels = [p.day.isoformat() for p in days]

    def per_day(label: str, values: list[float | None], metric: str, **extra: Any) -> dict[str, Any]:
        return {
            "label": label,
            "data": values,
            "drill": [links.cases(metric, day=p.day.isoformat(), **extra) for p in days],
        }

    hit_day = [per_day(tx["dash_all_clocks"], [_pct(p.hit_rate()) for p in days], "sla")]
    for m in METRICS:
        hit_day.append(per_day(tx[f"metric_{m}"], [_pct(p.hit_rate(m)) for p in days], "sla", sla_metric=m))
    roles = data.series.roles
    breaches = data.series.breaches
    return {
        "hitDay": {"type": "line", "unit": "%", "max": 100, "labels": labels, "datasets": hit_day},
        "hitRole": {
            "type": "bar",
            "unit": "%",
            "max": 100,
            "labels": [
                tx["dash_unassigned"] if r.role == "unassigned" else role_name(r.role, locale) for r in roles
            ],
            "datasets": [
                {
                    "label": tx["dash_all_clocks"],
                    "data": [_pct(r.hit_rate) for r in roles],
                    "drill": [links.cases("sla", role=r.role) for r in roles],
                }
            ],
        },
        "frt": {
            "type": "line",
            "unit": "min",
            "labels": labels,
            "datasets": [
                per_day(tx["dash_p50"], [_minutes(p.frt_p50) for p in days], "first_response"),
                per_day(tx["dash_p90"], [_minutes(p.frt_p90) for p in days], "first_response"),
                per_day(
                    tx["dash_business_p50"], [_minutes(p.frt_business_p50) for p in days], "first_response"
                ),
                per_day(
                    tx["dash_business_p90"], [_minutes(p.frt_business_p90) for p in days], "first_response"
                ),
            ],
        },
        "backlog": {
            "type": "bar",
            "unit": "",
            "labels": labels,
            "datasets": [per_day(tx["dash_backlog"], [p.backlog for p in days], "backlog")],
        },
        "breaches": {
            "type": "bar",
            "horizontal": True,
            "unit": "",
            "labels": [b.name if b.staff_id is not None else tx["dash_unassigned"] for b in breaches],
            "datasets": [
                {
                    "label": tx["dash_breaches"],
                    "data": [b.breaches for b in breaches],
                    "drill": [links.cases("breaches", staff=b.staff_id or 0) for b in breaches],
                }
            ],
        },
        "csat": {
            "type": "line",
            "unit": "%",
            "max": 100,
            "labels": labels,
            "datasets": [
                per_day(tx["dash_csat"], [_pct(p.csat) for p in days], "csat"),
                per_day(tx["dash_response_rate"], [_pct(p.response_rate) for p in days], "csat"),
            ],
        },
        "bot": {
            "type": "line",
            "unit": "%",
            "max": 100,
            "labels": labels,
            "datasets": [per_day(tx["dash_bot_rate"], [_pct(p.bot_rate) for p in days], "bot_resolved")],
        },
    }


CHARTS = (
    ("hitDay", "dash_chart_hit_day"),
    ("hitRole", "dash_chart_hit_role"),
    ("frt", "dash_chart_frt"),
    ("backlog", "dash_chart_backlog"),
    ("breaches", "dash_chart_breaches"),
    ("csat", "dash_chart_csat"),
    ("bot", "dash_chart_bot"),
)


@router.get("", response_class=HTMLResponse)
async def dashboard_page(request: Request, staff: SupervisorDep) -> HTMLResponse:
    """The whole dashboard for the period and dealer in the query."""
    rt = runtime(request)
    async with rt.maker() as session:
        dealers = await metrics.list_dealers(session) if staff.role != Role.LEAD else []
        scope = await _scope(request, session, staff, dealers)
        data = await metrics.dashboard(session, scope=scope, cache=_facts_cache(request), maker=rt.maker)
    locale = _locale(request, staff)
    tx = ui(locale)
    links = Links(scope)
    return _render(
        request,
        "dashboard.html",
        staff,
        d=data,
        tiles=data.tiles,
        scope=scope,
        dealers=dealers,
        links=links,
        charts=_charts(data, links, tx, locale),
        chart_titles=CHARTS,
        **_formatters(scope, tx),
    )


@router.get("/tiles", response_class=HTMLResponse)
async def dashboard_tiles(request: Request, staff: SupervisorDep) -> HTMLResponse:
    """The live tiles alone, refreshed when bus events arrive."""
    rt = runtime(request)
    async with rt.maker() as session:
        scope = await _scope(request, session, staff)
        tiles = await metrics.tiles(session, scope=scope)
    tx = ui(_locale(request, staff))
    return _render(
        request,
        "_dashboard_tiles.html",
        staff,
        tiles=tiles,
        scope=scope,
        links=Links(scope),
        **_formatters(scope, tx),
    )


@router.get("/events")
async def dashboard_events(request: Request, staff: SupervisorDep) -> Response:
    """Server-sent hints that a tile may have changed (the tiles are then fetched again)."""
    return sse(request, runtime(request), LIVE_TOPICS)


@router.get("/cases", response_class=HTMLResponse)
async def dashboard_cases(request: Request, staff: SupervisorDep) -> HTMLResponse:
    """The cases (or bot answers) behind a tile or chart point."""
    drill = _drill(request)
    rt = runtime(request)
    async with rt.maker() as session:
        scope = await _scope(request, session, staff)
        rows, total = await drill_rows(session, scope=scope, drill=drill, limit=PAGE_ROWS)
    tx = ui(_locale(request, staff))
    links = Links(scope)
    extra = _drill_params(drill)
    return _render(
        request,
        "dashboard_cases.html",
        staff,
        drill=drill,
        detail=DETAIL[drill.metric],
        live=drill.metric in LIVE,
        rows=rows,
        total=total,
        scope=scope,
        links=links,
        export_url=links.export(drill.metric, **extra),
        **_formatters(scope, tx),
    )


def _drill_params(drill: Drill) -> dict[str, Any]:
    return {
        "day": drill.day.isoformat() if drill.day else None,
        "sla_metric": drill.sla_metric,
        "role": drill.role,
        "staff": drill.staff_id,
        "missed": "1" if drill.missed_only else None,
    }


def csv_cell(value: Any, scope: Scope) -> str:
    """One CSV cell: times in the scope's timezone, and no cell a spreadsheet would run as a formula."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return as_utc(value).astimezone(scope.zone).isoformat(timespec="seconds")
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        value = round(value, 3)
    text = str(value)
    if text.startswith(_RISKY_START):
        text = "'" + text
    return text


def csv_lines(rows: list[CaseRow], scope: Scope) -> list[str]:
    """The CSV text (header first), in chunks of lines."""
    out: list[str] = []
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for i, row in enumerate(rows, 1):
        writer.writerow([csv_cell(getattr(row, column), scope) for column in CSV_COLUMNS])
        if i % 1000 == 0:
            out.append(buffer.getvalue())
            buffer.seek(0)
            buffer.truncate()
    out.append(buffer.getvalue())
    return out


@router.get("/export.csv")
async def dashboard_export(request: Request, staff: SupervisorDep) -> StreamingResponse:
    """The drill-down as CSV, one row per case (per bot answer for bot-resolved)."""
    drill = _drill(request)
    rt = runtime(request)
    async with rt.maker() as session:
        scope = await _scope(request, session, staff)
        rows, total = await drill_rows(session, scope=scope, drill=drill, limit=CSV_ROWS)
    chunks = csv_lines(rows, scope)

    async def body() -> AsyncIterator[bytes]:
        yield "\ufeff".encode()  # a BOM, so spreadsheet programs read UTF-8 (Chinese names) right
        for chunk in chunks:
            yield chunk.encode("utf-8")

    name = f"butler-{drill.metric}-{scope.first_day.isoformat()}-{scope.last_day.isoformat()}.csv"
    headers = {
        "Content-Disposition": f'attachment; filename="{name}"',
        "X-Total-Count": str(total),
        "Cache-Control": "no-store",
    }
    return StreamingResponse(body(), media_type="text/csv; charset=utf-8", headers=headers)
