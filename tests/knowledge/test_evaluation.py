"""Evaluation metrics and the report behind ``butler kb eval``."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from knowledge.evaluation import (
    EvalReport,
    auroc,
    coverage_at_precision,
    evaluate,
    format_report,
    rank_average,
    typo_variants,
)
from knowledge.matcher import KbEntry, KnowledgeIndex, MatcherConfig


def _brute_auroc(pos: list[float], neg: list[float]) -> float:
    total = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return total / (len(pos) * len(neg))


def test_rank_average_handles_ties() -> None:
    assert rank_average(np.array([3.0, 1.0, 2.0, 2.0, 5.0])).tolist() == [4.0, 1.0, 2.5, 2.5, 5.0]


def test_auroc_matches_pairwise_definition() -> None:
    rng = random.Random(3)
    for _ in range(20):
        pos = [round(rng.random(), 1) for _ in range(rng.randint(1, 15))]
        neg = [round(rng.random(), 1) for _ in range(rng.randint(1, 15))]
        assert auroc(pos, neg) == pytest.approx(_brute_auroc(pos, neg))
    assert auroc([1.0, 0.9], [0.1]) == 1.0
    assert auroc([0.1], [0.9, 1.0]) == 0.0
    assert np.isnan(auroc([], [0.3]))


def test_coverage_at_precision() -> None:
    conf = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    correct = np.array([True, True, False, True, True])
    # Answering the top 2 is 100% precise; top 4 is 75%; all 5 is 80%.
    assert coverage_at_precision(conf, correct, n_answerable=4, target=0.95) == (0.5, 0.8)
    assert coverage_at_precision(conf, correct, n_answerable=4, target=0.8) == (1.0, 0.5)
    assert coverage_at_precision(conf, np.zeros(5, dtype=bool), 4, 0.95) == (0.0, 1.0)


def test_typo_variants_make_small_edits() -> None:
    rng = random.Random(1)
    for text in ["How often should I service my car?", "多久做一次保养呢，我的车开了一万公里"]:
        for variant in typo_variants(text, 4, rng):
            assert variant != text or len(set(text)) < 5
            assert abs(len(variant) - len(text)) <= 2


ENTRIES = [
    KbEntry(
        "tires.pressure/en",
        "tires.pressure",
        "service",
        "en",
        ("What tyre pressure should I use?",),
        "230 kPa",
    ),
    KbEntry("tires.pressure/zh-CN", "tires.pressure", "service", "zh-CN", ("胎压应该打多少？",), "230 kPa"),
    KbEntry(
        "sales.test_drive/en", "sales.test_drive", "sales", "en", ("How do I book a test drive?",), "App"
    ),
]


def test_evaluate_and_format() -> None:
    index = KnowledgeIndex.build(ENTRIES, config=MatcherConfig(semantic="off"))
    queries = [
        {"text": "recommended tyre pressure?", "expect_topic": "tires.pressure"},
        {"text": "胎压多少合适", "expect_topic": "tires.pressure"},
        {"text": "book a test drive", "expect_topic": "sales.test_drive/en"},  # an entry key works too
        {"text": "what is the weather tomorrow", "expect_topic": None},
        {"text": "play some music", "expect_topic": None, "locale": "en"},
    ]
    report = evaluate(index, queries)
    assert isinstance(report, EvalReport)
    assert (report.n_queries, report.n_answerable, report.n_handoff) == (5, 3, 2)
    assert report.top1_accuracy == 1.0
    assert report.auroc == 1.0
    assert report.handoff_recall_at_threshold == 1.0
    assert 0.0 <= report.coverage_at_threshold <= 1.0
    assert report.latency_p99_ms >= report.latency_p50_ms > 0
    assert set(report.by_locale) == {"en", "zh-CN"}
    data = json.loads(json.dumps(report.to_dict()))
    assert data["top1_accuracy"] == 1.0 and data["mode"] == "lexical"
    text = format_report(report)
    assert "top-1 accuracy" in text and "AUROC" in text and "coverage at 95% precision" in text


def test_report_without_handoff_queries_has_no_auroc() -> None:
    index = KnowledgeIndex.build(ENTRIES, config=MatcherConfig(semantic="off"))
    report = evaluate(index, [{"text": "book a test drive", "expect_topic": "sales.test_drive"}])
    assert np.isnan(report.auroc)
    assert report.to_dict()["auroc"] is None
    assert "n/a" in format_report(report)
