"""Helpers shared by the HTTP adapters: the runtime, error answers, server-sent events."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse

from bot.errors import DomainError
from bot.runtime import Runtime


def runtime(request: Request) -> Runtime:
    """The process runtime the app factory stored on the app."""
    rt: Runtime = request.app.state.rt
    return rt


def error_response(exc: DomainError) -> JSONResponse:
    """A domain refusal as a JSON 4xx."""
    return JSONResponse({"error": exc.code, "detail": exc.message}, status_code=exc.status)


async def _events(request: Request, rt: Runtime, topics: list[str]) -> AsyncIterator[str]:
    stream = rt.bus.subscribe(topics)
    # Subscribe before the first byte: the browser refreshes when the stream opens, and an event
    # published between that refresh and a later subscription would be missed.
    pending: asyncio.Task[dict[str, Any]] | None = asyncio.ensure_future(anext(stream))
    try:
        yield "retry: 2000\n\n"
        while not await request.is_disconnected():
            if pending is None:
                pending = asyncio.ensure_future(anext(stream))
            done, _ = await asyncio.wait({pending}, timeout=15.0)
            if not done:
                yield ": keepalive\n\n"
                continue
            event = pending.result()
            pending = None
            if event.get("type") == "keepalive":
                continue
            yield f"event: {event.get('type', 'message')}\ndata: {json.dumps(event, default=str)}\n\n"
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        with contextlib.suppress(Exception):
            await stream.aclose()  # type: ignore[attr-defined]


def sse(request: Request, rt: Runtime, topics: list[str]) -> StreamingResponse:
    """A server-sent-events stream of the bus topics until the client goes away."""
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(_events(request, rt, topics), media_type="text/event-stream", headers=headers)
