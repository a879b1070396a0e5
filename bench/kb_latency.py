"""Latency, build time and memory of the matcher on a 10,000-entry synthetic knowledge base.

    .venv/bin/python bench/kb_latency.py [--entries 10000] [--phrasings 10] [--queries 1000] [--mode all]

The synthetic base: 5,000 topics x (zh-CN, en) = 10,000 entries, ~10 phrasings each, built from the
words of the demo knowledge base (questions and answers, so word frequencies are realistic) put into
question templates. Queries: half are phrasings with one or two typos, half are random word salad
(off-topic). Timed: one ``decide`` call (locale detection, search, calibration), single thread, as
wall time and as the thread's CPU time (on a shared, loaded box wall-time p99 mostly measures
waiting for a core; the load average is printed before and after).

Semantic mode: the query embeddings are real (e5 + USE), but the 100,000 phrasing embeddings are
random unit vectors of the right shapes (embedding them for real would take far longer than the
bench; the per-query cost does not depend on their values). The real cold embedding rate is measured
on a sample and the extrapolated cold build time printed.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kb_common import Bm25JiebaBaseline, CharTfidfBaseline, demo_entries, machine, table

from knowledge.evaluation import typo_variants
from knowledge.matcher import KbEntry, KnowledgeIndex, MatcherConfig
from knowledge.semantic import encoder_available, get_encoder
from knowledge.tokenize import english_words, jieba_words, normalize

EN_TEMPLATES = [
    "how do i {a} the {b}",
    "what is the {a} {b} for {c}",
    "can you tell me about {a} and {b}",
    "where can i find {a} {b} {c}",
    "is there a {a} for my {b}",
    "why does the {a} {b} not {c}",
    "when should i {a} my {b}",
    "how much does {a} {b} cost",
    "i need help with {a} {b} {c}",
    "please explain {a} {b}",
    "do you offer {a} {b}",
    "what happens if {a} {b} {c}",
]
ZH_TEMPLATES = [
    "怎么{a}{b}",
    "{a}{b}是多少",
    "请问{a}和{b}的问题",
    "哪里可以{a}{b}{c}",
    "我的{a}{b}怎么办",
    "为什么{a}{b}不{c}",
    "什么时候{a}{b}",
    "{a}{b}要多少钱",
    "想了解一下{a}{b}{c}",
    "{a}{b}可以吗",
    "有没有{a}{b}",
    "如果{a}{b}{c}会怎样",
]


def _pools() -> tuple[list[str], list[str]]:
    en: dict[str, int] = {}
    zh: dict[str, int] = {}
    for e in demo_entries():
        for text in (*e.questions, e.answer):
            for w in english_words(text):
                if len(w) > 2 and w.isalpha():
                    en[w] = en.get(w, 0) + 1
            for w in jieba_words(normalize(text)):
                if len(w) >= 2 and all("\u4e00" <= c <= "\u9fff" for c in w):
                    zh[w] = zh.get(w, 0) + 1
    return sorted(en, key=lambda w: -en[w]), sorted(zh, key=lambda w: -zh[w])


def _zipf_pick(pool: list[str], rng: random.Random, k: int) -> list[str]:
    # Zipf-like: index ~ pool_size ** u, so frequent words are picked more often.
    n = len(pool)
    return [pool[min(n - 1, int(n ** rng.random()) - 1)] for _ in range(k)]


def synthetic_entries(n_entries: int, phrasings: int, seed: int = 11) -> list[KbEntry]:
    rng = random.Random(seed)
    en_pool, zh_pool = _pools()
    out: list[KbEntry] = []
    for t in range(n_entries // 2):
        topic = f"synthetic.{t:05d}"
        en_topic = _zipf_pick(en_pool[200:], rng, 3)  # rarer words identify the topic
        zh_topic = _zipf_pick(zh_pool[200:], rng, 3)
        for locale, templates, pool, core in (
            ("en", EN_TEMPLATES, en_pool, en_topic),
            ("zh-CN", ZH_TEMPLATES, zh_pool, zh_topic),
        ):
            qs: list[str] = []
            for _ in range(phrasings):
                words = core[:]
                rng.shuffle(words)
                fill = _zipf_pick(pool, rng, 1)
                sep = " " if locale == "en" else ""
                qs.append(rng.choice(templates).format(a=words[0], b=sep.join(words[1:]), c=fill[0]))
            out.append(
                KbEntry(f"{topic}/{locale}", topic, "service", locale, tuple(dict.fromkeys(qs)), "answer")
            )
    return out


def synthetic_queries(entries: list[KbEntry], n: int, seed: int = 5) -> list[str]:
    rng = random.Random(seed)
    en_pool, zh_pool = _pools()
    out: list[str] = []
    for _ in range(n // 2):
        e = rng.choice(entries)
        out.append(typo_variants(rng.choice(e.questions), 1, rng)[0])
    for i in range(n - n // 2):
        if i % 2:
            out.append(" ".join(_zipf_pick(en_pool, rng, rng.randint(4, 9))))
        else:
            out.append("".join(_zipf_pick(zh_pool, rng, rng.randint(3, 6))))
    rng.shuffle(out)
    return out


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    import resource

    return pages * resource.getpagesize() / 2**20


def measure(index: Any, queries: list[str], fn: str = "decide") -> dict[str, float]:
    call = getattr(index, fn)
    for q in queries[:20]:
        call(q)
    lat: list[float] = []
    cpu: list[float] = []
    for q in queries:
        c0 = time.thread_time()
        t0 = time.perf_counter()
        call(q)
        lat.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.thread_time() - c0) * 1000)
    a = np.asarray(lat)
    c = np.asarray(cpu)
    return {
        "p50": float(np.percentile(a, 50)),
        "p99": float(np.percentile(a, 99)),
        "cpu_p50": float(np.percentile(c, 50)),
        "cpu_p99": float(np.percentile(c, 99)),
    }


class _RandomPhrasings:
    """Stands in for a real encoder's phrasing embeddings (query embeddings stay real)."""

    def __init__(self, dim: int, seed: int):
        self.dim = dim
        self.rng = np.random.default_rng(seed)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        v = self.rng.standard_normal((len(texts), self.dim)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=10000)
    ap.add_argument("--phrasings", type=int, default=10)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--mode", choices=["lexical", "semantic", "all"], default="all")
    ap.add_argument("--no-baselines", action="store_true")
    args = ap.parse_args(argv)

    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f}")
    entries = synthetic_entries(args.entries, args.phrasings)
    n_phr = sum(len(e.questions) for e in entries)
    queries = synthetic_queries(entries, args.queries)
    print(f"synthetic base: {len(entries)} entries, {n_phr} phrasings; {len(queries)} queries")
    rows: list[list[Any]] = []

    # jieba's dictionary is loaded once per process; do it before timing the build.
    jieba_words("预热")

    if args.mode in ("lexical", "all"):
        gc.collect()
        before = rss_mb()
        t0 = time.perf_counter()
        c0 = time.thread_time()
        index = KnowledgeIndex.build(entries, config=MatcherConfig(semantic="off"))
        build_s = time.perf_counter() - t0
        build_cpu = time.thread_time() - c0
        grown = rss_mb() - before
        lat = measure(index, queries)
        rows.append(
            [
                "Butler lexical",
                f"{build_s:.1f} / {build_cpu:.1f}",
                f"{index.memory_bytes() / 2**20:.0f} / {grown:.0f}",
                f"{lat['p50']:.2f} / {lat['p99']:.2f}",
                f"{lat['cpu_p50']:.2f} / {lat['cpu_p99']:.2f}",
            ]
        )
        del index
        gc.collect()

    if args.mode in ("semantic", "all"):
        if not all(encoder_available(n) for n in ("e5", "use")):
            print("semantic extra not installed: semantic row skipped")
        else:
            sample = [q for e in entries[:60] for q in e.questions][:300]
            rates = {}
            for name in ("e5", "use"):
                enc = get_encoder(name)
                enc.encode_queries(["warm up"])
                t0 = time.perf_counter()
                enc.encode_phrasings(sample)
                rates[name] = len(sample) / (time.perf_counter() - t0)
                enc.forget_passages()
            cold = sum(n_phr / r for r in rates.values())
            print(
                "real phrasing embedding rate: "
                + ", ".join(f"{k} {v:.0f}/s" for k, v in rates.items())
                + f"; a cold build of {n_phr} phrasings would embed for ~{cold / 60:.0f} min (then cached)"
            )
            saved = {}
            for name, dim, seed in (("e5", 384, 1), ("use", 512, 2)):
                enc = get_encoder(name)
                saved[name] = enc.encode_phrasings
                enc.encode_phrasings = _RandomPhrasings(dim, seed)  # type: ignore[method-assign]
            for label, encoders in (
                ("Butler semantic default (lexical + USE)", ("use",)),
                ("Butler semantic, e5 added (lexical + e5 + USE)", ("e5", "use")),
            ):
                gc.collect()
                before = rss_mb()
                t0 = time.perf_counter()
                c0 = time.thread_time()
                index = KnowledgeIndex.build(entries, config=MatcherConfig(semantic="on", encoders=encoders))
                build_s = time.perf_counter() - t0
                build_cpu = time.thread_time() - c0
                grown = rss_mb() - before
                # Distinct queries, so the query-embedding cache never hits.
                lat = measure(index, [f"{q} {label[-5:]} {i}" for i, q in enumerate(queries)])
                rows.append(
                    [
                        label,
                        f"{build_s:.1f} / {build_cpu:.1f} (+ embedding)",
                        f"{index.memory_bytes() / 2**20:.0f} / {grown:.0f}",
                        f"{lat['p50']:.2f} / {lat['p99']:.2f}",
                        f"{lat['cpu_p50']:.2f} / {lat['cpu_p99']:.2f}",
                    ]
                )
                del index
                gc.collect()
            for name, fn in saved.items():
                get_encoder(name).encode_phrasings = fn  # type: ignore[method-assign]

    if not args.no_baselines:
        for cls in (Bm25JiebaBaseline, CharTfidfBaseline):
            gc.collect()
            before = rss_mb()
            t0 = time.perf_counter()
            c0 = time.thread_time()
            base = cls(entries)
            build_s = time.perf_counter() - t0
            build_cpu = time.thread_time() - c0
            grown = rss_mb() - before
            lat = measure(base, queries[:200], fn="scores")
            rows.append(
                [
                    f"baseline: {base.name}",
                    f"{build_s:.1f} / {build_cpu:.1f}",
                    f"- / {grown:.0f}",
                    f"{lat['p50']:.2f} / {lat['p99']:.2f}",
                    f"{lat['cpu_p50']:.2f} / {lat['cpu_p99']:.2f}",
                ]
            )
            del base

    print()
    print(
        table(
            [
                "method",
                "build wall / CPU s",
                "index MB / RSS growth MB",
                "wall p50 / p99 ms",
                "CPU p50 / p99 ms",
            ],
            rows,
        )
    )
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
