"""Quality of a knowledge index on labelled queries (what ``butler kb eval`` prints).

A query is ``{"text": ..., "expect_topic": "<topic key>" | null, "locale"?: "zh-CN" | "en"}``; null
means the bot must hand the query to a person. ``expect_topic`` may also name an entry key
(``"maintenance.interval/en"``). Metrics:

- top-1 accuracy: answerable queries whose best match is the expected topic (threshold ignored);
- AUROC of answer vs hand-off: how well the top match's confidence separates answerable queries
  from queries that must be handed off (0.5 = chance, 1.0 = a perfect threshold exists);
- precision / coverage at the configured threshold: of the queries the bot answers, the share
  answered with the right topic; of the answerable queries, the share answered with the right topic;
- coverage at 95% precision: the best coverage any single threshold reaches with precision >= 0.95;
- latency p50 / p99 of one ``decide`` call, in milliseconds.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from knowledge.matcher import KnowledgeIndex


@dataclass(frozen=True)
class QueryResult:
    text: str
    expect_topic: str | None
    locale: str
    top_topic: str | None
    top_key: str | None
    confidence: float
    answered: bool
    latency_ms: float

    @property
    def correct_top(self) -> bool:
        return self.expect_topic is not None and self.expect_topic in (self.top_topic, self.top_key)


@dataclass(frozen=True)
class EvalReport:
    n_queries: int
    n_answerable: int
    n_handoff: int
    top1_accuracy: float
    auroc: float
    thresholds: dict[str, float]
    precision_at_threshold: float
    coverage_at_threshold: float
    handoff_recall_at_threshold: float  # share of must-hand-off queries that were handed off
    coverage_at_95_precision: float
    threshold_at_95_precision: float
    latency_p50_ms: float
    latency_p99_ms: float
    mode: str
    by_locale: dict[str, dict[str, float]] = field(default_factory=dict)
    misses: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON; undefined metrics (nan) become None."""
        return _no_nan(asdict(self))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2)


def _no_nan(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_nan(v) for v in value]
    return value


def rank_average(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank (numpy only)."""
    values = np.asarray(values, dtype=np.float64)
    sorted_vals = np.sort(values)
    left = np.searchsorted(sorted_vals, values, side="left")
    right = np.searchsorted(sorted_vals, values, side="right")
    return np.asarray((left + 1 + right) / 2.0, dtype=np.float64)


def auroc(positive_scores: Iterable[float], negative_scores: Iterable[float]) -> float:
    """Area under the ROC curve (Mann-Whitney U); nan when a class is empty."""
    pos = np.asarray(list(positive_scores), dtype=np.float64)
    neg = np.asarray(list(negative_scores), dtype=np.float64)
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    ranks = rank_average(np.concatenate([pos, neg]))
    u = ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2.0
    return float(u / (pos.size * neg.size))


def coverage_at_precision(
    confidence: np.ndarray, correct: np.ndarray, n_answerable: int, target: float = 0.95
) -> tuple[float, float]:
    """(best coverage, its threshold) over all thresholds whose precision reaches ``target``.

    ``correct[i]`` says answering query i would be right (answerable and the top topic is right).
    """
    if n_answerable == 0 or confidence.size == 0:
        return 0.0, 1.0
    order = np.argsort(-confidence, kind="stable")
    conf = confidence[order]
    hits = np.cumsum(correct[order])
    answered = np.arange(1, conf.size + 1)
    # Only cut between different confidences: a threshold answers all ties or none.
    last_of_tie = np.concatenate([conf[1:] != conf[:-1], [True]])
    ok = (hits / answered >= target) & last_of_tie
    if not ok.any():
        return 0.0, 1.0
    cands = np.flatnonzero(ok)
    best = cands[np.argmax(hits[cands])]
    return float(hits[best] / n_answerable), float(conf[best])


def _query_fields(q: Mapping[str, Any] | Any) -> tuple[str, str | None, str | None]:
    if isinstance(q, Mapping):
        return str(q["text"]), q.get("expect_topic"), q.get("locale")
    return str(q.text), getattr(q, "expect_topic", None), getattr(q, "locale", None)


def run_queries(index: KnowledgeIndex, queries: Iterable[Mapping[str, Any] | Any]) -> list[QueryResult]:
    """Ask every query through ``index.decide`` and record what happened."""
    results: list[QueryResult] = []
    for q in queries:
        text, expect, locale = _query_fields(q)
        t0 = time.perf_counter()
        decision = index.decide(text, locale=locale)
        elapsed = (time.perf_counter() - t0) * 1000.0
        top = decision.top
        results.append(
            QueryResult(
                text=text,
                expect_topic=expect,
                locale=decision.locale,
                top_topic=top.entry.topic if top else None,
                top_key=top.entry.key if top else None,
                confidence=top.score if top else 0.0,
                answered=decision.answer,
                latency_ms=elapsed,
            )
        )
    return results


def report_from_results(
    results: list[QueryResult], index: KnowledgeIndex, *, max_misses: int = 20
) -> EvalReport:
    """Aggregate per-query results into an :class:`EvalReport`."""
    answerable = [r for r in results if r.expect_topic is not None]
    handoff = [r for r in results if r.expect_topic is None]
    conf = np.asarray([r.confidence for r in results], dtype=np.float64)
    correct = np.asarray([r.correct_top for r in results], dtype=bool)
    answered = np.asarray([r.answered for r in results], dtype=bool)
    n_ans = len(answerable)
    top1 = float(np.mean([r.correct_top for r in answerable])) if answerable else float("nan")
    au = auroc([r.confidence for r in answerable], [r.confidence for r in handoff])
    n_answered = int(answered.sum())
    right = int((answered & correct).sum())
    precision = right / n_answered if n_answered else float("nan")
    coverage = right / n_ans if n_ans else float("nan")
    handoff_recall = float(np.mean([not r.answered for r in handoff])) if handoff else float("nan")
    cov95, thr95 = coverage_at_precision(conf, correct, n_ans, 0.95)
    lat = np.asarray([r.latency_ms for r in results], dtype=np.float64)
    p50 = float(np.percentile(lat, 50)) if lat.size else 0.0
    p99 = float(np.percentile(lat, 99)) if lat.size else 0.0
    by_locale: dict[str, dict[str, float]] = {}
    for loc in sorted({r.locale for r in results}):
        rs = [r for r in results if r.locale == loc]
        ans = [r for r in rs if r.expect_topic is not None]
        ho = [r for r in rs if r.expect_topic is None]
        by_locale[loc] = {
            "queries": float(len(rs)),
            "top1_accuracy": float(np.mean([r.correct_top for r in ans])) if ans else float("nan"),
            "auroc": auroc([r.confidence for r in ans], [r.confidence for r in ho]),
            "threshold": index.threshold(loc),
        }
    misses = [
        {
            "text": r.text,
            "expect_topic": r.expect_topic,
            "got": r.top_topic,
            "confidence": round(r.confidence, 4),
            "answered": r.answered,
        }
        for r in results
        if (r.expect_topic is not None and not (r.answered and r.correct_top))
        or (r.expect_topic is None and r.answered)
    ][:max_misses]
    locales = sorted({r.locale for r in results} | set(index.thresholds))
    return EvalReport(
        n_queries=len(results),
        n_answerable=n_ans,
        n_handoff=len(handoff),
        top1_accuracy=top1,
        auroc=au,
        thresholds={loc: index.threshold(loc) for loc in locales},
        precision_at_threshold=precision,
        coverage_at_threshold=coverage,
        handoff_recall_at_threshold=handoff_recall,
        coverage_at_95_precision=cov95,
        threshold_at_95_precision=thr95,
        latency_p50_ms=p50,
        latency_p99_ms=p99,
        mode=index.mode,
        by_locale=by_locale,
        misses=misses,
    )


def evaluate(index: KnowledgeIndex, queries: Iterable[Mapping[str, Any] | Any]) -> EvalReport:
    """Evaluate ``index`` on labelled queries (dicts or objects with text / expect_topic / locale)."""
    return report_from_results(run_queries(index, queries), index)


def typo_variants(text: str, n: int, rng: random.Random) -> list[str]:
    """``n`` variants of ``text`` with one or two character edits (delete, swap, replace, insert).

    Odd variants get two edits when the text has at least 10 letters / characters, else one.
    Edits touch letters / CJK characters only; for CJK text a replacement uses a character from the
    same text (a plausible slip), for Latin text a random letter.
    """
    keyboard = "qwertyuiopasdfghjklzxcvbnm"
    out: list[str] = []
    letters = [i for i, ch in enumerate(text) if ch.isalpha()]
    if len(letters) < 4:
        return [text] * n
    cjk_chars = [ch for ch in text if "\u4e00" <= ch <= "\u9fff"]
    for k in range(n):
        chars = list(text)
        for _ in range(1 + (k % 2) if len(letters) >= 10 else 1):
            idx = [i for i, ch in enumerate(chars) if ch.isalpha()]
            i = rng.choice(idx)
            op = rng.choice(("delete", "swap", "replace", "insert"))
            is_cjk = "\u4e00" <= chars[i] <= "\u9fff"
            if op == "delete" and len(idx) > 4:
                del chars[i]
            elif op == "swap" and i + 1 < len(chars) and chars[i + 1].isalpha():
                chars[i], chars[i + 1] = chars[i + 1], chars[i]
            elif op == "insert":
                chars.insert(i, rng.choice(cjk_chars) if is_cjk else rng.choice(keyboard))
            else:
                chars[i] = rng.choice(cjk_chars) if is_cjk else rng.choice(keyboard)
        out.append("".join(chars))
    return out


def _fmt(x: float, digits: int = 3) -> str:
    return "n/a" if x != x else f"{x:.{digits}f}"  # x != x: nan


def format_report(report: EvalReport, *, show_misses: int = 10) -> str:
    """A short human-readable report (the default output of ``butler kb eval``)."""
    thr = ", ".join(f"{k} {v:.3f}" for k, v in report.thresholds.items())
    lines = [
        f"queries: {report.n_queries} ({report.n_answerable} answerable, {report.n_handoff} hand-off)"
        f"  matcher: {report.mode}",
        f"top-1 accuracy (answerable):     {_fmt(report.top1_accuracy)}",
        f"AUROC answer vs hand-off:        {_fmt(report.auroc)}",
        f"threshold:                       {thr}",
        f"precision at threshold:          {_fmt(report.precision_at_threshold)}",
        f"coverage at threshold:           {_fmt(report.coverage_at_threshold)}",
        f"hand-offs kept at threshold:     {_fmt(report.handoff_recall_at_threshold)}",
        f"coverage at 95% precision:       {_fmt(report.coverage_at_95_precision)}"
        f" (threshold {report.threshold_at_95_precision:.3f})",
        f"latency p50 / p99:               {report.latency_p50_ms:.2f} / {report.latency_p99_ms:.2f} ms",
    ]
    if len(report.by_locale) > 1:
        for loc, m in report.by_locale.items():
            lines.append(
                f"  {loc}: {int(m['queries'])} queries, top-1 {_fmt(m['top1_accuracy'])},"
                f" AUROC {_fmt(m['auroc'])}"
            )
    if show_misses and report.misses:
        lines.append("misses:")
        for miss in report.misses[:show_misses]:
            what = "answered" if miss["answered"] else "handed off"
            lines.append(
                f"  {miss['text'][:60]!r}: expected {miss['expect_topic'] or 'hand-off'}, "
                f"got {miss['got']} ({miss['confidence']:.2f}, {what})"
            )
    return "\n".join(lines)
