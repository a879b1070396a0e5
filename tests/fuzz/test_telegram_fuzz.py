"""Malformed Telegram updates posted to the real webhook route: no 5xx (but a deliberate 503),
nothing half-stored, and the process keeps serving (a good update afterwards is stored once).

Updates have missing fields, wrong types, unknown kinds, huge texts, media the bot does not support,
ids past 64 bits, and bodies that are not JSON at all.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import httpx
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.fuzz.telegram_server import SECRET, TelegramFuzzServer, tg_server  # noqa: F401 - fixture

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
HEADERS = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "content-type": "application/json"}
_ids = itertools.count(900_000_001)
FRESH_ID = st.builds(lambda: next(_ids))  # a new update each time, so it is really handled
HUGE = st.sampled_from([2**63, 2**63 - 1, -(2**63) - 1, 10**40, 0, -1])
TEXT = st.one_of(
    st.text(max_size=200),
    st.sampled_from(
        ["", " ", "\x00", "\ud800", "/start", "/start x" * 50, "y" * 5000, "🚗" * 3000, "转人工"]
    ),
)
LEAF = st.one_of(st.none(), st.booleans(), st.integers(), HUGE, st.floats(), TEXT)
ANY = st.recursive(
    LEAF,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=6,
)
USER_ID = st.one_of(st.integers(710_000, 710_050), HUGE, TEXT, st.none())


def mostly(
    good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any], tenths: int = 8
) -> st.SearchStrategy[Any]:
    """`good` in `tenths` of ten draws, else `bad` (one_of would merge repeated branches)."""
    return st.integers(0, 9).flatmap(lambda n: good if n < tenths else bad)


def maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the value; sometimes a value of the wrong type, or nothing (the key is then dropped)."""
    return mostly(value, st.one_of(ANY, st.just(KeyError)))


def sound(user_id: int) -> dict[str, Any]:
    """A well-formed private chat and sender, so the rest of the update gets handled."""
    user = {"id": user_id, "is_bot": False, "first_name": "Fuzz", "language_code": "en"}
    return {"chat": {"id": user_id, "type": "private", "first_name": "Fuzz"}, "from": user}


USER = st.fixed_dictionaries(
    {"id": maybe(USER_ID), "is_bot": maybe(st.booleans()), "first_name": maybe(TEXT)},
    optional={"language_code": maybe(st.sampled_from(["en", "zh-hans", "xx", ""]))},
)
CHAT = st.fixed_dictionaries(
    {
        "id": maybe(USER_ID),
        "type": maybe(st.sampled_from(["private", "group", "supergroup", "channel", "x"])),
    },
    optional={"is_forum": st.booleans(), "title": TEXT},
)
MEDIA = st.sampled_from(
    [
        {"sticker": {"file_id": "s1", "file_unique_id": "u1", "type": "regular", "width": 1, "height": 1}},
        {"photo": [{"file_id": "nope", "file_unique_id": "u2", "width": 9, "height": 9}]},
        {"voice": {"file_id": "nope", "file_unique_id": "u3", "duration": 1}},
        {"video_note": {"file_id": "v", "file_unique_id": "u4", "length": 1, "duration": 1}},
        {"document": {"file_id": "d", "file_unique_id": "u5", "file_size": 10**12}},
        {"location": {"latitude": 999, "longitude": "east"}},
        {"contact": {"phone_number": "not a phone", "first_name": "X", "user_id": 1}},
        {"poll": {"id": "p", "question": "?", "options": []}},
        {"dice": {"emoji": "🎲", "value": 7}},
        {"game": {}},
        {"text": "x", "entities": [{"type": "bold", "offset": -5, "length": 10**9}]},
    ]
)
MESSAGE = st.builds(
    lambda base, media, extra: {**base, **media, **extra},
    st.fixed_dictionaries(
        {
            "message_id": maybe(st.one_of(st.integers(1, 10**6), HUGE)),
            "date": maybe(st.integers(0, 2**31)),
            "chat": maybe(CHAT),
            "from": maybe(USER),
            "text": maybe(TEXT),
        }
    ),
    st.one_of(st.just({}), MEDIA),
    st.dictionaries(
        st.sampled_from(["reply_to_message", "message_thread_id", "caption", "via_bot"]), ANY, max_size=2
    ),
)
CALLBACK = st.fixed_dictionaries(
    {
        "id": maybe(TEXT),
        "from": maybe(USER),
        "chat_instance": TEXT,
        "data": maybe(TEXT),
        "message": maybe(MESSAGE),
    }
)
# Well-formed envelope (chat, sender, ids, date), fuzzed content: these get past parsing and are handled.
SOUND_MESSAGE = st.builds(
    lambda user_id, message_id, content: {
        **sound(user_id),
        "message_id": message_id,
        "date": 1_790_000_000,
        **content,
    },
    st.integers(710_000, 710_050),
    st.integers(1, 10**9),
    mostly(st.fixed_dictionaries({"text": TEXT}), MEDIA, 6),
)
KIND_BODY = mostly(
    st.tuples(st.sampled_from(["message", "edited_message"]), SOUND_MESSAGE),
    st.one_of(
        st.tuples(st.sampled_from(["message", "edited_message", "channel_post"]), MESSAGE),
        st.tuples(st.just("callback_query"), CALLBACK),
        st.tuples(st.sampled_from(["my_chat_member", "chat_member"]), st.dictionaries(TEXT, ANY, max_size=3)),
        st.tuples(
            st.sampled_from(["inline_query", "poll", "chat_join_request", "message_reaction", "brand_new"]),
            ANY,
        ),
    ),
    6,
)
UPDATE = st.builds(
    lambda uid, kind_body, extra: _drop({"update_id": uid, kind_body[0]: kind_body[1], **extra}),
    mostly(FRESH_ID, st.one_of(HUGE, TEXT, st.floats(), st.just(KeyError))),
    KIND_BODY,
    mostly(
        st.just({}),
        st.dictionaries(st.sampled_from(["message", "callback_query", "unknown"]), ANY, max_size=1),
    ),
)
BODY = mostly(UPDATE, ANY, 9)


def _drop(value: Any) -> Any:
    """Remove keys whose value is the KeyError marker, recursively."""
    if isinstance(value, dict):
        return {k: _drop(v) for k, v in value.items() if v is not KeyError}
    return value


def _encode(body: Any, mode: str) -> bytes:
    text = json.dumps(body, ensure_ascii=True)
    if mode == "truncated":
        return text.encode()[: max(0, len(text) // 2)]
    if mode == "raw":
        return json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")  # maybe invalid UTF-8
    return text.encode()


@FUZZ
@given(body=BODY, mode=st.sampled_from(["json", "json", "json", "json", "truncated", "raw"]))
def test_malformed_updates_never_fail_or_half_store(
    tg_server: TelegramFuzzServer,  # noqa: F811 - the fixture, by name
    body: Any,
    mode: str,
) -> None:
    before = tg_server.counts()
    r = httpx.post(
        tg_server.url + "/telegram/webhook", content=_encode(body, mode), headers=HEADERS, timeout=30
    )
    assert r.status_code < 500 or r.status_code == 503, f"{r.status_code} {r.text[:300]} for {body!r:.500}"
    after = tg_server.counts()
    outcome = r.json().get("outcome") if r.status_code == 200 else None
    event(f"{r.status_code} {outcome}")
    if outcome != "processed":  # refused, ignored, duplicate, 4xx, 503: nothing of the update kept
        assert after == before, f"{r.status_code} {outcome} changed {before} -> {after} for {body!r:.500}"
    else:
        assert after["messages"] - before["messages"] <= 4, (before, after)  # one message and replies
    assert not any(tg_server.half_stored().values()), tg_server.half_stored()


def test_good_update_after_the_fuzz_is_stored_once(tg_server: TelegramFuzzServer) -> None:  # noqa: F811
    update = {
        "update_id": next(_ids),
        "message": {
            "message_id": 424242,
            "date": 1_790_000_000,
            "chat": {"id": 719_999, "type": "private", "first_name": "After"},
            "from": {"id": 719_999, "is_bot": False, "first_name": "After", "language_code": "en"},
            "text": "My car makes a strange noise after the fuzz",
        },
    }
    before = tg_server.counts()
    for _ in range(2):  # the redelivery is a no-op
        r = httpx.post(tg_server.url + "/telegram/webhook", json=update, headers=HEADERS, timeout=30)
        assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "duplicate"
    after = tg_server.counts()
    assert after["inbound_receipts"] == before["inbound_receipts"] + 1
    assert after["customers"] == before["customers"] + 1
    assert httpx.get(tg_server.url + "/healthz", timeout=10).status_code == 200
    assert not any(tg_server.half_stored().values())
