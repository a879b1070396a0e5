"""Validate the demo knowledge base data file: topics, categories, locales, phrasings, actions."""

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
KB_PATH = REPO_ROOT / "knowledge" / "data" / "demo_kb.yaml"

# The 41 stable topic keys and their categories (copied from the shared kb-topics list).
EXPECTED_TOPICS: dict[str, str] = {
    "maintenance.interval": "service",
    "maintenance.booking": "service",
    "maintenance.cost": "service",
    "maintenance.oil_type": "service",
    "warranty.basic": "service",
    "warranty.battery": "service",
    "warranty.claim": "service",
    "roadside.assistance": "service",
    "repair.onsite": "service",
    "parts.delivery": "service",
    "parts.original": "service",
    "tires.pressure": "service",
    "tires.replacement": "service",
    "warning_light.engine": "service",
    "battery.12v_dead": "service",
    "recall.check": "factory",
    "software.ota": "factory",
    "app.binding": "service",
    "charging.home": "service",
    "charging.public": "service",
    "ev.range_winter": "factory",
    "insurance.renewal": "sales",
    "insurance.claim_accident": "service",
    "documents.registration": "sales",
    "sales.price": "sales",
    "sales.test_drive": "sales",
    "sales.order_online": "sales",
    "sales.deposit_refund": "sales",
    "sales.delivery_time": "sales",
    "sales.home_delivery": "sales",
    "finance.loan": "sales",
    "finance.interest": "sales",
    "tradein.evaluation": "sales",
    "usedcar.return": "sales",
    "usedcar.inspection": "sales",
    "butler.team": "general",
    "butler.hours": "general",
    "butler.human": "general",
    "membership.points": "general",
    "complaint.process": "complaint",
    "privacy.data": "general",
}

LOCALES = ("zh-CN", "en")
ALLOWED_ACTIONS = {"book_service", "book_test_drive", "onsite_repair", "parts_delivery", "talk_to_person"}
ALLOWED_KEYS = {"topic", "category", "actions", *LOCALES}
MIN_QUESTIONS = 3


def _normalise(text: str) -> str:
    """Return question text folded for duplicate detection."""
    return " ".join(text.split()).casefold().rstrip("?？。.!！ ")


@pytest.fixture(scope="module")
def entries() -> list[dict[str, Any]]:
    """Load the demo knowledge base YAML once per module."""
    data = yaml.safe_load(KB_PATH.read_text(encoding="utf-8"))
    assert isinstance(data, list), "demo_kb.yaml must be a YAML list of topic entries"
    assert all(isinstance(item, dict) for item in data)
    return data


def test_expected_topic_list_has_41_keys() -> None:
    assert len(EXPECTED_TOPICS) == 41


def test_every_topic_present_exactly_once(entries: list[dict[str, Any]]) -> None:
    counts = Counter(entry.get("topic") for entry in entries)
    duplicates = sorted(str(topic) for topic, n in counts.items() if n > 1)
    missing = sorted(set(EXPECTED_TOPICS) - set(counts))
    extra = sorted(str(topic) for topic in set(counts) - set(EXPECTED_TOPICS))
    assert not duplicates, f"duplicate topics: {duplicates}"
    assert not missing, f"missing topics: {missing}"
    assert not extra, f"unexpected topics: {extra}"
    assert len(entries) == len(EXPECTED_TOPICS)


def test_categories_match(entries: list[dict[str, Any]]) -> None:
    wrong = {
        entry["topic"]: entry.get("category")
        for entry in entries
        if entry.get("category") != EXPECTED_TOPICS.get(entry["topic"])
    }
    assert not wrong, f"wrong categories: {wrong}"


def test_no_unknown_fields(entries: list[dict[str, Any]]) -> None:
    for entry in entries:
        unknown = set(entry) - ALLOWED_KEYS
        assert not unknown, f"{entry['topic']}: unknown fields {sorted(unknown)}"


def test_both_locales_have_questions_and_answer(entries: list[dict[str, Any]]) -> None:
    for entry in entries:
        for locale in LOCALES:
            block = entry.get(locale)
            assert isinstance(block, dict), f"{entry['topic']}: missing locale {locale}"
            questions = block.get("questions")
            assert isinstance(questions, list), f"{entry['topic']}/{locale}: questions must be a list"
            assert all(isinstance(q, str) and q.strip() for q in questions), (
                f"{entry['topic']}/{locale}: empty or non-string question"
            )
            distinct = {_normalise(q) for q in questions}
            assert len(distinct) == len(questions), f"{entry['topic']}/{locale}: repeated question"
            assert len(distinct) >= MIN_QUESTIONS, f"{entry['topic']}/{locale}: fewer than {MIN_QUESTIONS}"
            answer = block.get("answer")
            assert isinstance(answer, str) and answer.strip(), f"{entry['topic']}/{locale}: empty answer"


def test_no_question_shared_between_topics(entries: list[dict[str, Any]]) -> None:
    owner: dict[str, str] = {}
    clashes: list[str] = []
    for entry in entries:
        for locale in LOCALES:
            for question in entry[locale]["questions"]:
                key = _normalise(question)
                first = owner.setdefault(key, entry["topic"])
                if first != entry["topic"]:
                    clashes.append(f"{question!r} in {first} and {entry['topic']}")
    assert not clashes, "questions shared across topics: " + "; ".join(clashes)


def test_actions_are_allowed(entries: list[dict[str, Any]]) -> None:
    for entry in entries:
        actions = entry.get("actions", [])
        assert isinstance(actions, list), f"{entry['topic']}: actions must be a list"
        assert len(actions) == len(set(actions)), f"{entry['topic']}: repeated action"
        unknown = set(actions) - ALLOWED_ACTIONS
        assert not unknown, f"{entry['topic']}: unknown actions {sorted(unknown)}"
