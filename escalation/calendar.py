"""Business calendars: a timezone, weekly opening hours and holidays; SLA targets count this time."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# A calendar without any opening hours would never reach a due time; stop looking after this.
MAX_SCAN_DAYS = 3 * 366

Window = tuple[time | None, time | None]  # None as the end means midnight at the end of the day
_SPAN = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def parse_span(text: str) -> Window:
    """Parse "09:00-18:00" (24:00 allowed as the end) into a window of local times."""
    m = _SPAN.match(text)
    if not m:
        raise ValueError(f"bad opening hours {text!r}; expected HH:MM-HH:MM")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    start = time(h1, m1)
    end = None if (h2, m2) == (24, 0) else time(h2, m2)
    if end is not None and end <= start:
        raise ValueError(f"opening hours {text!r} end before they start")
    return start, end


@dataclass(frozen=True)
class BusinessCalendar:
    """When the clock runs: local opening windows per weekday, minus holidays, plus special days."""

    name: str = "24x7"
    timezone: str = "UTC"
    # weekday index (0 = Monday) -> windows; a missing weekday is closed all day.
    weekly: Mapping[int, Sequence[Window]] = field(default_factory=dict)
    holidays: frozenset[date] = frozenset()
    # Dates whose hours differ from their weekday (e.g. a make-up working Saturday); empty = closed.
    special: Mapping[date, Sequence[Window]] = field(default_factory=dict)
    always_open: bool = True

    @property
    def tz(self) -> ZoneInfo:
        """The calendar's IANA timezone."""
        return ZoneInfo(self.timezone)

    def windows_on(self, day: date) -> Sequence[Window]:
        """The local opening windows of one date."""
        if day in self.special:
            return self.special[day]
        if day in self.holidays:
            return ()
        return self.weekly.get(day.weekday(), ())

    def _utc_windows(self, day: date) -> Iterator[tuple[datetime, datetime]]:
        # Converting each local boundary on its own makes DST days 23 or 25 hours long; a boundary
        # inside the spring-forward gap maps to the instant the clock jumps to (fold=0 semantics).
        tz = self.tz
        for start, end in self.windows_on(day):
            a = datetime.combine(day, start or time(0), tzinfo=tz).astimezone(UTC)
            if end is None:
                b = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
            else:
                b = datetime.combine(day, end, tzinfo=tz).astimezone(UTC)
            if b > a:
                yield a, b

    def _windows_from(self, start: datetime) -> Iterator[tuple[datetime, datetime]]:
        # The local day before is included so windows running past midnight are not missed.
        day = start.astimezone(self.tz).date() - timedelta(days=1)
        for _ in range(MAX_SCAN_DAYS):
            for a, b in self._utc_windows(day):
                if b > start:
                    yield max(a, start), b
            day += timedelta(days=1)

    def add_business_time(self, start: datetime, seconds: float) -> datetime:
        """The instant when `seconds` of business time have passed since `start`."""
        start = start.astimezone(UTC)
        if self.always_open:
            return start + timedelta(seconds=seconds)
        remaining = max(0.0, float(seconds))
        for a, b in self._windows_from(start):
            span = (b - a).total_seconds()
            if remaining <= span:
                # Zero remaining lands on the opening moment, not at a closed instant before it.
                return a + timedelta(seconds=remaining)
            remaining -= span
        raise ValueError(f"calendar {self.name!r} has no business hours within {MAX_SCAN_DAYS} days")

    def business_seconds_between(self, a: datetime, b: datetime) -> float:
        """Business seconds in [a, b); negative when b is before a."""
        if b < a:
            return -self.business_seconds_between(b, a)
        a, b = a.astimezone(UTC), b.astimezone(UTC)
        if self.always_open:
            return (b - a).total_seconds()
        total = 0.0
        day = a.astimezone(self.tz).date() - timedelta(days=1)
        last = b.astimezone(self.tz).date()
        while day <= last:
            for wa, wb in self._utc_windows(day):
                lo, hi = max(wa, a), min(wb, b)
                if hi > lo:
                    total += (hi - lo).total_seconds()
            day += timedelta(days=1)
        return total

    def describe(self) -> str:
        """One line for people: zone, hours and holidays."""
        if self.always_open:
            return f"{self.name}: always open ({self.timezone})"
        parts = []
        for i, name in enumerate(WEEKDAYS):
            spans = self.weekly.get(i, ())
            text = ",".join(_span_text(w) for w in spans) or "closed"
            parts.append(f"{name} {text}")
        extra = f"; {len(self.holidays)} holidays" if self.holidays else ""
        extra += f"; {len(self.special)} special days" if self.special else ""
        return f"{self.name} ({self.timezone}): " + " ".join(parts) + extra


def _span_text(window: Window) -> str:
    start, end = window
    return f"{(start or time(0)):%H:%M}-{'24:00' if end is None else format(end, '%H:%M')}"


ALWAYS = BusinessCalendar()


def _to_date(value: object) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def _spans(value: object) -> list[Window]:
    if value in (None, "closed"):
        return []
    items = [value] if isinstance(value, str) else list(value)  # type: ignore[call-overload]
    return [parse_span(str(v)) for v in items]


def calendar_from_config(name: str, raw: Mapping[str, object]) -> BusinessCalendar:
    """Build a calendar from its YAML mapping (timezone, hours per weekday, holidays, special days)."""
    tzname = str(raw.get("timezone", "UTC"))
    ZoneInfo(tzname)  # fail at load time on a misspelt zone, not at the first due time
    hours = raw.get("hours")
    if hours is None:
        return BusinessCalendar(name=name, timezone=tzname, always_open=True)
    if not isinstance(hours, Mapping):
        raise ValueError(f"calendar {name}: hours must map weekdays to spans")
    weekly: dict[int, list[Window]] = {}
    for key, spans in hours.items():
        days = _weekday_keys(str(key))
        for d in days:
            weekly[d] = _spans(spans)
    holidays = frozenset(_to_date(d) for d in (raw.get("holidays") or []))  # type: ignore[attr-defined]
    special_raw = raw.get("special_days") or {}
    if not isinstance(special_raw, Mapping):
        raise ValueError(f"calendar {name}: special_days must map dates to spans")
    special = {_to_date(d): _spans(v) for d, v in special_raw.items()}
    return BusinessCalendar(
        name=name,
        timezone=tzname,
        weekly=weekly,
        holidays=holidays,
        special=special,
        always_open=False,
    )


def _weekday_keys(key: str) -> list[int]:
    """'mon', 'mon-fri' or 'daily' -> weekday indexes."""
    key = key.strip().lower()
    if key in ("daily", "all", "every day"):
        return list(range(7))
    if "-" in key:
        first, last = (k.strip()[:3] for k in key.split("-", 1))
        i, j = WEEKDAYS.index(first), WEEKDAYS.index(last)
        return list(range(i, j + 1)) if i <= j else [*range(i, 7), *range(0, j + 1)]
    return [WEEKDAYS.index(key[:3])]
