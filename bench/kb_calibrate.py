"""Fit the matcher's confidence calibration and per-locale thresholds; write knowledge/data/calibration.json.

    .venv/bin/python bench/kb_calibrate.py [--mode lexical|semantic|all] [--precision 0.9] [--dry-run]

Tuning data only (never CLINC test):

- CLINC150 auto_and_commute, 5-shot FAQ: tune split of ``kb_common.clinc_tune`` (train phrasings
  6..100, val, oos_train/oos_val, other domains' train/val queries);
- the demo knowledge base, both locales: leave-one-phrasing-out (a held-out phrasing must find its
  topic), leave-topics-out (phrasings of removed topics must be handed off), and off-topic questions
  (other CLINC domains in English, a hand-written list in Chinese).

Labels: 1 when the top match is the right topic, 0 otherwise. Of a few feature subsets, the one whose
confidence best separates answerable from hand-off tune queries (AUROC) is kept. Demo rows get the
same total weight as CLINC rows. Threshold per locale: the lowest confidence whose answers reach
``--precision`` on that locale's tuning rows.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kb_common import ZH_OFF_TOPIC, Query, clinc_entries, clinc_tune, demo_entries

from knowledge.calibration import (
    CALIBRATION_PATH,
    LEXICAL_FEATURES,
    SEMANTIC_FEATURES,
    Calibration,
    fit_logistic,
    threshold_for_precision,
)
from knowledge.evaluation import auroc
from knowledge.matcher import KbEntry, KnowledgeIndex, MatcherConfig
from knowledge.semantic import encoder_available

FUSION = {
    "lexical": {"lex": 1.0},
    # Measured on the tune split (see BENCHMARKS.md): centred mean cosine of e5 and USE, plus lexical.
    "semantic": {"lex": 0.25, "e5_mean": 1.0, "use_mean": 1.0},
    # USE only: several times cheaper per query than e5 (6 ms vs ~40 ms CPU here).
    "semantic-use": {"lex": 0.25, "use_mean": 1.0},
}
FEATURES = {"lexical": LEXICAL_FEATURES, "semantic": SEMANTIC_FEATURES, "semantic-use": SEMANTIC_FEATURES}
ENCODERS = {"lexical": (), "semantic": ("e5", "use"), "semantic-use": ("use",)}
# Feature subsets tried; the one with the best tune AUROC (answerable vs hand-off) is kept.
CANDIDATES = {
    "lexical": [("score",), ("score", "coverage"), ("score", "margin", "coverage")],
    "semantic-use": [
        ("score", "coverage"),
        ("score", "coverage", "use_raw"),
        ("score", "coverage", "use_raw", "lex"),
    ],
    "semantic": [
        ("score", "coverage"),
        ("score", "coverage", "e5_raw", "use_raw"),
        ("score", "margin", "coverage", "e5_raw", "use_raw"),
        ("score", "coverage", "e5_raw", "use_raw", "lex"),
    ],
}
ALL_FEATURES = ("score", "margin", "coverage", "lex", "e5_raw", "use_raw", "e5_mean", "use_mean")


def _config(mode: str) -> MatcherConfig:
    probe = Calibration(
        features=FEATURES[mode], weights=(0.0,) * len(FEATURES[mode]), bias=0.0, fusion=FUSION[mode]
    )
    encoders = ENCODERS[mode]
    return MatcherConfig(
        semantic="on" if encoders else "off", encoders=encoders or ("e5", "use"), calibration=probe
    )


def _rows(
    index: KnowledgeIndex, queries: Sequence[Query], feats: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    x: list[list[float]] = []
    y: list[float] = []
    for q in queries:
        cands = index.candidates(q["text"], locale=q.get("locale"), k=2)
        if not cands:
            x.append([0.0] * len(feats))
            y.append(0.0)
            continue
        top = cands[0]
        x.append([float(top.get(f, 0.0)) for f in feats])
        topic = index.entries[int(top["entry"])].topic
        y.append(1.0 if q["expect_topic"] is not None and topic == q["expect_topic"] else 0.0)
    return np.asarray(x), np.asarray(y)


def demo_rows(entries: list[KbEntry], config: MatcherConfig, feats: Sequence[str], en_off_topic: list[str]):
    """Leave-one-phrasing-out, leave-topics-out and off-topic rows on the demo KB, per locale."""
    out: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {"zh-CN": ([], []), "en": ([], [])}

    def add(index: KnowledgeIndex, queries: list[Query]) -> None:
        for loc in out:
            qs = [q for q in queries if q["locale"] == loc]
            if qs:
                x, y = _rows(index, qs, feats)
                out[loc][0].append(x)
                out[loc][1].append(y)

    for fold in range(3):
        kept: list[KbEntry] = []
        queries: list[Query] = []
        for e in entries:
            if len(e.questions) >= 2 and fold < len(e.questions):
                held = e.questions[fold]
                rest = tuple(q for i, q in enumerate(e.questions) if i != fold)
                kept.append(KbEntry(e.key, e.topic, e.category, e.locale, rest, e.answer))
                queries.append({"text": held, "expect_topic": e.topic, "locale": e.locale})
            else:
                kept.append(e)
        add(KnowledgeIndex.build(kept, config=config), queries)
    topics = sorted({e.topic for e in entries})
    for fold in range(5):
        gone = {t for i, t in enumerate(topics) if i % 5 == fold}
        kept = [e for e in entries if e.topic not in gone]
        queries = [
            {"text": q, "expect_topic": None, "locale": e.locale}
            for e in entries
            if e.topic in gone
            for q in e.questions
        ]
        add(KnowledgeIndex.build(kept, config=config), queries)
    full = KnowledgeIndex.build(entries, config=config)
    off = [{"text": t, "expect_topic": None, "locale": "zh-CN"} for t in ZH_OFF_TOPIC]
    off += [{"text": t, "expect_topic": None, "locale": "en"} for t in en_off_topic]
    add(full, off)
    return {loc: (np.vstack(xs), np.concatenate(ys)) for loc, (xs, ys) in out.items() if xs}


def calibrate(mode: str, precision: float) -> Calibration:
    config = _config(mode)
    feats: tuple[str, ...] = ALL_FEATURES
    t0 = time.perf_counter()
    tune = clinc_tune()
    clinc_index = KnowledgeIndex.build(clinc_entries(), config=config)
    cx, cy = _rows(clinc_index, tune, feats)
    en_off = [q["text"] for q in tune if q["expect_topic"] is None][:300]
    demo = demo_rows(demo_entries(), config, feats, en_off)
    dx = np.vstack([demo[loc][0] for loc in demo])
    dy = np.concatenate([demo[loc][1] for loc in demo])
    x = np.vstack([cx, dx])
    y = np.concatenate([cy, dy])
    w = np.concatenate([np.ones(len(cy)), np.full(len(dy), len(cy) / max(len(dy), 1))])
    answerable = np.asarray([q["expect_topic"] is not None for q in tune])
    best: tuple[float, tuple[str, ...]] | None = None
    for subset in CANDIDATES[mode]:
        cols = [feats.index(f) for f in subset]
        wts, b0 = fit_logistic(x[:, cols], y, l2=1e-2, sample_weight=w)
        conf = Calibration(features=subset, weights=tuple(wts), bias=b0).confidences(cx[:, cols])
        score = auroc(conf[answerable], conf[~answerable])
        print(f"[{mode}] features {subset}: tune AUROC {score:.4f}", flush=True)
        if best is None or score > best[0]:
            best = (score, subset)
    assert best is not None
    feats = best[1]
    cols = [ALL_FEATURES.index(f) for f in feats]
    x, cx = x[:, cols], cx[:, cols]
    demo = {loc: (dxy[0][:, cols], dxy[1]) for loc, dxy in demo.items()}
    weights, bias = fit_logistic(x, y, l2=1e-2, sample_weight=w)
    cal = Calibration(
        features=feats, weights=tuple(float(v) for v in weights), bias=bias, fusion=FUSION[mode]
    )
    thresholds: dict[str, float] = {}
    for loc in ("zh-CN", "en"):
        if loc == "en":
            lx = np.vstack([cx, demo["en"][0]]) if "en" in demo else cx
            ly = np.concatenate([cy, demo["en"][1]]) if "en" in demo else cy
        else:
            lx, ly = demo[loc]
        conf = cal.confidences(lx)
        thresholds[loc] = round(max(threshold_for_precision(conf, ly.astype(bool), precision), 0.05), 4)
        print(
            f"[{mode}] {loc}: {len(ly)} tuning rows ({int(ly.sum())} right top-1),"
            f" threshold {thresholds[loc]:.3f}",
            flush=True,
        )
    fitted = dict(zip(feats, weights.round(3).tolist(), strict=True))
    print(f"[{mode}] fitted in {time.perf_counter() - t0:.1f}s: weights {fitted}, bias {bias:.3f}")
    return Calibration(
        features=feats, weights=cal.weights, bias=bias, thresholds=thresholds, fusion=FUSION[mode]
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=["lexical", "semantic", "semantic-use", "all"], default="all")
    ap.add_argument("--precision", type=float, default=0.9, help="target precision for the thresholds")
    ap.add_argument("--dry-run", action="store_true", help="print, do not write the JSON")
    args = ap.parse_args(argv)
    modes = ["lexical", "semantic", "semantic-use"] if args.mode == "all" else [args.mode]
    for mode in list(modes):
        if not all(encoder_available(n) for n in ENCODERS[mode]):
            print(f"semantic extra not installed: skipping the {mode} calibration")
            modes.remove(mode)
    fitted = {}
    for mode in modes:
        fitted[mode] = calibrate(mode, args.precision).to_dict()
        fitted[mode]["target_precision"] = args.precision
    # Read the file only now, so that a concurrent run for the other mode is not overwritten.
    data = json.loads(CALIBRATION_PATH.read_text()) if CALIBRATION_PATH.exists() else {}
    data.update(fitted)
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if args.dry_run:
        print(text)
    else:
        CALIBRATION_PATH.write_text(text)
        print(f"wrote {CALIBRATION_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
