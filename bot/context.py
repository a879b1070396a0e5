"""Per-request (or per-task) context for logs and metrics: request id, case id, receipt time."""

from __future__ import annotations

from contextvars import ContextVar

REQUEST_ID: ContextVar[str | None] = ContextVar("butler_request_id", default=None)
CASE_ID: ContextVar[int | None] = ContextVar("butler_case_id", default=None)
# time.perf_counter() when the current request arrived; inbound latency counts from here.
RECEIVED_AT: ContextVar[float | None] = ContextVar("butler_received_at", default=None)


def bind_case(case_id: int | None) -> None:
    """Tag the rest of this request's (or task's) log lines with a case id."""
    if case_id is not None:
        CASE_ID.set(case_id)
