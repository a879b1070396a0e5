"""The FAQ matcher on a small bilingual knowledge base (default install: lexical only)."""

from __future__ import annotations

import pytest

from knowledge.calibration import Calibration, fit_logistic, threshold_for_precision
from knowledge.matcher import Decision, KbEntry, KnowledgeIndex, Match, MatcherConfig, detect_locale
from knowledge.semantic import encoder_available
from knowledge.tokenize import features, stem_en

LEXICAL = MatcherConfig(semantic="off")


def _entry(topic: str, category: str, locale: str, questions: list[str], answer: str) -> KbEntry:
    return KbEntry(f"{topic}/{locale}", topic, category, locale, tuple(questions), answer)


ENTRIES = [
    _entry(
        "maintenance.interval",
        "service",
        "zh-CN",
        ["多久做一次保养？", "保养周期是多少公里？"],
        "每一万公里保养一次。",
    ),
    _entry(
        "maintenance.interval",
        "service",
        "en",
        ["How often should I service my car?", "What is the maintenance interval?"],
        "Every 10,000 km or 12 months.",
    ),
    _entry("tires.pressure", "service", "zh-CN", ["胎压应该打多少？", "胎压标准是多少"], "前后 230 kPa。"),
    _entry(
        "tires.pressure",
        "service",
        "en",
        ["What tyre pressure should I use?", "Recommended tire pressure?"],
        "230 kPa front and rear.",
    ),
    _entry("sales.test_drive", "sales", "zh-CN", ["怎么预约试驾", "能上门试驾吗"], "在 App 里预约试驾。"),
    _entry(
        "sales.test_drive",
        "sales",
        "en",
        ["How do I book a test drive?", "Can I test drive at home?"],
        "Book it in the app.",
    ),
    _entry(
        "charging.home", "service", "zh-CN", ["家里能装充电桩吗", "充电桩安装要多久"], "勘测后 7 天内安装。"
    ),
    _entry("charging.home", "service", "en", ["Can I install a home charger?"], "Installed within 7 days."),
]


@pytest.fixture(scope="module")
def index() -> KnowledgeIndex:
    return KnowledgeIndex.build(ENTRIES, config=LEXICAL)


def test_detect_locale() -> None:
    assert detect_locale("多久做一次保养？") == "zh-CN"
    assert detect_locale("How often should I service my car?") == "en"
    assert detect_locale("我的OTA升级失败了") == "zh-CN"
    assert detect_locale("What does 保养 mean for my car") == "en"
    assert detect_locale("") == "en"


def test_tokenizer_uses_car_vocabulary_and_stems() -> None:
    feats = features("胎压和充电桩")
    assert "z:胎压" in feats and "z:充电桩" in feats
    assert stem_en("tires") == stem_en("tire") and stem_en("changing") == stem_en("change")
    assert features("Tyre pressure") == features("tire pressure")  # British spelling folded


def test_chinese_question_gets_chinese_entry_and_english_gets_english(index: KnowledgeIndex) -> None:
    zh = index.decide("保养多久做一次")
    assert zh.locale == "zh-CN" and zh.answer
    assert zh.top is not None and zh.top.entry.key == "maintenance.interval/zh-CN"
    en = index.decide("how often do I need to service the car")
    assert en.locale == "en" and en.answer
    assert en.top is not None and en.top.entry.key == "maintenance.interval/en"


def test_explicit_locale_picks_that_locales_entry(index: KnowledgeIndex) -> None:
    d = index.decide("胎压应该打多少？", locale="en")
    assert d.locale == "en"
    # The lexical matcher cannot cross languages: whatever it found is an English entry.
    assert all(m.entry.locale == "en" for m in d.matches)


def test_search_is_ranked_one_match_per_topic_with_confidences(index: KnowledgeIndex) -> None:
    matches = index.search("tire pressure", k=3)
    assert 1 <= len(matches) <= 3
    assert matches[0].entry.topic == "tires.pressure"
    assert len({m.entry.topic for m in matches}) == len(matches)
    scores = [m.score for m in matches]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert isinstance(matches[0], Match)


def test_unrelated_questions_are_handed_off(index: KnowledgeIndex) -> None:
    for text in ["What is the capital of France?", "今天天气怎么样", "Tell me a joke about cats"]:
        d = index.decide(text)
        assert isinstance(d, Decision)
        assert not d.answer, (text, d.top)
        assert d.top is None or d.top.score < d.threshold


def test_typo_still_matches(index: KnowledgeIndex) -> None:
    top = index.search("how do I bok a tset drive", k=1)[0]
    assert top.entry.topic == "sales.test_drive"
    top = index.search("家里能装充点桩吗", k=1)[0]
    assert top.entry.topic == "charging.home"


def test_threshold_override_and_defaults(index: KnowledgeIndex) -> None:
    assert 0.0 < index.threshold("zh-CN") < 1.0 and 0.0 < index.threshold("en") < 1.0
    never = KnowledgeIndex.build(ENTRIES, config=MatcherConfig(semantic="off", thresholds={"en": 1.01}))
    d = never.decide("How often should I service my car?")
    assert d.threshold == 1.01 and not d.answer and d.top is not None
    always = KnowledgeIndex.build(ENTRIES, config=MatcherConfig(semantic="off", thresholds={"zh-CN": 0.0}))
    assert always.decide("保养周期").answer


def test_empty_inputs() -> None:
    empty = KnowledgeIndex.build([], config=LEXICAL)
    d = empty.decide("hello")
    assert not d.answer and d.top is None and d.matches == []
    idx = KnowledgeIndex.build(ENTRIES, config=LEXICAL)
    assert idx.search("   ") == []
    assert not idx.decide("").answer


def test_duplicate_keys_rejected() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        KnowledgeIndex.build([ENTRIES[0], ENTRIES[0]], config=LEXICAL)


def test_topic_with_only_one_locale_is_found_from_other_locale_only_when_unrestricted() -> None:
    only_en = [
        _entry("app.binding", "service", "en", ["How do I pair the app with my car?"], "Scan the QR code.")
    ]
    idx = KnowledgeIndex.build([*ENTRIES, *only_en], config=LEXICAL)
    assert idx.search("pair the app with my car", locale="en", k=1)[0].entry.topic == "app.binding"
    assert all(m.entry.topic != "app.binding" for m in idx.search("pair the app with my car", locale="zh-CN"))
    assert idx.search("pair the app with my car", k=1)[0].entry.key == "app.binding/en"


def test_semantic_on_without_extra_raises() -> None:
    if encoder_available("e5") and encoder_available("use"):
        pytest.skip("semantic extra installed")
    with pytest.raises(ImportError):
        KnowledgeIndex.build(ENTRIES, config=MatcherConfig(semantic="on"))
    assert KnowledgeIndex.build(ENTRIES, config=MatcherConfig(semantic="auto")).mode == "lexical"


def test_logistic_fit_and_threshold() -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 2))
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.3, size=400) > 0).astype(float)
    w, b = fit_logistic(x, y)
    assert w[0] > 2 * abs(b) and w[0] > w[1] > 0
    cal = Calibration(features=("a", "b"), weights=tuple(w), bias=b)
    conf = cal.confidences(x)
    assert ((conf > 0.5) == (y > 0)).mean() > 0.9
    assert cal.confidence({"a": 3.0, "b": 0.0}) > 0.95
    thr = threshold_for_precision(conf, y > 0, 0.95)
    answered = conf >= thr
    assert (y[answered] > 0).mean() >= 0.95


@pytest.mark.skipif(
    not (encoder_available("e5") and encoder_available("use")), reason="semantic extra not installed"
)
def test_semantic_fusion_finds_paraphrases() -> None:
    index = KnowledgeIndex.build(ENTRIES, config=MatcherConfig(semantic="on"))
    assert index.mode == "semantic"
    top = index.search("my wheels look a little flat, how much air do they need?", locale="en", k=1)[0]
    assert top.entry.key == "tires.pressure/en"
    top = index.search("我想先开一下这台车感受感受", locale="zh-CN", k=1)[0]
    assert top.entry.key == "sales.test_drive/zh-CN"
    assert not index.decide("What is the capital of France?").answer
