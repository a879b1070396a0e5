"""Shared pieces of the knowledge-base benchmarks: data sets, baselines, machine facts.

CLINC150 is read from ``../shared/data/clinc150`` (never copied into the repository). The FAQ is the
``auto_and_commute`` domain: each of its 15 intents is one entry whose questions are the intent's first
5 train phrasings. Splits:

- test: the intents' test queries (answerable) + ``oos_test`` and the other domains' test queries
  (must hand off). Figures in BENCHMARKS.md are measured on this split only.
- tune: train phrasings 6..100 of the intents (answerable), val queries, ``oos_train``/``oos_val`` and
  other domains' train/val queries (hand off). Used only for fitting fusion weights, calibration and
  thresholds.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import random
import resource
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from knowledge.evaluation import auroc  # noqa: E402
from knowledge.matcher import KbEntry  # noqa: E402
from knowledge.tokenize import jieba_words, normalize  # noqa: E402

CLINC_DIR = Path(os.environ.get("BUTLER_CLINC_DIR", ROOT.parent / "shared" / "data" / "clinc150"))
DEMO_KB = ROOT / "knowledge" / "data" / "demo_kb.yaml"
DOMAIN = "auto_and_commute"
SHOTS = 5

Query = dict[str, Any]

# Off-topic Chinese questions (hand-written for tuning the zh-CN threshold; not used for reporting).
ZH_OFF_TOPIC = [
    "今天天气怎么样",
    "帮我订一张去上海的机票",
    "附近有什么好吃的火锅店",
    "给我讲个笑话吧",
    "明天会下雨吗",
    "帮我设置一个早上七点的闹钟",
    "人民币兑美元汇率是多少",
    "推荐一部好看的电影",
    "你叫什么名字",
    "我的信用卡账单什么时候出",
    "怎么做红烧肉",
    "帮我翻译一下这句话",
    "最近有什么新闻",
    "北京到广州的高铁要多久",
    "我想预订一家酒店",
    "帮我查一下快递到哪了",
    "怎么减肥比较快",
    "周末去哪里玩比较好",
    "今天股市行情怎么样",
    "帮我算一下三百乘以四十五",
    "我的手机充不进电怎么办",
    "附近的银行几点关门",
    "怎么给孩子报名上小学",
    "推荐几本好书",
    "电费怎么交",
    "医院挂号怎么挂",
    "帮我点一份外卖",
    "世界上最高的山是哪座",
    "我想换个手机号",
    "家里的冰箱坏了找谁修",
    "宽带网速太慢了怎么办",
    "怎么申请护照",
    "帮我写一首诗",
    "地铁末班车几点",
    "你喜欢什么颜色",
    "猫咪不吃东西怎么办",
    "房贷利率现在是多少",
    "公司年假有几天",
    "怎么学好英语",
    "空气净化器哪个牌子好",
]


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": _dt.date.today().isoformat(),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
    }


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def clinc_data() -> dict[str, Any]:
    return json.loads((CLINC_DIR / "data_full.json").read_text())


def clinc_intents() -> list[str]:
    return list(json.loads((CLINC_DIR / "domains.json").read_text())[DOMAIN])


def clinc_entries(data: dict[str, Any] | None = None, shots: int = SHOTS) -> list[KbEntry]:
    data = data or clinc_data()
    train: dict[str, list[str]] = defaultdict(list)
    for text, intent in data["train"]:
        train[intent].append(text)
    return [
        KbEntry(
            key=f"{intent}/en",
            topic=intent,
            category="general",
            locale="en",
            questions=tuple(train[intent][:shots]),
            answer=f"(answer for {intent})",
        )
        for intent in clinc_intents()
    ]


def clinc_test(data: dict[str, Any] | None = None) -> list[Query]:
    data = data or clinc_data()
    intents = set(clinc_intents())
    out: list[Query] = []
    for text, intent in data["test"]:
        out.append({"text": text, "expect_topic": intent if intent in intents else None, "locale": "en"})
    out.extend({"text": text, "expect_topic": None, "locale": "en"} for text, _ in data["oos_test"])
    return out


def clinc_tune(data: dict[str, Any] | None = None, *, seed: int = 7, other_train: int = 1500) -> list[Query]:
    """Tuning queries: never the test split, never the 5 FAQ phrasings."""
    data = data or clinc_data()
    intents = set(clinc_intents())
    out: list[Query] = []
    seen: Counter[str] = Counter()
    others: list[str] = []
    for text, intent in data["train"]:
        if intent in intents:
            seen[intent] += 1
            if seen[intent] > SHOTS:
                out.append({"text": text, "expect_topic": intent, "locale": "en"})
        else:
            others.append(text)
    random.Random(seed).shuffle(others)
    out.extend({"text": t, "expect_topic": None, "locale": "en"} for t in others[:other_train])
    for text, intent in data["val"]:
        out.append({"text": text, "expect_topic": intent if intent in intents else None, "locale": "en"})
    for key in ("oos_train", "oos_val"):
        out.extend({"text": t, "expect_topic": None, "locale": "en"} for t, _ in data[key])
    return out


def demo_entries() -> list[KbEntry]:
    from knowledge.kb_files import load_entries

    return load_entries(DEMO_KB)


# ---------------------------------------------------------------------------------------- baselines
def _en_or_zh_tokens(text: str) -> list[str]:
    norm = normalize(text)
    toks: list[str] = []
    for w in jieba_words(norm):
        w = w.strip()
        if w and (w.isalnum() or any("\u4e00" <= c <= "\u9fff" for c in w)):
            toks.append(w)
    return toks


class Baseline:
    """A baseline scorer: ``scores(text) -> per-entry scores``; confidence = top score."""

    name = "baseline"

    def scores(self, text: str) -> np.ndarray:
        raise NotImplementedError


class Bm25JiebaBaseline(Baseline):
    """rank-bm25 (BM25Okapi) over jieba tokens; one document per phrasing, max per entry."""

    name = "BM25 (rank-bm25, jieba tokens)"

    def __init__(self, entries: Sequence[KbEntry]):
        from rank_bm25 import BM25Okapi

        self.owner: list[int] = []
        docs: list[list[str]] = []
        for i, e in enumerate(entries):
            for q in e.questions:
                docs.append(_en_or_zh_tokens(q) or ["_"])
                self.owner.append(i)
        self.n = len(entries)
        self.bm25 = BM25Okapi(docs)
        self.owner_arr = np.asarray(self.owner)

    def scores(self, text: str) -> np.ndarray:
        s = np.asarray(self.bm25.get_scores(_en_or_zh_tokens(text)), dtype=np.float64)
        out = np.full(self.n, -np.inf)
        np.maximum.at(out, self.owner_arr, s)
        return out


class CharTfidfBaseline(Baseline):
    """Character 1-4-gram TF-IDF (sublinear tf, l2 norm) with cosine; max over phrasings."""

    name = "char TF-IDF (1-4-grams, cosine)"

    def __init__(self, entries: Sequence[KbEntry], ngram: tuple[int, int] = (1, 4)):
        self.lo, self.hi = ngram
        self.vocab: dict[str, int] = {}
        rows: list[Counter[str]] = []
        owner: list[int] = []
        for i, e in enumerate(entries):
            for q in e.questions:
                rows.append(self._grams(q))
                owner.append(i)
        for c in rows:
            for g in c:
                self.vocab.setdefault(g, len(self.vocab))
        df = np.zeros(len(self.vocab))
        for c in rows:
            for g in c:
                df[self.vocab[g]] += 1
        n = len(rows)
        self.idf = np.log((1 + n) / (1 + df)) + 1
        self.matrix = self._matrix(rows)
        self.owner = np.asarray(owner)
        self.n = len(entries)

    def _grams(self, text: str) -> Counter[str]:
        t = " " + " ".join(normalize(text).split()) + " "
        return Counter(t[i : i + k] for k in range(self.lo, self.hi + 1) for i in range(len(t) - k + 1))

    def _matrix(self, rows: list[Counter[str]]) -> sp.csr_matrix:
        r: list[int] = []
        c: list[int] = []
        v: list[float] = []
        for i, counter in enumerate(rows):
            for g, cnt in counter.items():
                j = self.vocab.get(g)
                if j is not None:
                    r.append(i)
                    c.append(j)
                    v.append((1 + math.log(cnt)) * self.idf[j])
        m = sp.csr_matrix((v, (r, c)), shape=(len(rows), len(self.vocab)))
        norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
        norms[norms == 0] = 1
        return sp.csr_matrix(sp.diags(1 / norms) @ m)

    def scores(self, text: str) -> np.ndarray:
        q = self._matrix([self._grams(text)])
        s = np.asarray((self.matrix @ q.T).todense()).ravel()
        out = np.full(self.n, -np.inf)
        np.maximum.at(out, self.owner, s)
        return out


def eval_baseline(
    baseline: Baseline, entries: Sequence[KbEntry], queries: Sequence[Query]
) -> dict[str, float]:
    """top-1 and AUROC (top score as confidence) of a baseline on labelled queries."""
    import time

    topics = [e.topic for e in entries]
    pos_conf: list[float] = []
    neg_conf: list[float] = []
    hits = 0
    n_pos = 0
    lat: list[float] = []
    for q in queries:
        t0 = time.perf_counter()
        s = baseline.scores(q["text"])
        lat.append((time.perf_counter() - t0) * 1000)
        best = int(np.argmax(s))
        conf = float(s[best]) if np.isfinite(s[best]) else 0.0
        if q["expect_topic"] is None:
            neg_conf.append(conf)
        else:
            n_pos += 1
            hits += int(topics[best] == q["expect_topic"])
            pos_conf.append(conf)
    return {
        "top1": hits / n_pos if n_pos else float("nan"),
        "auroc": auroc(pos_conf, neg_conf),
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
    }


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table."""

    def cell(x: Any) -> str:
        if isinstance(x, float):
            return "n/a" if x != x else f"{x:.3f}"
        return str(x)

    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(cell(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    import time

    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0
