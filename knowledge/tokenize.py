"""Text normalisation and lexical features for the FAQ matcher (Chinese and English).

Features carry a channel prefix so that one sparse index can hold all of them:

- ``w:`` English word tokens (lower case, light stemming, British spellings folded), stop words dropped
- ``c:`` character 3-grams inside English words, with word boundaries (catches typos)
- ``z:`` Chinese words of jieba's dictionary (plus a car vocabulary) found in the text, overlapping
- ``b:`` Chinese character bigrams, ``u:`` Chinese character unigrams (robust to segmentation and typos)
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import re
import threading
import unicodedata
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

CAR_WORDS_PATH = Path(__file__).parent / "data" / "car_words.txt"

_CJK_RANGES = (
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xF900, 0xFAFF),
    (0x20000, 0x2A6DF),
)
_TOKEN_RE = re.compile(r"(?P<cjk>[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+)|[a-z0-9]+(?:'[a-z]+)?")
_LATIN_WORD_RE = re.compile(r"[a-z0-9]+")

EN_STOPWORDS = frozenset(
    """a an the is are am was were be been being do does did doing have has had having i me my mine
    myself we our ours us you your yours he him his she her it its they them their this that these
    those of to in on at by for with from about as into onto than then so and or but if please pls
    can could would will shall should may might must just also too very really some any there here
    tell let know need want get got go going like kindly hi hello hey thanks thank ok okay im
    s t d ll re ve m""".split()
)
# Question words carry intent ("when" vs "how" to change the oil) and stay in.

ZH_STOPWORDS = frozenset(
    """的 了 吗 呢 吧 啊 呀 哦 嘛 么 我 我们 你 你们 您 他 她 它 是 在 有 和 与
    及 或 就 都 也 还 要 想 请 请问 一下 这个 那个 这 那 个 把 被 给 让 能 能否
    可以 可否 会 该 应该 需要 一 下 啥 些 自己 如何 怎样 怎么""".split()
)

_EN_SPELLING = {
    "tyre": "tire",
    "tyres": "tires",
    "colour": "color",
    "centre": "center",
    "kerb": "curb",
    "licence": "license",
    "programme": "program",
    "favourite": "favorite",
    "cheque": "check",
    "aluminium": "aluminum",
    "organise": "organize",
    "authorised": "authorized",
    "realise": "realize",
    "labour": "labor",
    "metre": "meter",
    "metres": "meters",
    "kilometre": "kilometer",
    "kilometres": "kilometers",
    "kms": "km",
    "cannot": "can not",
    "won't": "will not",
    "can't": "can not",
    "don't": "do not",
    "doesn't": "does not",
    "isn't": "is not",
    "didn't": "did not",
    "wont": "will not",
    "cant": "can not",
    "dont": "do not",
}


_FOLD = {i: i - 0xFEE0 for i in range(0xFF01, 0xFF5F)}  # full-width ASCII -> ASCII
_FOLD.update({0x3000: 0x20, 0x2019: 0x27, 0x2018: 0x27, 0x60: 0x27})


def normalize(text: str) -> str:
    """Lower case, full-width forms folded to ASCII, typographic apostrophes folded.

    Plain ASCII and common CJK text take a fast path (a translate table); anything else with
    compatibility characters gets NFKC.
    """
    if not text.isascii():
        text = text.translate(_FOLD)
        if not text.isascii() and not unicodedata.is_normalized("NFKC", text):
            text = unicodedata.normalize("NFKC", text)
    return text.lower()


def is_cjk(ch: str) -> bool:
    code = ord(ch)
    return any(lo <= code <= hi for lo, hi in _CJK_RANGES)


def detect_locale(text: str) -> str:
    """Return "zh-CN" when CJK characters dominate the text, else "en"."""
    norm = normalize(text)
    cjk = sum(1 for ch in norm if is_cjk(ch))
    if cjk == 0:
        return "en"
    latin_words = len(_LATIN_WORD_RE.findall(norm))
    return "zh-CN" if cjk >= latin_words else "en"


def stem_en(word: str) -> str:
    """A light English stemmer: plural, -ing, -ed, -ly and a final -e are stripped."""
    if len(word) <= 3 or not word.isalpha():
        return word
    w = word
    if w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith("sses"):
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    if w.endswith("ing") and len(w) > 5:
        w = w[:-3]
        if len(w) > 2 and w[-1] == w[-2] and w[-1] not in "lsz":
            w = w[:-1]
    elif w.endswith("ed") and len(w) > 4:
        w = w[:-2]
        if len(w) > 2 and w[-1] == w[-2] and w[-1] not in "lsz":
            w = w[:-1]
    elif w.endswith("ly") and len(w) > 4:
        w = w[:-2]
    if w.endswith("e") and len(w) > 3:
        w = w[:-1]
    return w


_LOAD_LOCK = threading.Lock()
T = TypeVar("T")


def _loaded_once(load: Callable[[], T]) -> Callable[[], T]:
    """`load` runs on first use only, even when several threads ask at once."""
    cached = functools.cache(load)

    def get() -> T:
        with _LOAD_LOCK:
            return cached()

    return get


@_loaded_once
def _jieba() -> Any:
    """jieba with the car vocabulary, for the benchmarks' baselines."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    tok = jieba.Tokenizer()
    tok.initialize()
    if CAR_WORDS_PATH.exists():
        tok.load_userdict(str(CAR_WORDS_PATH))
    return tok


def jieba_words(text: str) -> list[str]:
    """Chinese words (search mode, so long compounds also yield their parts)."""
    return [w for w in _jieba().cut_for_search(text, HMM=True) if w.strip()]


def _dictionary_lines(path: Path) -> Iterator[tuple[str, int]]:
    with path.open(encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if parts:
                yield parts[0], int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 1


ZH_MAX_WORD = 6


@_loaded_once
def zh_words() -> Any:
    """The words of jieba's dictionary (plus the car vocabulary) as one sorted numpy array.

    Only membership is needed, so the 335,000 words of 2-6 characters live in ~8 MB instead of
    jieba's 580,000-entry frequency dict (~43 MB more per process).
    """
    import numpy as np

    # find_spec locates jieba's data without importing (and initialising) jieba.
    spec = importlib.util.find_spec("jieba")
    assert spec is not None and spec.submodule_search_locations
    sources = [Path(spec.submodule_search_locations[0]) / "dict.txt", CAR_WORDS_PATH]
    found = {
        w
        for path in sources
        if path.exists()
        for w, freq in _dictionary_lines(path)
        if freq > 0 and 2 <= len(w) <= ZH_MAX_WORD
    }
    return np.sort(np.array(list(found), dtype=f"<U{ZH_MAX_WORD}"))


def _runs(norm: str) -> Iterator[tuple[bool, str]]:
    for m in _TOKEN_RE.finditer(norm):
        yield m.lastgroup == "cjk", m.group(0)


def zh_dict_words(run: str, max_len: int = ZH_MAX_WORD) -> list[str]:
    """Every word of 2+ characters from jieba's dictionary (with the car vocabulary) inside ``run``.

    Unlike a segmentation this keeps overlapping words ("充电桩" yields 充电, 充电桩), which suits
    retrieval, and it is only dictionary lookups: several times faster than ``jieba.cut``.
    """
    import numpy as np

    n = len(run)
    max_len = min(max_len, ZH_MAX_WORD)
    candidates = [run[i:j] for i in range(n - 1) for j in range(i + 2, min(n, i + max_len) + 1)]
    if not candidates:
        return []
    words = zh_words()
    probe = np.array(candidates, dtype=words.dtype)
    at = np.minimum(np.searchsorted(words, probe), len(words) - 1)
    return [c for c, hit in zip(candidates, words[at] == probe, strict=True) if hit]


def _en_words(tok: str) -> list[str]:
    mapped = _EN_SPELLING.get(tok)
    if mapped is not None:
        return mapped.split()
    if "'" in tok:
        base, _, suffix = tok.partition("'")
        if suffix == "t" and base.endswith("n"):
            return [base[:-1], "not"]
        return [base]
    return [tok]


def features_uncached(text: str) -> tuple[str, ...]:
    """Channel-prefixed lexical features of a text (with repeats, for term frequency)."""
    norm = normalize(text)
    out: list[str] = []
    for cjk, tok in _runs(norm):
        if cjk:
            out.extend("z:" + w for w in zh_dict_words(tok) if w not in ZH_STOPWORDS)
            out.extend("u:" + ch for ch in tok if ch not in ZH_STOPWORDS)
            out.extend("b:" + tok[i : i + 2] for i in range(len(tok) - 1))
        else:
            for word in _en_words(tok):
                if word in EN_STOPWORDS:
                    continue
                stem = stem_en(word)
                out.append("w:" + stem)
                padded = "<" + word + ">"
                if len(padded) <= 3:
                    out.append("c:" + padded)
                else:
                    out.extend("c:" + padded[i : i + 3] for i in range(len(padded) - 2))
    if not out:
        # Only stop words: fall back to them so that the text still has features.
        for cjk, tok in _runs(norm):
            if cjk:
                out.extend("u:" + ch for ch in tok)
            else:
                out.extend("w:" + stem_en(w) for w in _en_words(tok))
    return tuple(out)


features = lru_cache(maxsize=8192)(features_uncached)  # queries repeat; phrasings use the uncached one


def channel(feature: str) -> str:
    return feature[0]


def english_words(text: str) -> list[str]:
    """Latin-script words of a text after normalisation (stop words included)."""
    norm = normalize(text)
    out: list[str] = []
    for cjk, tok in _runs(norm):
        if not cjk:
            out.extend(_en_words(tok))
    return out


def _deletions(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


def _osa_distance(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment distance (edits incl. adjacent swaps), capped at ``limit + 1``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > limit:
            return limit + 1
        prev2, prev = prev, cur
    return prev[-1]


class SpellingCorrector:
    """Corrects English words unknown to a knowledge base to the closest known word.

    Candidates come from one-deletion neighbourhoods (a word and its typo share one), then the
    edit distance decides: at most 1 edit for words of 4-5 letters, 2 for longer ones; ties go to
    the more frequent word. Words of 3 letters or fewer, numbers and known words are left alone.
    """

    def __init__(self, words: dict[str, int]) -> None:
        self.freq = words
        self.index: dict[str, list[str]] = {}
        for w in words:
            if len(w) >= 3 and w.isalpha():
                for key in _deletions(w) | {w}:
                    self.index.setdefault(key, []).append(w)

    @classmethod
    def from_texts(cls, texts: list[str]) -> SpellingCorrector:
        """Known words (and their frequencies) of the texts; stop words are never corrections."""
        joined = normalize("\n".join(texts))
        counts: dict[str, int] = {}
        for w in _LATIN_WORD_RE.findall(joined):
            counts[w] = counts.get(w, 0) + 1
        for w in list(counts):
            mapped = _EN_SPELLING.get(w)
            if mapped:
                for m in mapped.split():
                    counts[m] = counts.get(m, 0) + counts[w]
        for w in EN_STOPWORDS:
            counts.pop(w, None)
        return cls(counts)

    def correct_word(self, word: str) -> str | None:
        if word in self.freq or len(word) < 4 or not word.isalpha() or word in EN_STOPWORDS:
            return None
        limit = 1 if len(word) <= 7 else 2
        cands: set[str] = set()
        for key in _deletions(word) | {word}:
            cands.update(self.index.get(key, ()))
        best: tuple[int, int, str] | None = None
        for c in cands:
            d = _osa_distance(word, c, limit)
            if d <= limit and (best is None or (d, -self.freq[c], c) < best):
                best = (d, -self.freq[c], c)
        return best[2] if best else None

    def correct(self, text: str) -> str:
        """The text with unknown English words replaced by their corrections (lower case)."""
        if not self.freq:
            return text
        norm = normalize(text)
        changed = False

        def fix(m: re.Match[str]) -> str:
            nonlocal changed
            word = m.group(0)
            corr = self.correct_word(word)
            if corr is None:
                return word
            changed = True
            return corr

        out = _LATIN_WORD_RE.sub(fix, norm)
        return out if changed else text
