"""FAQ matcher: lexical BM25 (+ optional semantic fusion), calibrated confidence, per-locale threshold.

Usage::

    index = KnowledgeIndex.build(entries)
    decision = index.decide("保养多久做一次？")   # locale detected from the text
    if decision.answer: reply(decision.top.entry.answer)

Scoring, per query:

1. Lexical: normalised BM25 of every entry (``knowledge.lexical``): a sparse product over the
   phrasings (best phrasing per entry) and one over the entries (phrasings concatenated).
2. Semantic (``MatcherConfig.semantic`` "auto" / "on", with the ``semantic`` extra): the query's
   embedding against each entry's mean phrasing embedding, both centred on the locale's mean
   phrasing (which separates topics of one domain far better than raw cosine); one dense product
   per encoder, so the cost does not grow with phrasings. Default encoder: multilingual USE; e5 can
   be added (``encoders=("e5", "use")``) for ~1.7 points of top-1 at ~40 ms more per query.
3. Components are fused by a weighted sum; entries are reduced to topics (max over the topic's
   entries in all locales; the returned entry is the one in the asked locale).
4. The top topic's features (fused score, lexical coverage, raw cosine, ...) go through a logistic
   calibration (``knowledge.calibration``) into a confidence in [0, 1]; the bot answers iff the
   confidence reaches the locale's threshold.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from knowledge.calibration import Calibration, shipped_calibration
from knowledge.lexical import LexicalIndex, LexicalParams
from knowledge.tokenize import detect_locale

CATEGORIES = ("sales", "service", "factory", "complaint", "general")
LOCALES = ("zh-CN", "en")

__all__ = [
    "CATEGORIES",
    "LOCALES",
    "Decision",
    "KbEntry",
    "KnowledgeIndex",
    "Match",
    "MatcherConfig",
    "detect_locale",
]

SemanticMode = Literal["auto", "off", "on"]
DEFAULT_ENCODERS: tuple[str, ...] = ("use",)  # e5 adds ~1.7 points top-1 at ~40 ms per query
DEFAULT_LEXICAL = LexicalParams()


@dataclass(frozen=True)
class KbEntry:
    key: str
    topic: str
    category: str
    locale: str
    questions: tuple[str, ...]
    answer: str


@dataclass(frozen=True)
class Match:
    entry: KbEntry
    score: float  # calibrated confidence in [0, 1]


@dataclass(frozen=True)
class Decision:
    answer: bool
    top: Match | None
    matches: list[Match]
    threshold: float
    locale: str


@dataclass(frozen=True)
class MatcherConfig:
    """How to build an index. ``thresholds`` overrides the shipped per-locale thresholds."""

    semantic: SemanticMode = "auto"
    encoders: tuple[str, ...] = DEFAULT_ENCODERS
    thresholds: Mapping[str, float] | None = field(default=None, hash=False)
    lexical: LexicalParams = DEFAULT_LEXICAL
    calibration: Calibration | None = None  # None: the shipped one for the active mode
    shortlist: int = 48  # entries scored max-over-phrasings by the semantic models


@dataclass(frozen=True)
class _Scored:
    """Per-topic fused scores of one query, before calibration."""

    topic_scores: np.ndarray
    coverage: float


class _SemanticPart:
    """Entry-level vectors of one encoder.

    ``mean_vecs[e]`` is the mean of entry e's phrasing embeddings after subtracting the mean phrasing of
    the entry's locale (and re-normalising); the query is centred the same way, so the dot product is
    the mean centred cosine, which separates topics of one domain much better than raw cosine.
    ``raw_vecs[e]`` is the plain mean of the normalised phrasing embeddings: its dot product with the
    raw query is the mean cosine, a domain-level similarity used as a calibration feature.
    """

    def __init__(self, name: str, doc_vecs: np.ndarray, entry_locales: list[str], counts: np.ndarray):
        self.name = name
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        doc_locale = np.repeat(np.asarray(entry_locales, dtype=object), counts)
        n_entries = len(entry_locales)
        # Centre per locale; shrink towards no centring for tiny knowledge bases.
        shrink = min(1.0, n_entries / 10.0)
        self.means: dict[str, np.ndarray] = {}
        for loc in sorted(set(entry_locales)):
            self.means[loc] = (shrink * doc_vecs[doc_locale == loc].mean(axis=0)).astype(np.float32)
        self.global_mean = (shrink * doc_vecs.mean(axis=0)).astype(np.float32)
        centred = np.empty_like(doc_vecs)
        for loc, mu in self.means.items():
            rows = doc_locale == loc
            centred[rows] = doc_vecs[rows] - mu
        centred /= np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-12)
        per = counts.astype(np.float32)[:, None]
        self.mean_vecs = (np.add.reduceat(centred, starts, axis=0) / per).astype(np.float32)
        self.raw_vecs = (np.add.reduceat(doc_vecs, starts, axis=0) / per).astype(np.float32)

    def scores(self, q: np.ndarray, locale: str | None) -> tuple[np.ndarray, np.ndarray]:
        """(mean centred cosine, mean raw cosine) of the query to every entry."""
        mu = self.means.get(locale or "", self.global_mean)
        qc = q - mu
        qc = qc / max(float(np.linalg.norm(qc)), 1e-12)
        return self.mean_vecs @ qc, self.raw_vecs @ q

    @property
    def nbytes(self) -> int:
        return int(self.mean_vecs.nbytes + self.raw_vecs.nbytes)


def calibration_key(encoders: tuple[str, ...]) -> str:
    """Key of the shipped calibration: "lexical", "semantic" (e5 + USE) or e.g. "semantic-use"."""
    if not encoders:
        return "lexical"
    if sorted(encoders) == ["e5", "use"]:
        return "semantic"
    return "semantic-" + "+".join(sorted(encoders))


def _semantic_enabled(config: MatcherConfig) -> tuple[str, ...]:
    from knowledge.semantic import encoder_available

    if config.semantic == "off":
        return ()
    names = tuple(config.encoders)
    if config.semantic == "on":
        missing = [n for n in names if not encoder_available(n)]
        if missing:
            raise ImportError(f"semantic matching needs {', '.join(missing)}: pip install 'butler[semantic]'")
        return names
    return names if names and all(encoder_available(n) for n in names) else ()


class KnowledgeIndex:
    """An immutable, thread-safe search index over FAQ entries (rebuild it to change entries)."""

    def __init__(
        self,
        entries: tuple[KbEntry, ...],
        lexical: LexicalIndex,
        semantic: tuple[_SemanticPart, ...],
        calibration: Calibration,
        config: MatcherConfig,
    ) -> None:
        self.entries = entries
        self.lexical = lexical
        self.semantic = semantic
        self.calibration = calibration
        self.config = config
        self.mode = "semantic" if semantic else "lexical"
        weights = dict(calibration.fusion) or {"lex": 1.0}
        self.fusion = weights
        # Entries are stored grouped by topic.
        topics: list[str] = []
        starts: list[int] = []
        for i, e in enumerate(entries):
            if not topics or topics[-1] != e.topic:
                topics.append(e.topic)
                starts.append(i)
        self.topics = tuple(topics)
        self.topic_starts = np.asarray(starts, dtype=np.int64)
        self.entry_topic = np.repeat(
            np.arange(len(topics)), np.diff(np.append(self.topic_starts, len(entries)))
        ).astype(np.int64)
        self.locale_entry: dict[str, np.ndarray] = {}
        self._one_per_locale = True
        for loc in sorted({e.locale for e in entries}):
            arr = np.full(len(topics), -1, dtype=np.int64)
            for i, e in enumerate(entries):
                if e.locale == loc:
                    if arr[self.entry_topic[i]] >= 0:
                        self._one_per_locale = False  # two entries of one topic in one locale
                    arr[self.entry_topic[i]] = i
            self.locale_entry[loc] = arr
        thresholds = dict(calibration.thresholds)
        if config.thresholds:
            thresholds.update(config.thresholds)
        self.thresholds = thresholds

    # ---------------------------------------------------------------- build
    @classmethod
    def build(cls, entries: Iterable[KbEntry], *, config: MatcherConfig | None = None) -> KnowledgeIndex:
        config = config or MatcherConfig()
        items = [e for e in entries if e.questions]
        keys = [e.key for e in items]
        if len(set(keys)) != len(keys):
            dupes = sorted({k for k in keys if keys.count(k) > 1})
            raise ValueError(f"duplicate entry keys: {', '.join(dupes[:5])}")
        # Group by topic, keeping first-seen topic order.
        order: dict[str, int] = {}
        for e in items:
            order.setdefault(e.topic, len(order))
        ordered = tuple(sorted(items, key=lambda e: order[e.topic]))
        encoders = _semantic_enabled(config)
        calibration = config.calibration or shipped_calibration(calibration_key(encoders))
        if ordered:
            lexical = LexicalIndex.build([e.questions for e in ordered], config.lexical)
        else:
            lexical = LexicalIndex.build([["-"]], config.lexical)
        parts: list[_SemanticPart] = []
        if encoders and ordered:
            from knowledge.semantic import get_encoder

            counts = np.asarray([len(e.questions) for e in ordered], dtype=np.int64)
            texts = [q for e in ordered for q in e.questions]
            locales = [e.locale for e in ordered]
            for name in encoders:
                vecs = get_encoder(name).encode_phrasings(texts)
                parts.append(_SemanticPart(name, vecs, locales, counts))
        return cls(ordered, lexical, tuple(parts), calibration, config)

    def __len__(self) -> int:
        return len(self.entries)

    # ---------------------------------------------------------------- scoring
    def _entry_scores(self, text: str, locale: str | None) -> tuple[np.ndarray, dict[str, np.ndarray], float]:
        """Fused score of every entry, the components (for calibration features), lexical coverage."""
        lex = self.lexical.score(text)
        comps: dict[str, np.ndarray] = {"lex": lex.unit_scores}
        fused = self.fusion.get("lex", 1.0) * lex.unit_scores.astype(np.float32)
        if self.semantic:
            from knowledge.semantic import get_encoder, single_thread_blas

            loc = locale or detect_locale(text)
            for part in self.semantic:
                with single_thread_blas():
                    q = get_encoder(part.name).encode_queries([text])[0]
                    mean, raw = part.scores(q, loc)
                comps[part.name + "_mean"] = mean
                comps[part.name + "_raw"] = raw
                fused = fused + self.fusion.get(part.name + "_mean", 0.0) * mean
        return fused, comps, lex.coverage

    def _topic_scores(self, entry_scores: np.ndarray) -> np.ndarray:
        """Max over each topic's entries: one gather per locale when a topic has one entry per locale."""
        if self._one_per_locale:
            out = np.full(len(self.topics), -np.inf, dtype=np.float32)
            for arr in self.locale_entry.values():
                have = arr >= 0
                vals = np.where(have, entry_scores[np.where(have, arr, 0)], -np.inf)
                np.maximum(out, vals, out=out)
            return out
        return np.asarray(np.maximum.reduceat(entry_scores, self.topic_starts), dtype=np.float32)

    def _candidates(
        self, topic_scores: np.ndarray, locale: str | None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Topic scores with topics lacking the locale masked out, and the locale's entry per topic."""
        if locale is None or locale not in self.locale_entry:
            return topic_scores, None
        entry_of = self.locale_entry[locale]
        masked = np.where(entry_of >= 0, topic_scores, -np.inf).astype(np.float32)
        return masked, entry_of

    def candidates(self, text: str, *, locale: str | None = None, k: int = 3) -> list[dict[str, float]]:
        """Best topics with their entry index and raw features (score, margin, coverage, ...).

        Each item: ``entry`` (index into ``self.entries``), ``score`` (fused), ``margin`` (to the best
        other topic), ``coverage``, and the per-topic components (``lex``, ``e5_raw`` ...).
        """
        if not self.entries or not text.strip():
            return []
        entry_scores, comps, coverage = self._entry_scores(text, locale)
        topic_scores = self._topic_scores(entry_scores)
        masked, entry_of = self._candidates(topic_scores, locale)
        n_top = len(self.topics)
        kk = min(max(k, 2), n_top)
        part = np.argpartition(-masked, kk - 1)[:kk] if kk < n_top else np.arange(n_top)
        best = [int(t) for t in part[np.argsort(-masked[part], kind="stable")] if np.isfinite(masked[t])]
        scores = [float(masked[t]) for t in best]
        out: list[dict[str, float]] = []
        for i, t in enumerate(best):
            lo = int(self.topic_starts[t])
            hi = int(self.topic_starts[t + 1]) if t + 1 < n_top else len(self.entries)
            if entry_of is not None:
                ei = int(entry_of[t])
            else:
                ei = lo + int(np.argmax(entry_scores[lo:hi]))
            other = (scores[1] if len(scores) > 1 else 0.0) if i == 0 else scores[0]
            feats: dict[str, float] = {
                "entry": float(ei),
                "score": scores[i],
                "margin": scores[i] - other,
                "coverage": coverage,
            }
            for name, arr in comps.items():
                feats[name] = float(arr[lo:hi].max())
            out.append(feats)
        return out[:k]

    def search(self, text: str, *, locale: str | None = None, k: int = 3) -> list[Match]:
        """Best matches first, one per topic; ``locale`` restricts to topics that have that locale."""
        out: list[Match] = []
        for feats in self.candidates(text, locale=locale, k=k):
            conf = self.calibration.confidence(feats)
            out.append(Match(self.entries[int(feats["entry"])], round(conf, 6)))
        return out

    def threshold(self, locale: str) -> float:
        if locale in self.thresholds:
            return float(self.thresholds[locale])
        return self.calibration.threshold(locale)

    def decide(self, text: str, *, locale: str | None = None) -> Decision:
        """Answer iff the top match's confidence reaches the locale's threshold."""
        loc = locale or detect_locale(text)
        matches = self.search(text, locale=loc, k=3)
        top = matches[0] if matches else None
        thr = self.threshold(loc)
        return Decision(
            answer=top is not None and top.score >= thr, top=top, matches=matches, threshold=thr, locale=loc
        )

    def memory_bytes(self) -> int:
        """Approximate size of the index arrays (sparse matrices and vectors), in bytes."""
        total = self.lexical.nbytes
        total += sum(p.nbytes for p in self.semantic)
        return int(total)
