"""Acceptance on the demo knowledge base: every phrasing, verbatim and with small typos, finds its topic."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from knowledge.evaluation import evaluate, typo_variants
from knowledge.kb_files import load_entries
from knowledge.matcher import KbEntry, KnowledgeIndex, MatcherConfig

DEMO_KB = Path(__file__).resolve().parents[2] / "knowledge" / "data" / "demo_kb.yaml"


@pytest.fixture(scope="module")
def entries() -> list[KbEntry]:
    if not DEMO_KB.exists():
        pytest.skip("knowledge/data/demo_kb.yaml not written yet")
    return load_entries(DEMO_KB)


@pytest.fixture(scope="module")
def index(entries: list[KbEntry]) -> KnowledgeIndex:
    return KnowledgeIndex.build(entries, config=MatcherConfig(semantic="off"))


def _misses(index: KnowledgeIndex, entries: list[KbEntry], typos: int) -> list[tuple[str, str, str | None]]:
    rng = random.Random(20261122)
    misses: list[tuple[str, str, str | None]] = []
    for e in entries:
        for q in e.questions:
            for text in [q] if typos == 0 else typo_variants(q, typos, rng):
                top = index.search(text, locale=e.locale, k=1)
                got = top[0].entry.key if top else None
                if got != e.key:
                    misses.append((text, e.key, got))
    return misses


def test_both_locales_present(entries: list[KbEntry]) -> None:
    assert {e.locale for e in entries} == {"zh-CN", "en"}
    assert all(len(e.questions) >= 3 for e in entries)


def test_every_phrasing_verbatim_finds_its_own_entry(index: KnowledgeIndex, entries: list[KbEntry]) -> None:
    assert _misses(index, entries, typos=0) == []


def test_every_phrasing_with_typos_finds_its_own_entry(index: KnowledgeIndex, entries: list[KbEntry]) -> None:
    # Two variants per phrasing: one with one edit, one with two (delete / swap / replace / insert).
    assert _misses(index, entries, typos=2) == []


def test_verbatim_phrasings_are_answered_not_handed_off(
    index: KnowledgeIndex, entries: list[KbEntry]
) -> None:
    report = evaluate(
        index,
        [{"text": q, "expect_topic": e.topic, "locale": e.locale} for e in entries for q in e.questions],
    )
    assert report.top1_accuracy == 1.0
    assert report.coverage_at_threshold >= 0.9, report.misses[:5]


def test_off_topic_questions_are_handed_off(index: KnowledgeIndex) -> None:
    for text in [
        "今天天气怎么样",
        "帮我订一张去上海的机票",
        "What's the capital of France?",
        "Play some jazz music",
    ]:
        assert not index.decide(text).answer, text
