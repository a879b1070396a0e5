"""Turn raw match scores into a confidence in [0, 1] (logistic regression, fitted with numpy).

The features of a match are its fused score, its margin to the best other topic, the share of
the query's idf mass that the index knows at all and, with the semantic models, the plain (not
centred) mean cosine of the query to the topic's phrasings per model. The model is fitted by
Newton's method (IRLS) with a small L2 penalty; labels are 1 when the top match was the right
topic and 0 otherwise (a wrong topic or a query that had to be handed off). Parameters and
per-locale thresholds ship as ``knowledge/data/calibration.json``, written by
``bench/kb_calibrate.py``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

CALIBRATION_PATH = Path(__file__).parent / "data" / "calibration.json"

LEXICAL_FEATURES = ("score", "margin", "coverage")
SEMANTIC_FEATURES = ("score", "margin", "coverage", "e5_raw", "use_raw")


@dataclass(frozen=True)
class Calibration:
    """Logistic model over named features plus per-locale answer thresholds on its output.

    ``fusion`` holds the weights of the score components that the matcher adds up to rank topics.
    """

    features: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float
    thresholds: Mapping[str, float] = field(default_factory=dict, hash=False)
    fusion: Mapping[str, float] = field(default_factory=dict, hash=False)

    def confidence(self, feats: Mapping[str, float]) -> float:
        """Confidence of one match from its named features (missing features count as 0)."""
        z = self.bias + sum(
            w * float(feats.get(f, 0.0)) for f, w in zip(self.features, self.weights, strict=True)
        )
        return float(1.0 / (1.0 + np.exp(-np.clip(z, -50, 50))))

    def confidences(self, matrix: np.ndarray) -> np.ndarray:
        """Confidences of many matches; columns of ``matrix`` in ``self.features`` order."""
        z = np.asarray(matrix, dtype=np.float64) @ np.asarray(self.weights) + self.bias
        return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -50, 50))))

    def threshold(self, locale: str) -> float:
        if locale in self.thresholds:
            return float(self.thresholds[locale])
        if self.thresholds:
            return float(max(self.thresholds.values()))
        return 0.5

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": list(self.features),
            "weights": [round(w, 6) for w in self.weights],
            "bias": round(self.bias, 6),
            "thresholds": {k: round(v, 4) for k, v in self.thresholds.items()},
            "fusion": {k: round(v, 4) for k, v in self.fusion.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        return cls(
            features=tuple(str(f) for f in data["features"]),
            weights=tuple(float(w) for w in data["weights"]),
            bias=float(data["bias"]),
            thresholds={str(k): float(v) for k, v in data.get("thresholds", {}).items()},
            fusion={str(k): float(v) for k, v in data.get("fusion", {}).items()},
        )


def fit_logistic(
    x: np.ndarray,
    y: np.ndarray,
    *,
    l2: float = 1e-2,
    iterations: int = 50,
    sample_weight: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """Weighted L2-regularised logistic regression by Newton's method; returns (weights, bias)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, d = x.shape
    sw = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    xb = np.hstack([x, np.ones((n, 1))])
    beta = np.zeros(d + 1)
    reg = np.full(d + 1, l2)
    reg[-1] = 0.0  # no penalty on the bias
    for _ in range(iterations):
        z = np.clip(xb @ beta, -50, 50)
        p = 1.0 / (1.0 + np.exp(-z))
        grad = xb.T @ (sw * (p - y)) + reg * beta
        w = sw * p * (1 - p)
        hess = (xb * w[:, None]).T @ xb + np.diag(reg) + 1e-9 * np.eye(d + 1)
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return beta[:-1], float(beta[-1])


def threshold_for_precision(confidence: ArrayLike, correct: ArrayLike, target: float) -> float:
    """Lowest threshold whose answered set reaches ``target`` precision (1.0 if none does)."""
    conf = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(correct, dtype=bool)
    order = np.argsort(-conf, kind="stable")
    hits = np.cumsum(ok[order])
    precision = hits / np.arange(1, len(conf) + 1)
    good = np.nonzero(precision >= target)[0]
    if good.size == 0:
        return 1.0
    # The longest prefix that still meets the target; avoid splitting ties.
    cut = int(good[-1])
    return float(conf[order][cut])


@lru_cache(maxsize=1)
def _shipped() -> dict[str, Any]:
    if not CALIBRATION_PATH.exists():
        return {}
    data: dict[str, Any] = json.loads(CALIBRATION_PATH.read_text(encoding="utf-8"))
    return data


# Used only when the shipped JSON lacks a mode: hand-set models that answer confident matches.
_FALLBACK = {
    "lexical": Calibration(
        features=("score",),
        weights=(6.0,),
        bias=-4.0,
        thresholds={"zh-CN": 0.7, "en": 0.8},
        fusion={"lex": 1.0},
    ),
    "semantic": Calibration(
        features=("score",),
        weights=(6.0,),
        bias=-4.0,
        thresholds={"zh-CN": 0.7, "en": 0.8},
        fusion={"lex": 0.25, "e5_mean": 1.0, "use_mean": 1.0},
    ),
}


def shipped_calibration(mode: str) -> Calibration:
    """The calibration shipped for ``mode``: "lexical" or "semantic"."""
    data = _shipped().get(mode)
    if data is None:
        return _FALLBACK.get(mode, _FALLBACK["lexical"])
    return Calibration.from_dict(data)
