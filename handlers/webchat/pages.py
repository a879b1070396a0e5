"""The customer web chat page (/chat); the page talks to the REST API's web chat endpoints."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from bot.conversations import webchat
from bot.errors import NotFound
from bot.i18n import normalize_locale
from handlers.api.routes import COOKIE
from handlers.common import runtime

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

TEXTS = {
    "zh-CN": {
        "title": "Demo Motors 专属管家",
        "placeholder": "输入您的问题…",
        "send": "发送",
        "name": "您的称呼",
        "start": "开始咨询",
        "you": "我",
        "bot": "智能助手",
        "system": "系统",
        "intro": "7x24 小时在线，您的专属管家团队随时为您服务。",
        "error": "发送失败，请重试",
    },
    "en": {
        "title": "Demo Motors Butler",
        "placeholder": "Type your question…",
        "send": "Send",
        "name": "Your name",
        "start": "Start chat",
        "you": "You",
        "bot": "Assistant",
        "system": "System",
        "intro": "Online 7x24: your dedicated butler team is here for you.",
        "error": "Not sent, please retry",
    },
}


@router.get("/chat", response_class=HTMLResponse)
async def chat_page(request: Request, lang: str | None = None) -> HTMLResponse:
    """The chat page in the visitor's language (?lang=en|zh-CN, else the browser's)."""
    locale = normalize_locale(lang or request.headers.get("accept-language", "").split(",")[0], "zh-CN")
    rt = runtime(request)
    has_session = True
    async with rt.maker() as session:
        try:
            await webchat.require_session(session, rt, session_id=request.cookies.get(COOKIE))
        except NotFound:
            has_session = False  # the page asks for a name and starts a session
    return templates.TemplateResponse(
        request, "chat.html", {"locale": locale, "tx": TEXTS[locale], "has_session": has_session}
    )
