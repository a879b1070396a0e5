"""SLA policies from YAML: ordered, the first whose category / priority / dealer matches applies."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from escalation.calendar import ALWAYS, BusinessCalendar, calendar_from_config

DEFAULT_FILE = Path(__file__).resolve().parent / "data" / "default_policies.yaml"
METRICS = ("first_response", "next_response", "resolution")
ACTIONS = ("warn", "breach", "escalate_lead", "reassign", "escalate_manager")
# Steps that change who handles the case are worth telling the customer about.
TELLS_CUSTOMER = frozenset({"reassign", "escalate_manager"})
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d)?\s*$")
_UNITS = {None: 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def parse_duration(value: object) -> float:
    """'90s', '5m', '24h', '3d' or a number of seconds -> seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    m = _DURATION.match(str(value).lower())
    if not m:
        raise ValueError(f"bad duration {value!r}; use e.g. 90s, 5m, 24h, 3d")
    return float(m.group(1)) * _UNITS[m.group(2)]


def duration_label(seconds: float) -> str:
    """Compact human form of a duration: 2m, 1h30m, 3d."""
    s = round(seconds)
    if s < 0:
        return "-" + duration_label(-s)
    if s < 60:
        return f"{s}s"
    days, rest = divmod(s, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "", f"{minutes}m" if minutes else ""]
    if secs and not days:
        parts.append(f"{secs}s")
    return "".join(parts)


@dataclass(frozen=True)
class Step:
    """One rung of a ladder: an action at a fraction of the target or an offset past it."""

    action: str
    fraction: float | None = None
    offset: float | None = None
    tell_customer: bool = False

    def at_seconds(self, target: float) -> float:
        """Business seconds after the clock's start when the step is due."""
        if self.fraction is not None:
            return self.fraction * target
        return target + (self.offset or 0.0)

    def describe(self) -> str:
        """E.g. 'warn at 80%' or 'escalate_manager 15m past target'."""
        if self.fraction is not None:
            when = f"at {self.fraction * 100:g}%"
        elif not self.offset:
            when = "right after the target"
        else:
            when = f"{duration_label(self.offset)} past target"
        return f"{self.action} {when}" + (" (+customer told)" if self.tell_customer else "")


@dataclass(frozen=True)
class Policy:
    """Targets, calendar and ladders for the cases it matches."""

    key: str
    targets: Mapping[str, float]
    ladders: Mapping[str, tuple[Step, ...]]
    calendar: str = "24x7"
    pause_resolution_when_waiting_customer: bool = True
    categories: frozenset[str] = frozenset()
    priorities: frozenset[str] = frozenset()
    dealers: frozenset[str] = frozenset()

    def matches(self, *, category: str, priority: str, dealer: str | None) -> bool:
        """Every given condition must hold; an empty condition matches anything."""
        return (
            (not self.categories or category in self.categories)
            and (not self.priorities or priority in self.priorities)
            and (not self.dealers or (dealer is not None and dealer in self.dealers))
        )

    def describe_match(self) -> str:
        """'category=complaint priority=urgent' or 'everything else'."""
        parts = [
            f"{name}={'|'.join(sorted(values))}"
            for name, values in (
                ("category", self.categories),
                ("priority", self.priorities),
                ("dealer", self.dealers),
            )
            if values
        ]
        return " ".join(parts) or "everything else"


@dataclass(frozen=True)
class PolicySet:
    """The ordered policies and the calendars they name."""

    policies: tuple[Policy, ...]
    calendars: Mapping[str, BusinessCalendar] = field(default_factory=dict)
    source: str = ""

    def select(self, *, category: str, priority: str, dealer: str | None = None) -> Policy:
        """The first policy that matches (the set always ends with a catch-all)."""
        for policy in self.policies:
            if policy.matches(category=category, priority=priority, dealer=dealer):
                return policy
        raise LookupError(f"no SLA policy matches {category}/{priority}/{dealer}")

    def get(self, key: str) -> Policy | None:
        """A policy by key."""
        return next((p for p in self.policies if p.key == key), None)

    def calendar(self, name: str) -> BusinessCalendar:
        """A calendar by name; unknown names fall back to 24x7 so clocks never stop silently."""
        return self.calendars.get(name, ALWAYS)


def _as_set(value: object) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset({value})
    return frozenset(str(v) for v in value)  # type: ignore[attr-defined]


def _steps(raw: object, where: str) -> tuple[Step, ...]:
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise ValueError(f"{where}: a ladder is a list of steps")
    steps: list[Step] = []
    for item in raw:
        if not isinstance(item, Mapping):
            raise ValueError(f"{where}: each step is a mapping with action and at/after")
        action = str(item.get("action"))
        if action not in ACTIONS:
            raise ValueError(f"{where}: unknown action {action!r}; use one of {', '.join(ACTIONS)}")
        has_at, has_after = "at" in item, "after" in item
        if has_at == has_after:
            raise ValueError(f"{where}: step {action} needs exactly one of at (fraction) or after (offset)")
        fraction = float(item["at"]) if has_at else None
        if fraction is not None and fraction < 0:
            raise ValueError(f"{where}: step {action} at a negative fraction")
        offset = parse_duration(item["after"]) if has_after else None
        tell = bool(item.get("tell_customer", action in TELLS_CUSTOMER))
        steps.append(Step(action=action, fraction=fraction, offset=offset, tell_customer=tell))
    if not any(s.action == "breach" for s in steps):
        # A ladder without an explicit breach still records the breach at the target.
        steps.append(Step(action="breach", fraction=1.0))
    return tuple(steps)


def _policy(raw: Mapping[str, Any], defaults: Mapping[str, Any], ladders: Mapping[str, Any]) -> Policy:
    key = str(raw.get("key") or "")
    if not key:
        raise ValueError("every policy needs a key")
    targets_raw = {**(defaults.get("targets") or {}), **(raw.get("targets") or {})}
    ladder_raw = {**(defaults.get("ladders") or {}), **(raw.get("ladders") or {})}
    targets: dict[str, float] = {}
    steps: dict[str, tuple[Step, ...]] = {}
    for metric in METRICS:
        if metric not in targets_raw:
            raise ValueError(f"policy {key}: no target for {metric}")
        targets[metric] = parse_duration(targets_raw[metric])
        if targets[metric] <= 0:
            raise ValueError(f"policy {key}: {metric} target must be positive")
        ladder = ladder_raw.get(metric, [])
        if isinstance(ladder, str):
            if ladder not in ladders:
                raise ValueError(f"policy {key}: unknown ladder {ladder!r}")
            ladder = ladders[ladder]
        steps[metric] = _steps(ladder, f"policy {key} {metric}")
    match = raw.get("match") or {}
    return Policy(
        key=key,
        targets=targets,
        ladders=steps,
        calendar=str(raw.get("calendar", defaults.get("calendar", "24x7"))),
        pause_resolution_when_waiting_customer=bool(
            raw.get(
                "pause_resolution_when_waiting_customer",
                defaults.get("pause_resolution_when_waiting_customer", True),
            )
        ),
        categories=_as_set(match.get("category")),
        priorities=_as_set(match.get("priority")),
        dealers=_as_set(match.get("dealer")),
    )


def parse_policies(data: Mapping[str, Any], *, source: str = "") -> PolicySet:
    """Validate a policies document (as loaded from YAML) into a PolicySet."""
    calendars = {"24x7": ALWAYS}
    for name, raw in (data.get("calendars") or {}).items():
        calendars[str(name)] = calendar_from_config(str(name), raw or {})
    defaults = data.get("defaults") or {}
    ladders = data.get("ladders") or {}
    policies = tuple(_policy(raw, defaults, ladders) for raw in data.get("policies") or [])
    if not policies:
        raise ValueError("no SLA policies defined")
    keys = [p.key for p in policies]
    if len(set(keys)) != len(keys):
        raise ValueError("policy keys must be unique")
    for p in policies:
        if p.calendar not in calendars:
            raise ValueError(f"policy {p.key}: unknown calendar {p.calendar!r}")
    last = policies[-1]
    if last.categories or last.priorities or last.dealers:
        raise ValueError("the last policy must match everything (an empty match) so every case has one")
    return PolicySet(policies=policies, calendars=calendars, source=source)


def load_policies(path: Path | str | None = None) -> PolicySet:
    """Load a policies YAML file (the shipped demo defaults when no path is given)."""
    file = Path(path) if path else DEFAULT_FILE
    with file.open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    return parse_policies(data, source=str(file))
