"""BM25 over a sparse inverted index (scipy CSR), with per-query score normalisation.

Documents are grouped into units (one unit = one FAQ entry, several phrasing documents). Two views
are scored with one sparse product each:

- every phrasing on its own, reduced to the unit by max (a query that paraphrases one phrasing), and
- the unit as one document, all its phrasings concatenated (a query that mixes words of several).

Scores are normalised by the query's own idf mass, where a query term that the index has never seen
counts with the largest idf. So a query that is half unknown words cannot score above about 0.5:
that is what makes the score usable for the hand-off decision, not only for ranking.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from knowledge.tokenize import SpellingCorrector, features, features_uncached

# Channel weights: English words, char 3-grams, one-deletion variants; Chinese words, bigrams, unigrams.
DEFAULT_CHANNEL_WEIGHTS: dict[str, float] = {"w": 1.0, "c": 0.6, "z": 0.7, "b": 0.8, "u": 0.6}


@dataclass(frozen=True)
class LexicalParams:
    k1: float = 1.5
    b: float = 0.5
    channel_weights: tuple[tuple[str, float], ...] = tuple(DEFAULT_CHANNEL_WEIGHTS.items())
    unit_weight: float = 0.8  # weight of the concatenated-unit view against max over phrasings
    phrasing_floor: float = 1.0  # fused score >= this x best single-phrasing score (0: off)
    exact_max_docs: int = 20000  # above this many phrasings, max-over-phrasings for a shortlist only
    phrasing_candidates: int = 256  # shortlist size (units) for the large-base path
    spelling: bool = True  # also score unknown English words as the closest known word
    correction_weight: float = 0.5  # weight of features that only the corrected spelling has


@dataclass(frozen=True)
class LexicalScores:
    unit_scores: np.ndarray  # (n_units,) fused normalised score
    coverage: float  # share of the query's idf mass the index knows at all


class LexicalIndex:
    """Sparse BM25 index over phrasings, reduced to units (entries)."""

    def __init__(
        self,
        vocab: dict[str, int],
        idf: np.ndarray,
        max_idf: float,
        doc_matrix: sp.csr_matrix,
        unit_matrix: sp.csr_matrix,
        doc_unit_starts: np.ndarray,
        n_units: int,
        params: LexicalParams,
    ) -> None:
        self.vocab = vocab
        self.idf = idf
        self.max_idf = max_idf
        self.doc_matrix = doc_matrix  # (n_terms, n_docs)
        self.unit_matrix = unit_matrix  # (n_terms, n_units)
        self.doc_unit_starts = doc_unit_starts  # docs are sorted by unit; start offset of each unit
        self.n_units = n_units
        self.params = params
        self._weights = dict(params.channel_weights)
        self.speller: SpellingCorrector | None = None

    @classmethod
    def build(cls, units: Sequence[Sequence[str]], params: LexicalParams | None = None) -> LexicalIndex:
        """Index ``units[i]`` = the phrasings of unit i (each unit needs at least one phrasing)."""
        params = params or LexicalParams()
        vocab: dict[str, int] = {}
        term_ids: list[int] = []
        lengths: list[int] = []
        per_unit: list[int] = []
        texts: list[str] = []
        for u, phrasings in enumerate(units):
            if not phrasings:
                raise ValueError(f"unit {u} has no phrasings")
            per_unit.append(len(phrasings))
            for text in phrasings:
                ids = [vocab.setdefault(f, len(vocab)) for f in features_uncached(text)]
                term_ids.extend(ids)
                lengths.append(len(ids))
                texts.append(text)
        n_terms = max(len(vocab), 1)
        n_units = len(units)
        n_docs = len(lengths)
        cols = np.asarray(term_ids, dtype=np.int64)
        doc_of = np.repeat(np.arange(n_docs, dtype=np.int64), lengths)
        unit_counts = np.asarray(per_unit, dtype=np.int64)
        unit_of_doc = np.repeat(np.arange(n_units, dtype=np.int64), unit_counts)
        ones = np.ones(cols.size, dtype=np.float64)
        # Term frequencies per phrasing and per unit (all phrasings of an entry concatenated).
        doc_tf = sp.csr_matrix((ones, (doc_of, cols)), shape=(n_docs, n_terms))
        unit_tf = sp.csr_matrix((ones, (unit_of_doc[doc_of], cols)), shape=(n_units, n_terms))
        doc_tf.sum_duplicates()
        unit_tf.sum_duplicates()
        # Document frequency counted over units, so that a word repeated in every phrasing of its own
        # entry is not penalised for that.
        df = np.bincount(unit_tf.indices, minlength=n_terms).astype(np.float64)
        idf = np.log1p((n_units - df + 0.5) / (df + 0.5))
        max_idf = math.log1p((n_units + 0.5) / 0.5)
        channels = sorted({f[0] for f in vocab})
        chan_of_term = np.zeros(n_terms, dtype=np.int64)
        for f, i in vocab.items():
            chan_of_term[i] = channels.index(f[0])
        doc_matrix = cls._bm25_matrix(doc_tf, idf, chan_of_term, len(channels), params)
        unit_matrix = cls._bm25_matrix(unit_tf, idf, chan_of_term, len(channels), params)
        starts = np.concatenate([[0], np.cumsum(unit_counts)[:-1]]).astype(np.int64)
        index = cls(vocab, idf.astype(np.float32), max_idf, doc_matrix, unit_matrix, starts, n_units, params)
        if params.spelling:
            index.speller = SpellingCorrector.from_texts(texts)
        return index

    @staticmethod
    def _bm25_matrix(
        tf_matrix: sp.csr_matrix,
        idf: np.ndarray,
        chan_of_term: np.ndarray,
        n_chan: int,
        params: LexicalParams,
    ) -> sp.csr_matrix:
        """(n_terms, n_docs) BM25 weights from a (n_docs, n_terms) tf matrix; length is per channel."""
        coo = tf_matrix.tocoo()
        rows = coo.row.astype(np.int64)
        cols = coo.col.astype(np.int64)
        tf = coo.data
        n_docs = tf_matrix.shape[0]
        chan = chan_of_term[cols]
        # Length of each document in each channel, and the average over documents having the channel.
        lens = np.bincount(rows * n_chan + chan, weights=tf, minlength=n_docs * n_chan)
        lens = lens.reshape(n_docs, n_chan)
        present = (lens > 0).sum(axis=0)
        avg = lens.sum(axis=0) / np.maximum(present, 1)
        rel_len = lens[rows, chan] / np.maximum(avg[chan], 1e-9)
        k1, b = params.k1, params.b
        weight = idf[cols] * tf * (k1 + 1) / (tf + k1 * (1 - b + b * rel_len))
        return sp.csr_matrix((weight.astype(np.float32), (cols, rows)), shape=(tf_matrix.shape[1], n_docs))

    def query_vector(self, text: str) -> tuple[np.ndarray, np.ndarray, float]:
        """Term ids and weights of the normalised query, and the known share of its idf mass.

        The known share (coverage) is measured on the words of the query as typed (before spelling
        correction): a query full of words the knowledge base never uses is probably off-topic.
        """
        feats = set(features(text))
        coverage = self._coverage(feats)
        extra: set[str] = set()
        if self.speller is not None:
            corrected = self.speller.correct(text)
            if corrected != text:
                # Both spellings count, the correction at a discount: the typo'd query still finds
                # its topic, and an off-topic word "corrected" into a known one does not score high.
                extra = set(features(corrected)) - feats
                feats |= extra
        by_chan: dict[str, list[str]] = {}
        for f in feats:
            by_chan.setdefault(f[0], []).append(f)
        total_w = sum(self._weights.get(ch, 0.0) for ch in by_chan)
        if total_w <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32), 0.0
        ids: list[int] = []
        weights: list[float] = []
        for ch, fs in by_chan.items():
            cw = self._weights.get(ch, 0.0)
            if cw <= 0:
                continue
            chan_ids = [self.vocab.get(f, -1) for f in fs]
            idfs = [float(self.idf[i]) if i >= 0 else self.max_idf for i in chan_ids]
            mass = sum(idfs)
            share = cw / total_w
            for f, i in zip(fs, chan_ids, strict=True):
                if i >= 0:
                    ids.append(i)
                    weights.append(share / mass * (self.params.correction_weight if f in extra else 1.0))
        return np.asarray(ids, dtype=np.int64), np.asarray(weights, dtype=np.float32), coverage

    def _coverage(self, feats: set[str]) -> float:
        """Known share of the idf mass of the query's words (English words and Chinese words)."""
        words = [f for f in feats if f[0] in "wz"] or list(feats)
        if not words:
            return 0.0
        known = 0.0
        total = 0.0
        for f in words:
            i = self.vocab.get(f, -1)
            v = float(self.idf[i]) if i >= 0 else self.max_idf
            total += v
            known += v if i >= 0 else 0.0
        return known / total if total > 0 else 0.0

    def score(self, text: str) -> LexicalScores:
        """Normalised BM25 score of every unit for the query (0 when nothing matches)."""
        ids, weights, coverage = self.query_vector(text)
        if ids.size == 0:
            return LexicalScores(np.zeros(self.n_units, dtype=np.float32), coverage)
        unit_cat = np.asarray(self.unit_matrix[ids].T @ weights, dtype=np.float32)
        doc_scores = np.asarray(self.doc_matrix[ids].T @ weights, dtype=np.float32)
        n_docs = doc_scores.size
        if n_docs <= self.params.exact_max_docs:
            unit_max = np.maximum.reduceat(doc_scores, self.doc_unit_starts)
        else:
            # Large base: the best single phrasing is looked up only for the units that score best
            # as a whole (a unit with one close phrasing is among them), not for all 10,000 units.
            k = min(self.params.phrasing_candidates, self.n_units)
            cand = np.argpartition(-unit_cat, k - 1)[:k]
            starts = self.doc_unit_starts[cand]
            ends = np.append(self.doc_unit_starts, n_docs)[cand + 1]
            counts = ends - starts
            seg = np.concatenate([[0], np.cumsum(counts)[:-1]])
            rows = np.repeat(starts - seg, counts) + np.arange(int(counts.sum()))
            unit_max = np.zeros(self.n_units, dtype=np.float32)
            unit_max[cand] = np.maximum.reduceat(doc_scores[rows], seg)
        uw = self.params.unit_weight
        fused = (1 - uw) * unit_max + uw * unit_cat
        if self.params.phrasing_floor > 0:
            # A query that (nearly) repeats one phrasing scores at least that close match.
            fused = np.maximum(fused, self.params.phrasing_floor * unit_max)
        return LexicalScores(np.asarray(fused, dtype=np.float32), coverage)

    @property
    def nbytes(self) -> int:
        """Bytes held by the sparse matrices and arrays (the vocabulary dict not included)."""
        total = self.idf.nbytes + self.doc_unit_starts.nbytes
        for m in (self.doc_matrix, self.unit_matrix):
            total += m.data.nbytes + m.indices.nbytes + m.indptr.nbytes
        return int(total)
