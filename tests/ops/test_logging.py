"""Structured logs: JSON lines with request and case ids, and no personal data by default."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import httpx
import pytest

from bot.app import create_app
from bot.context import CASE_ID, REQUEST_ID
from bot.logs import ContextFilter, JsonFormatter, configure_logging, make_handler, redact
from bot.settings import Settings
from tests.ops.conftest import serve_app

PHONE = "+86 138-0013-8000"
TEXT = "the rear left brake squeals when it rains"


@pytest.mark.parametrize(
    "raw",
    [
        "+86 138 0013 8000",
        "+8613800138000",
        "13800138000",
        "138-0013-8000",
        "(555) 123-4567",
        "+1 555 123 4567",
    ],
)
def test_phone_numbers_are_redacted(raw: str) -> None:
    assert raw not in redact(f"call me at {raw} please")
    assert "[redacted]" in redact(f"call me at {raw} please")


@pytest.mark.parametrize(
    "kept",
    [
        "chat -1001234567890",
        "user 7012345678",
        "row 12345",
        "2026-11-02 09:00:00",
        "took 12.5 ms",
        "v0.163.2",
    ],
)
def test_ids_times_and_numbers_are_kept(kept: str) -> None:
    assert redact(kept) == kept


def test_secrets_go_even_when_personal_data_is_allowed() -> None:
    url = "POST https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/sendMessage"
    assert "AAHdq" not in redact(url, personal_data=True)
    assert "abcdefghijklmnop" not in redact("Authorization: Bearer abcdefghijklmnopqrstu", personal_data=True)
    assert redact("mail me: li.na@example.com") == "mail me: [redacted]"
    assert redact("mail me: li.na@example.com", personal_data=True) == "mail me: li.na@example.com"


def _record(msg: str, *args: object, exc: BaseException | None = None, **extra: object) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc else None
    record = logging.LogRecord("butler.test", logging.WARNING, __file__, 1, msg, args, exc_info)
    record.__dict__.update(extra)
    return record


def test_json_lines_carry_request_and_case_ids_and_redact_everything() -> None:
    tokens = REQUEST_ID.set("req-1"), CASE_ID.set(42)
    try:
        try:
            raise ValueError(f"bad input {PHONE}")
        except ValueError as exc:
            record = _record("customer %s wrote", PHONE, exc=exc, body=TEXT, http_method="GET")
        assert ContextFilter().filter(record)
    finally:
        REQUEST_ID.reset(tokens[0])
        CASE_ID.reset(tokens[1])
    line = JsonFormatter().format(record)
    out = json.loads(line)
    assert out["request_id"] == "req-1" and out["case_id"] == 42
    assert out["msg"] == "customer [redacted] wrote" and out["level"] == "WARNING"
    assert out["body"] == "[redacted]" and out["http_method"] == "GET"
    assert "ValueError" in out["exc"] and PHONE not in line and TEXT not in line


def test_configure_logging_installs_one_redacting_handler() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    try:
        configure_logging(Settings(log_format="json", log_level="DEBUG"), stream=stream)
        logging.getLogger("butler.test").info("order for %s", PHONE)
        logging.getLogger("sqlalchemy.engine").info("INSERT ... %s", TEXT)  # quiet below WARNING
    finally:
        root.handlers[:], root.level = saved
    lines = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert [x["msg"] for x in lines] == ["order for [redacted]"]


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Everything logged at DEBUG by any logger (SQLAlchemy's statement log included) as JSON lines."""
    stream = io.StringIO()
    handler = make_handler(Settings(log_format="json"), stream)
    root, sql = logging.getLogger(), logging.getLogger("sqlalchemy.engine")
    saved = root.level, sql.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    sql.setLevel(logging.INFO)  # statements and their parameters, were they not hidden
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        sql.setLevel(saved[1])


async def test_a_customer_message_leaves_no_personal_data_in_logs(
    settings: Settings, captured: io.StringIO
) -> None:
    async with serve_app(create_app(settings)) as url, httpx.AsyncClient(base_url=url, timeout=30) as c:
        r = await c.post("/api/v1/webchat/sessions", json={"display_name": "Li Na", "locale": "en"})
        chat = {"X-Webchat-Session": r.json()["session_id"], "X-Request-ID": "req-pii"}
        r = await c.post(
            "/api/v1/webchat/messages",
            json={"text": f"{TEXT}. Please call me back on {PHONE}", "client_message_id": "pii-1"},
            headers=chat,
        )
        assert r.status_code == 201 and r.headers["x-request-id"] == "req-pii"
        case_id = r.json()["case_id"]
        # A refused message (too long) carries the text into the error path too.
        r = await c.post("/api/v1/webchat/messages", json={"text": (TEXT + PHONE) * 200}, headers=chat)
        assert r.status_code in (400, 422)
    logs = captured.getvalue()
    assert logs, "nothing was logged at DEBUG"
    assert "INSERT INTO" in logs  # the statement log was on...
    assert TEXT not in logs and "brake squeals" not in logs  # ...but no message text
    assert PHONE not in logs and "13800138000" not in logs and "0013-8000" not in logs
    assert "Li Na" not in logs
    lines = [json.loads(x) for x in logs.splitlines()]
    access = [x for x in lines if x["logger"] == "butler.access" and x.get("request_id") == "req-pii"]
    assert {x["route"] for x in access} == {"/api/v1/webchat/messages"}
    assert access[0]["case_id"] == case_id


async def test_request_ids_are_kept_generated_or_replaced(settings: Settings) -> None:
    async with serve_app(create_app(settings)) as url, httpx.AsyncClient(base_url=url, timeout=30) as c:
        assert (await c.get("/healthz", headers={"X-Request-ID": "abc.123-x"})).headers[
            "x-request-id"
        ] == "abc.123-x"
        generated = (await c.get("/healthz")).headers["x-request-id"]
        assert len(generated) == 32
        replaced = (await c.get("/healthz", headers={"X-Request-ID": "bad id\t<script>"})).headers[
            "x-request-id"
        ]
        assert replaced != "bad id\t<script>" and len(replaced) == 32
