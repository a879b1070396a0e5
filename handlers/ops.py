"""Operations endpoints (/readyz, /metrics) and the request middleware (ids, access log, metrics)."""

from __future__ import annotations

import json
import logging
import math
import re
import time
import uuid
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot import metrics
from bot.context import CASE_ID, RECEIVED_AT, REQUEST_ID
from bot.health import readiness
from handlers.common import runtime

router = APIRouter(tags=["ops"])
access_log = logging.getLogger("butler.access")
error_log = logging.getLogger("butler.http")
REQUEST_ID_HEADER = "x-request-id"
# A caller's id is kept when it looks like an id (no spaces, quotes or control characters).
_VALID_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")


def install_ops(app: FastAPI) -> None:
    """Add the ops endpoints, the request middleware (outermost) and safe 422 answers to an app."""
    app.add_middleware(RequestContextMiddleware)
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
    app.include_router(router)


class AsciiJSONResponse(JSONResponse):
    """JSON with non-ASCII escaped: lone surrogates a client sent can be echoed back safely."""

    def render(self, content: Any) -> bytes:
        """Serialise as ASCII JSON."""
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()


async def validation_error(request: Request, exc: RequestValidationError) -> Response:
    """FastAPI's 422 body, made safe to echo whatever the client sent.

    FastAPI's own handler answers 500 when the echoed input is a non-UTF-8 body (sent with another
    content type), a lone surrogate or a non-finite number such as 1e999.
    """
    return AsciiJSONResponse({"detail": _echoable(exc.errors())}, status_code=422)


def _echoable(value: Any, depth: int = 0) -> Any:
    """A JSON-safe copy: bytes decoded leniently, inf/nan as strings, unknown objects as str."""
    if depth > 32:
        return "..."
    if isinstance(value, bytes | bytearray):
        return bytes(value[:4096]).decode("utf-8", "replace")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        return {str(k): _echoable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_echoable(v, depth + 1) for v in value]
    return str(value)


@router.get("/readyz")
async def readyz(request: Request, redis: str = "required") -> JSONResponse:
    """Ready to serve: database reachable, migrations at head, Redis reachable when configured.

    `?redis=optional` reports Redis without failing on it (the system keeps taking messages
    without Redis; only live pushes pause).
    """
    ready, details = await readiness(runtime(request))
    if not ready and redis == "optional" and details.get("redis") == "unreachable":
        ready = details.get("database") == "ok" and details.get("migrations") == "head"
        details["status"] = "ok" if ready else "error"
    return JSONResponse(details, status_code=200 if ready else 503)


@router.get("/metrics", include_in_schema=False)
async def metrics_endpoint(request: Request) -> Response:
    """Prometheus exposition (all web processes of this host in multiprocess mode)."""
    body, content_type = await metrics.exposition(runtime(request))
    return Response(body, media_type=content_type)


def route_label(scope: Scope) -> str:
    """The route template (never the raw path: it holds ids and, in query strings, session ids)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    raw = scope.get("path", "")
    if raw.startswith("/static/"):
        return "/static/" + raw.split("/")[2] if raw.count("/") > 2 else "/static"
    return "<unmatched>"


class RequestContextMiddleware:
    """X-Request-ID in and out, request/case ids for logs, access log, HTTP metrics, 500s counted.

    An exception no handler took is logged (redacted, with the request id), counted per route and
    answered with a JSON 500 carrying the request id, so the process keeps serving.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Wrap one HTTP request."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _incoming_id(scope) or uuid.uuid4().hex
        tokens = (REQUEST_ID.set(request_id), CASE_ID.set(None), RECEIVED_AT.set(started))
        status = 500
        response_started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            route = route_label(scope)
            metrics.HTTP_ERRORS.labels(route, type(exc).__name__).inc()
            error_log.exception("unhandled %s on %s %s", type(exc).__name__, scope.get("method"), route)
            if response_started:
                raise
            status = 500
            await _send_500(send, request_id)
        finally:
            route = route_label(scope)
            elapsed = time.perf_counter() - started
            method = scope.get("method", "?")
            metrics.HTTP_REQUESTS.labels(method, route, str(status)).inc()
            metrics.HTTP_LATENCY.labels(method, route).observe(elapsed)
            case_id = CASE_ID.get()
            if case_id is None:
                case_id = _case_from_path(scope)
                if case_id is not None:
                    CASE_ID.set(case_id)
            access_log.info(
                "%s %s %s %.1fms",
                method,
                route,
                status,
                elapsed * 1000,
                extra={
                    "http_method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": elapsed * 1000,
                },
            )
            REQUEST_ID.reset(tokens[0])
            CASE_ID.reset(tokens[1])
            RECEIVED_AT.reset(tokens[2])


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            try:
                candidate = value.decode("ascii")
            except UnicodeDecodeError:
                return None
            return candidate if _VALID_ID.fullmatch(candidate) else None
    return None


def _case_from_path(scope: Scope) -> int | None:
    value: Any = (scope.get("path_params") or {}).get("case_id")
    return value if isinstance(value, int) else None


async def _send_500(send: Send, request_id: str) -> None:
    body = b'{"error":"internal","detail":"internal error","request_id":"' + request_id.encode() + b'"}'
    await send(
        {
            "type": "http.response.start",
            "status": 500,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-request-id", request_id.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
