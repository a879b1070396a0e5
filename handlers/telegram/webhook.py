"""POST /telegram/webhook: secret checked, update committed, and only then 200."""

from __future__ import annotations

import hmac
import logging
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from handlers.common import runtime
from handlers.telegram.runner import transient

if TYPE_CHECKING:
    from handlers.telegram.wiring import TelegramChannel

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


@router.post(WEBHOOK_PATH)
async def telegram_webhook(request: Request) -> Response:
    """403 without the secret (nothing read or stored); 503/500 if handling failed, so Telegram retries."""
    channel: TelegramChannel | None = runtime(request).extras.get("telegram")
    if channel is None:
        return Response(status_code=404)
    given = request.headers.get(SECRET_HEADER, "")
    if not given or not hmac.compare_digest(given.encode(), channel.webhook_secret.encode()):
        return Response(status_code=403)
    try:
        data = await request.json()
    except ValueError:
        log.warning("webhook body is not JSON; ignored")
        return Response(status_code=400)
    try:
        await channel.ensure_ready()
        outcome = await channel.runner.process(data)
    except Exception as exc:
        # 503 when the database or the Bot API is away (a restart): Telegram redelivers later and
        # nothing was committed. Anything else is a bug, answered 500 (Telegram retries that too).
        if transient(exc):
            log.warning("webhook update not committed (%s); Telegram redelivers it", type(exc).__name__)
            return JSONResponse({"ok": False}, status_code=503, headers={"Retry-After": "1"})
        log.exception("webhook update not committed; Telegram will deliver it again")
        return JSONResponse({"ok": False}, status_code=500)
    return JSONResponse({"ok": True, "outcome": outcome})
