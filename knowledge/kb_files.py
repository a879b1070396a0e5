"""Load and dump FAQ entries as YAML (the demo knowledge-base format) or JSONL (one entry per line).

YAML: a list of topics, each ``{topic, category, actions?, "zh-CN": {questions, answer}, "en": {...}}``;
every locale block becomes one :class:`KbEntry` with key ``"<topic>/<locale>"``. Items that carry a
``locale`` key themselves (the JSONL shape) are accepted in YAML too.

JSONL: ``{"topic", "category", "locale", "questions": [...], "answer", "key"?}`` per line; blank lines
and lines starting with ``#`` are skipped. A line in the YAML shape (locale blocks) is accepted too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from knowledge.matcher import CATEGORIES, LOCALES, KbEntry

YAML_SUFFIXES = (".yaml", ".yml")
JSONL_SUFFIXES = (".jsonl", ".ndjson")


class KbFileError(ValueError):
    """A knowledge-base file that cannot be read; the message says where and why."""


def _entry(item: Mapping[str, Any], locale: str, block: Mapping[str, Any], where: str) -> KbEntry:
    topic = item.get("topic")
    if not isinstance(topic, str) or not topic.strip():
        raise KbFileError(f"{where}: missing topic")
    category = item.get("category", "general")
    if category not in CATEGORIES:
        raise KbFileError(f"{where}: category {category!r} is not one of {', '.join(CATEGORIES)}")
    if locale not in LOCALES:
        raise KbFileError(f"{where}: locale {locale!r} is not one of {', '.join(LOCALES)}")
    questions = block.get("questions")
    if isinstance(questions, str):
        questions = [questions]
    if not isinstance(questions, list) or not questions:
        raise KbFileError(f"{where}: {topic}/{locale} needs a non-empty list of questions")
    cleaned = tuple(str(q).strip() for q in questions if str(q).strip())
    if not cleaned:
        raise KbFileError(f"{where}: {topic}/{locale} has only empty questions")
    answer = block.get("answer")
    if not isinstance(answer, str) or not answer.strip():
        raise KbFileError(f"{where}: {topic}/{locale} needs an answer")
    key = block.get("key") or f"{topic.strip()}/{locale}"
    return KbEntry(
        key=str(key),
        topic=topic.strip(),
        category=str(category),
        locale=locale,
        questions=cleaned,
        answer=answer.strip(),
    )


def entries_from_item(item: Any, where: str = "item") -> list[KbEntry]:
    """Entries of one parsed item, in either the flat shape or the locale-block shape."""
    if not isinstance(item, Mapping):
        raise KbFileError(f"{where}: expected a mapping, got {type(item).__name__}")
    if "locale" in item:
        return [_entry(item, str(item["locale"]), item, where)]
    out: list[KbEntry] = []
    for locale in LOCALES:
        block = item.get(locale)
        if block is None:
            continue
        if not isinstance(block, Mapping):
            raise KbFileError(f"{where}: {locale} must be a mapping with questions and answer")
        out.append(_entry(item, locale, block, where))
    if not out:
        raise KbFileError(f"{where}: no locale block ({', '.join(LOCALES)}) and no locale key")
    return out


def _check_unique(entries: list[KbEntry], path: Path) -> list[KbEntry]:
    seen: set[str] = set()
    for e in entries:
        if e.key in seen:
            raise KbFileError(f"{path}: duplicate entry key {e.key!r}")
        seen.add(e.key)
    return entries


def load_entries(path: str | Path) -> list[KbEntry]:
    """Read entries from a ``.yaml``/``.yml`` or ``.jsonl`` file (format chosen by suffix)."""
    p = Path(path)
    suffix = p.suffix.lower()
    text = p.read_text(encoding="utf-8")
    entries: list[KbEntry] = []
    if suffix in YAML_SUFFIXES:
        data = yaml.safe_load(text)
        if isinstance(data, Mapping) and "entries" in data:
            data = data["entries"]
        if data is None:
            return []
        if not isinstance(data, list):
            raise KbFileError(f"{p}: expected a YAML list of topics")
        for i, item in enumerate(data):
            where = f"{p}: item {i + 1}"
            if isinstance(item, Mapping) and "topic" in item:
                where = f"{p}: topic {item['topic']}"
            entries.extend(entries_from_item(item, where))
    elif suffix in JSONL_SUFFIXES or suffix == ".json":
        for lineno, item in _json_lines(text, p):
            entries.extend(entries_from_item(item, f"{p}:{lineno}"))
    else:
        raise KbFileError(f"{p}: unknown knowledge-base format {suffix!r} (use .yaml, .yml or .jsonl)")
    return _check_unique(entries, p)


def entry_to_dict(entry: KbEntry) -> dict[str, Any]:
    """The flat JSONL shape of one entry (the key is written only when it is not the default)."""
    out: dict[str, Any] = {
        "topic": entry.topic,
        "category": entry.category,
        "locale": entry.locale,
        "questions": list(entry.questions),
        "answer": entry.answer,
    }
    if entry.key != f"{entry.topic}/{entry.locale}":
        out["key"] = entry.key
    return out


def entries_to_yaml_items(entries: Iterable[KbEntry]) -> list[dict[str, Any]]:
    """Group entries by topic into the demo YAML shape (topic order kept as first seen)."""
    items: dict[str, dict[str, Any]] = {}
    for e in entries:
        item = items.setdefault(e.topic, {"topic": e.topic, "category": e.category})
        if e.locale in item:
            raise KbFileError(f"two {e.locale} entries for topic {e.topic!r}: YAML holds one per locale")
        block: dict[str, Any] = {"questions": list(e.questions), "answer": e.answer}
        if e.key != f"{e.topic}/{e.locale}":
            block["key"] = e.key
        item[e.locale] = block
    return list(items.values())


def dump_entries(entries: Iterable[KbEntry], path: str | Path) -> None:
    """Write entries as YAML (demo shape, grouped by topic) or JSONL, chosen by the suffix."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in YAML_SUFFIXES:
        text = yaml.safe_dump(entries_to_yaml_items(entries), allow_unicode=True, sort_keys=False, width=1000)
    elif suffix in JSONL_SUFFIXES:
        text = "".join(json.dumps(entry_to_dict(e), ensure_ascii=False) + "\n" for e in entries)
    else:
        raise KbFileError(f"{p}: unknown knowledge-base format {suffix!r} (use .yaml, .yml or .jsonl)")
    p.write_text(text, encoding="utf-8")


def load_queries(path: str | Path) -> list[dict[str, Any]]:
    """Read evaluation query lines ``{"text", "expect_topic": key or null, "locale"?}`` from JSONL."""
    p = Path(path)
    out: list[dict[str, Any]] = []
    for lineno, item in _json_lines(p.read_text(encoding="utf-8"), p):
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            raise KbFileError(f"{p}:{lineno}: expected an object with a text field")
        out.append(item)
    return out


def _json_lines(text: str, p: Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) per JSON line; blank lines and # comments are skipped."""
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            yield lineno, json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise KbFileError(f"{p}:{lineno}: invalid JSON: {exc.msg}") from exc
