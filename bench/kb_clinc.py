"""CLINC150 auto_and_commute, 5-shot FAQ: the matcher against baselines measured in the same run.

    .venv/bin/python bench/kb_clinc.py [--split test|val] [--mode lexical|semantic|all] [--json OUT]

Each of the 15 intents is one FAQ entry with its first 5 train phrasings; answerable queries are the
intents' test queries, hand-off queries are ``oos_test`` plus the other 9 domains' test queries.
``--split val`` runs on val (+ oos_val) instead, for tuning; reported figures use ``test``.
Confidence for AUROC: the matcher's calibrated confidence; for a baseline its top score.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kb_common import (
    Bm25JiebaBaseline,
    CharTfidfBaseline,
    clinc_data,
    clinc_entries,
    clinc_intents,
    clinc_test,
    eval_baseline,
    machine,
    max_rss_mb,
    table,
    timed,
)

from knowledge.calibration import Calibration
from knowledge.evaluation import evaluate
from knowledge.matcher import KnowledgeIndex, MatcherConfig
from knowledge.semantic import encoder_available


def clinc_val(data: dict[str, Any]) -> list[dict[str, Any]]:
    intents = set(clinc_intents())
    out = [{"text": t, "expect_topic": i if i in intents else None, "locale": "en"} for t, i in data["val"]]
    out += [{"text": t, "expect_topic": None, "locale": "en"} for t, _ in data["oos_val"]]
    return out


def _single_model(name: str) -> MatcherConfig:
    """One encoder alone (centred mean cosine), its raw top score as confidence: a reference row."""
    cal = Calibration(features=("score",), weights=(1.0,), bias=0.0, fusion={f"{name}_mean": 1.0, "lex": 0.0})
    return MatcherConfig(semantic="on", encoders=(name,), calibration=cal)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", choices=["test", "val"], default="test")
    ap.add_argument("--mode", choices=["lexical", "semantic", "all"], default="all")
    ap.add_argument("--json", type=Path, help="write the figures as JSON here")
    ap.add_argument("--no-baselines", action="store_true")
    args = ap.parse_args(argv)

    data = clinc_data()
    entries = clinc_entries(data)
    queries = clinc_test(data) if args.split == "test" else clinc_val(data)
    n_pos = sum(q["expect_topic"] is not None for q in queries)
    print(
        f"CLINC150 {args.split}: {len(entries)} FAQ entries x 5 phrasings;"
        f" {len(queries)} queries ({n_pos} answerable)"
    )
    print(f"machine: {machine()}")
    semantic_ok = all(encoder_available(n) for n in ("e5", "use"))
    if semantic_ok:
        from knowledge.semantic import get_encoder

        for n in ("e5", "use"):
            get_encoder(n)._QUERY_CACHE = 20000  # the bench asks each query several times

    rows: list[list[Any]] = []
    results: dict[str, Any] = {"split": args.split, "machine": machine(), "methods": {}}

    def add(name: str, rep: dict[str, Any]) -> None:
        results["methods"][name] = rep
        rows.append(
            [
                name,
                rep["top1"],
                rep["auroc"],
                rep.get("precision", float("nan")),
                rep.get("coverage", float("nan")),
                rep.get("coverage95", float("nan")),
                f"{rep['p50_ms']:.2f} / {rep['p99_ms']:.2f}",
            ]
        )

    configs: list[tuple[str, MatcherConfig]] = []
    if args.mode in ("lexical", "all"):
        configs.append(("Butler lexical (default install)", MatcherConfig(semantic="off")))
    if args.mode in ("semantic", "all"):
        if semantic_ok:
            configs.append(
                ("Butler semantic default (lexical + USE)", MatcherConfig(semantic="on", encoders=("use",)))
            )
            configs.append(
                (
                    "Butler semantic, e5 added (lexical + e5 + USE)",
                    MatcherConfig(semantic="on", encoders=("e5", "use")),
                )
            )
        else:
            print("semantic extra not installed: semantic rows skipped")
    for name, config in configs:
        index, build_s = timed(lambda c=config: KnowledgeIndex.build(entries, config=c))  # type: ignore[misc]
        if index.mode == "semantic":
            evaluate(index, queries[:5])  # warm the models before timing
        rep = evaluate(index, queries)
        add(
            name,
            {
                "top1": rep.top1_accuracy,
                "auroc": rep.auroc,
                "precision": rep.precision_at_threshold,
                "coverage": rep.coverage_at_threshold,
                "coverage95": rep.coverage_at_95_precision,
                "threshold": rep.thresholds.get("en"),
                "p50_ms": rep.latency_p50_ms,
                "p99_ms": rep.latency_p99_ms,
                "build_s": build_s,
            },
        )
    if args.mode in ("semantic", "all") and semantic_ok:
        for enc, label in (
            ("e5", "e5 alone (centred mean cosine)"),
            ("use", "USE alone (centred mean cosine)"),
        ):
            index = KnowledgeIndex.build(entries, config=_single_model(enc))
            rep = evaluate(index, queries)
            add(
                label,
                {
                    "top1": rep.top1_accuracy,
                    "auroc": rep.auroc,
                    "coverage95": rep.coverage_at_95_precision,
                    "p50_ms": rep.latency_p50_ms,
                    "p99_ms": rep.latency_p99_ms,
                },
            )
    if not args.no_baselines:
        for base in (Bm25JiebaBaseline(entries), CharTfidfBaseline(entries)):
            add(f"baseline: {base.name}", eval_baseline(base, entries, queries))

    print()
    print(
        table(
            ["method", "top-1", "AUROC", "precision@thr", "coverage@thr", "coverage@95%P", "p50 / p99 ms"],
            rows,
        )
    )
    print(f"\nmax RSS {max_rss_mb():.0f} MB")
    results["max_rss_mb"] = max_rss_mb()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
