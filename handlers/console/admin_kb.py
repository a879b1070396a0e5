"""Admin pages: the knowledge base (list, create, edit, enable/disable, preview, import, export)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bot.errors import DomainError, InvalidInput
from bot.teams.models import Staff
from handlers.common import runtime
from handlers.console.admin_common import AdminDep, opt_bool, render_admin
from handlers.console.auth import check_csrf
from knowledge import admin as kb_admin
from knowledge import service as knowledge_service
from knowledge.tokenize import detect_locale

router = APIRouter()
CATEGORIES = sorted(knowledge_service.CATEGORIES)
LOCALES = ["zh-CN", "en"]
ACTIONS = sorted(knowledge_service.ACTIONS)
PREVIEW_K = 8


def _preview(request: Request, text: str, locale: str) -> dict[str, Any] | None:
    """Ranked matches with scores and the decision of the live index of this process."""
    text = text.strip()[:500]
    if not text:
        return None
    answerer = runtime(request).answerer
    loc = locale if locale in LOCALES else detect_locale(text)
    decide = getattr(answerer, "decide", None)
    decision = decide(text, locale=loc) if decide is not None else None
    if answerer is None or decision is None:
        return {"text": text, "locale": loc, "ready": False}
    matches = answerer.suggest(text, locale=loc, k=PREVIEW_K)
    top = decision.top
    return {
        "text": text,
        "locale": loc,
        "ready": True,
        "answer": decision.answer,
        "threshold": decision.threshold,
        "top_topic": top.entry.topic if top else None,
        "top_score": top.score if top else None,
        "top_answer": top.entry.answer if top else None,
        "matches": matches,
        "version": getattr(answerer, "version", None),
    }


@router.get("/kb", response_class=HTMLResponse)
async def kb_list(
    request: Request,
    me: AdminDep,
    q: str = "",
    topic: str = "",
    category: str = "",
    locale: str = "",
    enabled: str = "",
    text: str = "",
    plocale: str = "",
    done: str = "",
) -> HTMLResponse:
    """Entries with search and filters; the preview box; import and export."""
    return await _list_page(
        request,
        me,
        filters={"q": q, "topic": topic, "category": category, "locale": locale, "enabled": enabled},
        preview=_preview(request, text, plocale),
        preview_form={"text": text, "locale": plocale},
        notice=done[:40] or None,
    )


async def _list_page(
    request: Request,
    me: Staff,
    *,
    filters: dict[str, str],
    preview: dict[str, Any] | None = None,
    preview_form: dict[str, str] | None = None,
    error: DomainError | None = None,
    status: int = 200,
    notice: str | None = None,
) -> HTMLResponse:
    rt = runtime(request)
    async with rt.maker() as session:
        rows = await kb_admin.search_entries(
            session,
            query=filters.get("q", "")[:200],
            topic=filters.get("topic", "")[:64],
            category=filters.get("category") if filters.get("category") in CATEGORIES else None,
            locale=filters.get("locale") if filters.get("locale") in LOCALES else None,
            enabled=opt_bool(filters.get("enabled")),
        )
        total, enabled = await kb_admin.count_entries(session)
        topics = await kb_admin.all_topics(session)
    return render_admin(
        request,
        "admin_kb.html",
        me,
        section="kb",
        status=status,
        rows=rows,
        total=total,
        enabled_count=enabled,
        topics=topics,
        filters=filters,
        categories=CATEGORIES,
        locales=LOCALES,
        preview=preview,
        pf=preview_form or {"text": "", "locale": ""},
        error=error,
        notice=notice,
        index_version=getattr(rt.answerer, "version", None),
    )


@router.get("/kb/preview", response_class=HTMLResponse)
async def kb_preview(request: Request, me: AdminDep, text: str = "", plocale: str = "") -> HTMLResponse:
    """The preview result alone (htmx swaps it in; also a plain page)."""
    return render_admin(
        request,
        "_admin_kb_preview.html",
        me,
        section="kb",
        preview=_preview(request, text, plocale),
    )


def _form(
    request: Request,
    me: Staff,
    *,
    entry_id: int | None,
    draft: kb_admin.EntryDraft,
    error: DomainError | None = None,
    status: int = 200,
    enabled: bool = True,
    notice: str | None = None,
    source_message: int | None = None,
) -> HTMLResponse:
    return render_admin(
        request,
        "admin_kb_form.html",
        me,
        section="kb",
        status=status,
        entry_id=entry_id,
        d=draft,
        enabled=enabled,
        error=error,
        categories=CATEGORIES,
        locales=LOCALES,
        actions=ACTIONS,
        notice=notice,
        source_message=source_message,
    )


Short = Annotated[str, Form(max_length=100)]
Long = Annotated[str, Form(max_length=20000)]


def _entry_form(
    topic: Short = "",
    category: Short = "general",
    locale: Short = "zh-CN",
    questions: Long = "",
    answer: Long = "",
    actions: Annotated[list[str] | None, Form()] = None,
) -> kb_admin.EntryDraft:
    """The entry form's fields as a draft (the new and the edit form post the same fields)."""
    return kb_admin.EntryDraft(
        topic=topic.strip(),
        category=category,
        locale=locale,
        questions=questions,
        answer=answer,
        actions=tuple(actions or []),
    )


EntryForm = Annotated[kb_admin.EntryDraft, Depends(_entry_form)]


@router.get("/kb/new", response_class=HTMLResponse)
async def kb_new(request: Request, me: AdminDep) -> HTMLResponse:
    """An empty entry form."""
    return _form(request, me, entry_id=None, draft=kb_admin.EntryDraft())


@router.post("/kb/new", response_model=None)
async def kb_create(
    request: Request,
    me: AdminDep,
    draft: EntryForm,
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Create an entry; every process rebuilds its index."""
    check_csrf(request, csrf)
    rt = runtime(request)
    try:
        async with rt.transaction() as session:
            row = await kb_admin.create_entry(session, draft=draft, actor_staff_id=me.id, now=rt.clock.now())
    except DomainError as exc:
        return _form(request, me, entry_id=None, draft=draft, error=exc, status=exc.status)
    return RedirectResponse(f"/console/admin/kb/{row.id}?done=created", status_code=303)


@router.get("/kb/{entry_id:int}", response_class=HTMLResponse)
async def kb_edit(entry_id: int, request: Request, me: AdminDep, done: str = "") -> HTMLResponse:
    """One entry's form."""
    rt = runtime(request)
    async with rt.maker() as session:
        row = await knowledge_service.get_entry(session, entry_id=entry_id)
    return _form(
        request,
        me,
        entry_id=row.id,
        draft=kb_admin.EntryDraft.of(row),
        enabled=row.enabled,
        notice=done[:20] or None,
    )


@router.post("/kb/{entry_id:int}", response_model=None)
async def kb_update(
    entry_id: int,
    request: Request,
    me: AdminDep,
    draft: EntryForm,
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Save an edited entry; every process rebuilds its index."""
    check_csrf(request, csrf)
    rt = runtime(request)
    try:
        async with rt.transaction() as session:
            await kb_admin.update_entry(
                session, entry_id=entry_id, draft=draft, actor_staff_id=me.id, now=rt.clock.now()
            )
    except DomainError as exc:
        if exc.status == 404:
            raise
        async with rt.maker() as session:
            row = await knowledge_service.get_entry(session, entry_id=entry_id)
        return _form(
            request, me, entry_id=entry_id, draft=draft, error=exc, status=exc.status, enabled=row.enabled
        )
    return RedirectResponse(f"/console/admin/kb/{entry_id}?done=saved", status_code=303)


async def _set_enabled(request: Request, me: Staff, entry_id: int, enabled: bool, csrf: str) -> Response:
    check_csrf(request, csrf)
    rt = runtime(request)
    async with rt.transaction() as session:
        await kb_admin.set_entry_enabled(
            session, entry_id=entry_id, enabled=enabled, actor_staff_id=me.id, now=rt.clock.now()
        )
    return RedirectResponse(
        f"/console/admin/kb/{entry_id}?done={'enabled' if enabled else 'disabled'}", status_code=303
    )


@router.post("/kb/{entry_id:int}/enable", response_model=None)
async def kb_enable(
    entry_id: int, request: Request, me: AdminDep, csrf: Annotated[str, Form()] = ""
) -> Response:
    """Put an entry back into the index."""
    return await _set_enabled(request, me, entry_id, True, csrf)


@router.post("/kb/{entry_id:int}/disable", response_model=None)
async def kb_disable(
    entry_id: int, request: Request, me: AdminDep, csrf: Annotated[str, Form()] = ""
) -> Response:
    """Take an entry out of the index (kept for later)."""
    return await _set_enabled(request, me, entry_id, False, csrf)


@router.post("/kb/import", response_model=None)
async def kb_import(
    request: Request,
    me: AdminDep,
    file: UploadFile | None = None,
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Import a YAML or JSONL upload: all entries or none."""
    check_csrf(request, csrf)
    rt = runtime(request)
    try:
        if file is None or not file.filename:
            raise InvalidInput("faq.file_missing", "choose a file to import")
        content = await file.read(kb_admin.MAX_UPLOAD + 1)
        async with rt.transaction() as session:
            count = await kb_admin.import_upload(
                session, filename=file.filename, content=content, actor_staff_id=me.id, now=rt.clock.now()
            )
    except DomainError as exc:
        return await _list_page(request, me, filters={}, error=exc, status=exc.status)
    return RedirectResponse(f"/console/admin/kb?done=imported:{count}", status_code=303)


@router.get("/kb/export", response_model=None)
async def kb_export(request: Request, me: AdminDep, fmt: str = "yaml") -> Response:
    """Download every entry as YAML (grouped by topic) or JSONL."""
    fmt = "jsonl" if fmt == "jsonl" else "yaml"
    rt = runtime(request)
    async with rt.maker() as session:
        text, media = await kb_admin.export_text(session, fmt=fmt)
    stamp = rt.clock.now().strftime("%Y%m%d-%H%M")
    return Response(
        text.encode("utf-8"),
        media_type=f"{media}; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="butler-kb-{stamp}.{fmt}"'},
    )


@router.post("/kb/from-message/{message_id:int}", response_class=HTMLResponse)
async def kb_from_message(
    message_id: int, request: Request, me: AdminDep, csrf: Annotated[str, Form()] = ""
) -> HTMLResponse:
    """Save as FAQ: a new-entry form prefilled from a staff reply (saving is the normal create)."""
    check_csrf(request, csrf)
    rt = runtime(request)
    async with rt.maker() as session:
        draft = await kb_admin.draft_from_message(session, message_id=message_id)
    return _form(request, me, entry_id=None, draft=draft, source_message=message_id)
