"""Business calendars: weekends, lunch breaks, holidays, make-up days, and DST in Europe/Berlin."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from escalation.calendar import ALWAYS, calendar_from_config, parse_span

SH = ZoneInfo("Asia/Shanghai")
BER = ZoneInfo("Europe/Berlin")

SHANGHAI = calendar_from_config(
    "shanghai_office",
    {
        "timezone": "Asia/Shanghai",
        "hours": {"mon-fri": ["09:00-12:00", "13:00-18:00"]},
        # National Day 2026: Thu 1 Oct to Wed 7 Oct, with Saturday 10 Oct worked instead.
        "holidays": ["2026-10-01", "2026-10-02", "2026-10-05", "2026-10-06", "2026-10-07"],
        "special_days": {"2026-10-10": ["09:00-18:00"]},
    },
)
BERLIN_OFFICE = calendar_from_config(
    "berlin", {"timezone": "Europe/Berlin", "hours": {"mon-fri": "08:00-18:00"}}
)
BERLIN_DAILY = calendar_from_config(
    "berlin_daily", {"timezone": "Europe/Berlin", "hours": {"daily": "08:00-20:00"}}
)
BERLIN_ALL_DAY = calendar_from_config(
    "berlin_24", {"timezone": "Europe/Berlin", "hours": {"daily": "00:00-24:00"}}
)


def local(tz: ZoneInfo, *args: int) -> datetime:
    """A local wall time as an aware datetime."""
    return datetime(*args, tzinfo=tz)  # type: ignore[arg-type,misc]


def test_shanghai_weekend_is_skipped() -> None:
    start = local(SH, 2026, 11, 6, 17, 30)  # Friday
    due = SHANGHAI.add_business_time(start, 3600)
    assert due == local(SH, 2026, 11, 9, 9, 30)  # Monday
    assert due.astimezone(UTC) == datetime(2026, 11, 9, 1, 30, tzinfo=UTC)
    assert SHANGHAI.business_seconds_between(start, due) == 3600
    # Anything inside the weekend counts nothing.
    assert SHANGHAI.business_seconds_between(local(SH, 2026, 11, 7, 8), local(SH, 2026, 11, 8, 23)) == 0


def test_shanghai_lunch_break() -> None:
    assert SHANGHAI.add_business_time(local(SH, 2026, 11, 9, 11, 30), 3600) == local(SH, 2026, 11, 9, 13, 30)
    # Starting at lunch waits for the afternoon opening.
    assert SHANGHAI.add_business_time(local(SH, 2026, 11, 9, 12, 15), 600) == local(SH, 2026, 11, 9, 13, 10)


def test_shanghai_national_day_holidays_and_make_up_saturday() -> None:
    start = local(SH, 2026, 9, 30, 17, 0)  # Wednesday before the holiday week
    due = SHANGHAI.add_business_time(start, 2 * 3600)
    assert due == local(SH, 2026, 10, 8, 10, 0)  # 1 h on 30 Sep, then Thursday 8 Oct
    assert SHANGHAI.business_seconds_between(start, due) == 7200
    # Saturday 10 Oct is a working day, so Friday evening rolls into it, not into Monday.
    assert SHANGHAI.add_business_time(local(SH, 2026, 10, 9, 17, 0), 2 * 3600) == local(
        SH, 2026, 10, 10, 10, 0
    )


def test_berlin_spring_forward_night_is_an_hour_shorter() -> None:
    # Saturday 28 Mar 2026 19:00 CET; clocks jump 02:00 -> 03:00 on Sunday 29 Mar.
    start = local(BER, 2026, 3, 28, 19, 0)
    due = BERLIN_DAILY.add_business_time(start, 2 * 3600)
    assert due == local(BER, 2026, 3, 29, 9, 0)  # 1 h Saturday, then 08:00-09:00 CEST
    assert due.astimezone(UTC) == datetime(2026, 3, 29, 7, 0, tzinfo=UTC)
    assert due - start == timedelta(hours=13)  # not 14: the night lost an hour
    assert (
        BERLIN_ALL_DAY.business_seconds_between(local(BER, 2026, 3, 29, 0), local(BER, 2026, 3, 30, 0))
        == 23 * 3600
    )
    noon = local(BER, 2026, 3, 28, 12, 0)
    assert BERLIN_ALL_DAY.add_business_time(noon, 24 * 3600) == local(BER, 2026, 3, 29, 13, 0)


def test_berlin_fall_back_weekend_is_an_hour_longer() -> None:
    # Friday 23 Oct 2026 17:00 CEST; clocks fall back 03:00 -> 02:00 on Sunday 25 Oct.
    start = local(BER, 2026, 10, 23, 17, 0)
    due = BERLIN_OFFICE.add_business_time(start, 2 * 3600)
    assert due == local(BER, 2026, 10, 26, 9, 0)  # 1 h Friday, Monday 08:00-09:00 CET
    assert due.astimezone(UTC) == datetime(2026, 10, 26, 8, 0, tzinfo=UTC)
    assert due - start == timedelta(hours=65)
    assert (
        BERLIN_ALL_DAY.business_seconds_between(local(BER, 2026, 10, 25, 0), local(BER, 2026, 10, 26, 0))
        == 25 * 3600
    )


def test_always_open_is_plain_arithmetic() -> None:
    a = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    assert ALWAYS.add_business_time(a, 90) == a + timedelta(seconds=90)
    assert ALWAYS.business_seconds_between(a, a + timedelta(days=2)) == 2 * 86400
    assert ALWAYS.business_seconds_between(a + timedelta(hours=1), a) == -3600


def test_closed_calendar_and_bad_input_fail_clearly() -> None:
    closed = calendar_from_config("closed", {"timezone": "UTC", "hours": {}})
    with pytest.raises(ValueError, match="no business hours"):
        closed.add_business_time(datetime(2026, 1, 1, tzinfo=UTC), 60)
    with pytest.raises(ValueError, match="HH:MM-HH:MM"):
        parse_span("9-5")
    with pytest.raises(ValueError, match="end before"):
        parse_span("18:00-09:00")
    with pytest.raises(Exception, match="Mars/Olympus"):
        calendar_from_config("x", {"timezone": "Mars/Olympus", "hours": {"mon": "09:00-10:00"}})


@settings(max_examples=150, deadline=None, database=None)
@given(
    start=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC)
    ),
    seconds=st.integers(min_value=0, max_value=30 * 86400),
)
def test_add_then_count_round_trips(start: datetime, seconds: int) -> None:
    for calendar in (SHANGHAI, BERLIN_OFFICE, BERLIN_DAILY):
        due = calendar.add_business_time(start, seconds)
        assert due >= start
        assert calendar.business_seconds_between(start, due) == pytest.approx(seconds, abs=1e-6)
