"""Loading and dumping knowledge-base files (demo YAML shape and JSONL)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from knowledge.kb_files import KbFileError, dump_entries, load_entries, load_queries
from knowledge.matcher import KbEntry

YAML_TEXT = """
- topic: maintenance.interval
  category: service
  actions: [book_service]
  zh-CN:
    questions: [多久做一次保养？, 保养周期是多少公里？]
    answer: 每 10,000 公里或 12 个月。
  en:
    questions: ["How often should I service my car?"]
    answer: Every 10,000 km or 12 months.
- topic: butler.human
  category: general
  en:
    questions: [Talk to a person]
    answer: Tap "Talk to a person".
"""


def test_load_demo_yaml_shape(tmp_path: Path) -> None:
    path = tmp_path / "kb.yaml"
    path.write_text(YAML_TEXT, encoding="utf-8")
    entries = load_entries(path)
    assert [e.key for e in entries] == [
        "maintenance.interval/zh-CN",
        "maintenance.interval/en",
        "butler.human/en",
    ]
    zh = entries[0]
    assert zh.questions == ("多久做一次保养？", "保养周期是多少公里？") and zh.category == "service"
    assert zh.locale == "zh-CN" and zh.answer.startswith("每")


def test_round_trip_jsonl_and_yaml(tmp_path: Path) -> None:
    src = tmp_path / "kb.yaml"
    src.write_text(YAML_TEXT, encoding="utf-8")
    entries = load_entries(src)
    custom = KbEntry("db-42", "privacy.data", "general", "en", ("Delete my data",), "Ask your butler.")
    entries.append(custom)
    for name in ("out.jsonl", "out.yaml"):
        out = tmp_path / name
        dump_entries(entries, out)
        assert load_entries(out) == entries
    line = json.loads((tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert set(line) == {"topic", "category", "locale", "questions", "answer"}
    assert "多久" in (tmp_path / "out.jsonl").read_text(encoding="utf-8")  # not \\u-escaped


def test_jsonl_skips_blank_and_comment_lines(tmp_path: Path) -> None:
    path = tmp_path / "kb.jsonl"
    path.write_text(
        "# a comment\n\n"
        + json.dumps({"topic": "t", "category": "sales", "locale": "en", "questions": ["q?"], "answer": "a"})
        + "\n",
        encoding="utf-8",
    )
    (entry,) = load_entries(path)
    assert entry.key == "t/en" and entry.category == "sales"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ({"topic": "t", "category": "nope", "locale": "en", "questions": ["q"], "answer": "a"}, "category"),
        ({"topic": "t", "category": "sales", "locale": "fr", "questions": ["q"], "answer": "a"}, "locale"),
        ({"topic": "t", "category": "sales", "locale": "en", "questions": [], "answer": "a"}, "questions"),
        ({"topic": "t", "category": "sales", "locale": "en", "questions": ["q"], "answer": " "}, "answer"),
        ({"category": "sales", "locale": "en", "questions": ["q"], "answer": "a"}, "topic"),
    ],
)
def test_invalid_lines_name_the_problem(tmp_path: Path, line: dict[str, object], message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(line) + "\n", encoding="utf-8")
    with pytest.raises(KbFileError, match=message):
        load_entries(path)


def test_bad_json_duplicate_keys_and_suffix(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n", encoding="utf-8")
    with pytest.raises(KbFileError, match=r"bad.jsonl:1"):
        load_entries(bad)
    line = json.dumps({"topic": "t", "category": "sales", "locale": "en", "questions": ["q"], "answer": "a"})
    dup = tmp_path / "dup.jsonl"
    dup.write_text(line + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(KbFileError, match="duplicate"):
        load_entries(dup)
    (tmp_path / "kb.txt").write_text("x")
    with pytest.raises(KbFileError, match="format"):
        load_entries(tmp_path / "kb.txt")


def test_load_queries(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"text": "hi", "expect_topic": null}\n\n{"text": "胎压", "expect_topic": "tires"}\n')
    assert load_queries(path) == [
        {"text": "hi", "expect_topic": None},
        {"text": "胎压", "expect_topic": "tires"},
    ]
    (tmp_path / "bad.jsonl").write_text('{"expect_topic": null}\n')
    with pytest.raises(KbFileError, match="text"):
        load_queries(tmp_path / "bad.jsonl")
