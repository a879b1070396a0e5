"""The demo knowledge base: every phrasing verbatim and with typos, held-out paraphrases, off-topic.

    .venv/bin/python bench/kb_demo.py [--mode lexical|semantic|all] [--typos 2]

Per locale:
- verbatim: every phrasing of every entry asked as is (must find its own topic);
- typos: ``--typos`` variants per phrasing with 1-2 character edits (``evaluation.typo_variants``);
- held-out: leave-one-phrasing-out (phrasing i of every entry removed from the index, then asked),
  a paraphrase test on the demo data;
- off-topic: questions the bot must hand off (zh: a hand-written list not used for tuning; en: CLINC
  test queries of other domains), reported as the share handed off at the threshold.
Baselines (same run): BM25 over jieba tokens and char TF-IDF, top-1 only.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kb_common import Bm25JiebaBaseline, CharTfidfBaseline, clinc_test, demo_entries, machine, table

from knowledge.evaluation import typo_variants
from knowledge.matcher import KbEntry, KnowledgeIndex, MatcherConfig
from knowledge.semantic import encoder_available

ZH_OFF_TOPIC_TEST = [
    "帮我查一下明天北京的天气",
    "附近有好吃的川菜馆吗",
    "给我推荐一首歌",
    "怎么煮米饭比较好吃",
    "我想学游泳去哪里报名",
    "今天是星期几",
    "帮我订两张电影票",
    "手机屏幕碎了去哪修",
    "信用卡怎么提高额度",
    "孩子发烧了怎么办",
    "最近的地铁站在哪",
    "怎么注册一个邮箱",
    "帮我查一下航班动态",
    "哪里可以买到便宜的机票",
    "给我讲一个故事",
    "家里的猫不吃饭怎么办",
    "电脑开不了机怎么办",
    "明天股市会涨吗",
    "帮我找一家牙科诊所",
    "怎么做蛋炒饭",
]


def _held_out(entries: list[KbEntry], fold: int) -> tuple[list[KbEntry], list[dict[str, Any]]]:
    kept: list[KbEntry] = []
    queries: list[dict[str, Any]] = []
    for e in entries:
        if len(e.questions) > fold and len(e.questions) >= 2:
            rest = tuple(q for i, q in enumerate(e.questions) if i != fold)
            kept.append(KbEntry(e.key, e.topic, e.category, e.locale, rest, e.answer))
            queries.append({"text": e.questions[fold], "key": e.key, "locale": e.locale})
        else:
            kept.append(e)
    return kept, queries


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=["lexical", "semantic", "all"], default="all")
    ap.add_argument("--typos", type=int, default=2)
    args = ap.parse_args(argv)
    print(f"machine: {machine()}")
    entries = demo_entries()
    rng = random.Random(20261122)
    verbatim = [{"text": q, "key": e.key, "locale": e.locale} for e in entries for q in e.questions]
    typos = [
        {"text": t, "key": e.key, "locale": e.locale}
        for e in entries
        for q in e.questions
        for t in typo_variants(q, args.typos, rng)
    ]
    en_off = [q["text"] for q in clinc_test() if q["expect_topic"] is None][::50]
    off = [{"text": t, "locale": "zh-CN"} for t in ZH_OFF_TOPIC_TEST] + [
        {"text": t, "locale": "en"} for t in en_off
    ]
    print(
        f"demo KB: {len(entries)} entries, {len(verbatim)} phrasings, {len(typos)} typo variants,"
        f" {len(off)} off-topic questions"
    )

    modes: list[tuple[str, MatcherConfig]] = []
    if args.mode in ("lexical", "all"):
        modes.append(("Butler lexical", MatcherConfig(semantic="off")))
    if args.mode in ("semantic", "all"):
        if all(encoder_available(n) for n in ("e5", "use")):
            modes.append(("Butler semantic", MatcherConfig(semantic="on")))
        else:
            print("semantic extra not installed: semantic rows skipped")

    rows: list[list[Any]] = []
    for name, config in modes:
        index = KnowledgeIndex.build(entries, config=config)
        for loc in ("zh-CN", "en"):

            def top1(idx: KnowledgeIndex, qs: list[dict[str, Any]], loc: str = loc) -> tuple[float, float]:
                sel = [q for q in qs if q["locale"] == loc]
                hit = answered = 0
                for q in sel:
                    d = idx.decide(q["text"], locale=loc)
                    ok = d.top is not None and d.top.entry.key == q["key"]
                    hit += ok
                    answered += ok and d.answer
                return hit / len(sel), answered / len(sel)

            v, v_ans = top1(index, verbatim)
            t, t_ans = top1(index, typos)
            held: list[float] = []
            for fold in range(3):
                kept, qs = _held_out(entries, fold)
                held.append(top1(KnowledgeIndex.build(kept, config=config), qs)[0])
            off_loc = [q for q in off if q["locale"] == loc]
            handed = sum(not index.decide(q["text"], locale=loc).answer for q in off_loc) / len(off_loc)
            rows.append(
                [
                    name,
                    loc,
                    f"{v:.3f} ({v_ans:.3f})",
                    f"{t:.3f} ({t_ans:.3f})",
                    sum(held) / len(held),
                    handed,
                    f"{index.threshold(loc):.3f}",
                ]
            )
    for cls in (Bm25JiebaBaseline, CharTfidfBaseline):
        for loc in ("zh-CN", "en"):
            loc_entries = [e for e in entries if e.locale == loc]
            base = cls(loc_entries)
            keys = [e.key for e in loc_entries]

            def base_top1(b: Any, ks: list[str], qs: list[dict[str, Any]], loc: str = loc) -> float:
                sel = [q for q in qs if q["locale"] == loc]
                return sum(ks[int(b.scores(q["text"]).argmax())] == q["key"] for q in sel) / len(sel)

            held = []
            for fold in range(3):
                kept, qs = _held_out(loc_entries, fold)
                held.append(base_top1(cls(kept), [e.key for e in kept], qs))
            rows.append(
                [
                    f"baseline: {base.name}",
                    loc,
                    f"{base_top1(base, keys, verbatim):.3f}",
                    f"{base_top1(base, keys, typos):.3f}",
                    sum(held) / len(held),
                    "-",
                    "-",
                ]
            )
    print()
    print(
        table(
            [
                "method",
                "locale",
                "verbatim top-1 (answered)",
                "typos top-1 (answered)",
                "held-out top-1",
                "off-topic handed off",
                "threshold",
            ],
            rows,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
