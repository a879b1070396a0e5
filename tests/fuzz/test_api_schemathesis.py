"""schemathesis against the REST API's own OpenAPI document: no operation answers with a 5xx.

The document is read from the running server and every REST operation is driven over HTTP with
generated (valid and invalid) requests. Staff endpoints get a manager's bearer token and web chat
endpoints a real session, so cases reach the handlers instead of bouncing off authentication.
Both of schemathesis' generation modes run: positive (requests the schema allows) and negative
(requests it forbids, which must come back as 4xx).
(Operations are iterated by hand: schemathesis' lazy pytest fixture loader does not run under
this pytest version.)
"""

from __future__ import annotations

from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from tests.fuzz.conftest import FuzzServer

EXAMPLES = 20  # per operation, valid and invalid requests mixed


def _auth_headers(server: FuzzServer) -> dict[str, str]:
    session = httpx.post(server.url + "/api/v1/webchat/sessions", json={"locale": "en"}, timeout=10)
    session.raise_for_status()
    return {**server.token("manager1"), "X-Webchat-Session": session.json()["session_id"]}


def test_no_operation_answers_5xx(fuzz_server: FuzzServer) -> None:
    headers = _auth_headers(fuzz_server)
    schema = (
        schemathesis.openapi.from_url(fuzz_server.url + "/openapi.json")
        .include(path_regex="^/api/v1/")
        .exclude(path="/api/v1/webchat/events")  # a never-ending stream
    )
    failures: list[str] = []
    tested = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        tested += 1

        @settings(
            max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        @given(
            case=st.one_of(
                operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)
            )
        )
        def check(case: Any) -> None:
            response = case.call(
                base_url=fuzz_server.url, headers={**headers, **(case.headers or {})}, timeout=30
            )
            case.validate_response(response, checks=[not_a_server_error])

        try:
            check()
        except Exception as exc:  # keep going: report every operation that fails
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    assert tested >= 10, "the REST API's operations were not found in the OpenAPI document"
    assert failures == [], "\n\n".join(failures)
    assert fuzz_server.alive()
    r = httpx.get(fuzz_server.url + "/api/v1/me", headers=headers, timeout=10)
    assert r.status_code == 200 and r.json()["role"] == "manager"
