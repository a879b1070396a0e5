"""The guided forms: their steps, which role a finished booking goes to, and how answers read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.bookings.texts import WEEKDAYS, tx
from bot.conversations.enums import Category
from bot.i18n import normalize_locale

MODELS = ("Demo E3", "Demo E7", "Demo S5", "Demo X7")
SLOTS = ("1000", "1400", "1600")
DAYS_AHEAD = 7
LOCAL_TZ = ZoneInfo("Asia/Shanghai")

# Step kinds: choice (buttons), text (typed), place (typed or a shared location), photos (uploads
# until Done), date and slot (buttons computed from the clock), vehicle (the customer's cars), confirm.


@dataclass(frozen=True)
class Step:
    """One question of a form."""

    key: str
    kind: str
    options: tuple[str, ...] = ()
    optional: bool = False
    when: Callable[[dict[str, Any]], bool] | None = None


@dataclass(frozen=True)
class Form:
    """A guided request: its steps and the case category it opens (None: no case)."""

    kind: str
    category: str | None
    steps: tuple[Step, ...]


_DATE = Step("date", "date")
_SLOT = Step("slot", "slot")
_VEHICLE = Step("vehicle", "vehicle")
_CONFIRM = Step("confirm", "confirm", ("confirm", "cancel"))

FORMS: dict[str, Form] = {
    "test_drive": Form(
        "test_drive",
        Category.SALES,
        (
            Step("model", "choice", MODELS),
            _DATE,
            _SLOT,
            Step("place", "choice", ("showroom", "home")),
            Step("address", "place", when=lambda d: d.get("place") == "home"),
            _CONFIRM,
        ),
    ),
    "service": Form(
        "service",
        Category.SERVICE,
        (
            _VEHICLE,
            Step("service_type", "choice", ("maintenance", "repair", "inspection", "tyres")),
            _DATE,
            _SLOT,
            Step("notes", "text", optional=True),
            _CONFIRM,
        ),
    ),
    "onsite_repair": Form(
        "onsite_repair",
        Category.SERVICE,
        (
            _VEHICLE,
            Step("problem", "text"),
            Step("photos", "photos", optional=True),
            Step("address", "place"),
            _DATE,
            _SLOT,
            _CONFIRM,
        ),
    ),
    "parts_delivery": Form(
        "parts_delivery",
        Category.SERVICE,
        (_VEHICLE, Step("part", "text"), Step("address", "place"), _CONFIRM),
    ),
    "vehicle": Form("vehicle", None, (Step("vin", "text"), Step("vehicle_model", "choice", MODELS))),
}


def first_step(form: Form, data: dict[str, Any]) -> Step:
    """The first step that applies."""
    step = next_step(form, None, data)
    assert step is not None
    return step


def next_step(form: Form, current: str | None, data: dict[str, Any]) -> Step | None:
    """The step after `current` (None: from the start) whose condition holds; None at the end."""
    keys = [s.key for s in form.steps]
    start = 0 if current is None else keys.index(current) + 1
    for step in form.steps[start:]:
        if step.when is None or step.when(data):
            return step
    return None


def get_step(form: Form, key: str) -> Step | None:
    """A step by key."""
    return next((s for s in form.steps if s.key == key), None)


def day_options(now: datetime) -> list[str]:
    """The next days one can book, as YYYYMMDD codes (tomorrow first, dealer time)."""
    today = now.astimezone(LOCAL_TZ).date()
    return [(today + timedelta(days=n)).strftime("%Y%m%d") for n in range(1, DAYS_AHEAD + 1)]


def label(step: Step, code: str, locale: str, vehicles: dict[str, str] | None = None) -> str:
    """How an option code reads on a button."""
    if step.kind == "date":
        day = date(int(code[:4]), int(code[4:6]), int(code[6:8]))
        return f"{day:%m-%d} {WEEKDAYS[normalize_locale(locale)][day.weekday()]}"
    if step.kind == "slot":
        return f"{code[:2]}:{code[2:]}"
    if step.kind == "vehicle" and vehicles and code in vehicles:
        return vehicles[code]
    if code in MODELS:
        return code
    return tx(f"opt.{code}", locale)


def shown_value(key: str, value: Any, locale: str) -> str:
    """An answer as the summary shows it."""
    if isinstance(value, dict) and "latitude" in value:
        return tx("location", locale, lat=value["latitude"], lon=value["longitude"])
    if isinstance(value, dict) and "label" in value:
        return str(value["label"])
    if isinstance(value, list):
        return str(len(value))
    if key == "date" and isinstance(value, str) and len(value) == 8:
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    if key == "slot" and isinstance(value, str) and len(value) == 4:
        return f"{value[:2]}:{value[2:]}"
    if isinstance(value, str) and f"opt.{value}" in _OPTION_KEYS:
        return tx(f"opt.{value}", locale)
    return str(value)


_OPTION_KEYS = {f"opt.{c}" for c in ("showroom", "home", "maintenance", "repair", "inspection", "tyres")}


def summary(form: Form, data: dict[str, Any], locale: str) -> str:
    """The answers so far, one per line, in step order."""
    lines = [f"{tx(f'kind.{form.kind}', locale)}"]
    for step in form.steps:
        if step.key in data and data[step.key] not in (None, "", []):
            lines.append(
                f"• {tx(f'field.{step.key}', locale)}: {shown_value(step.key, data[step.key], locale)}"
            )
    return "\n".join(lines)


def case_fields(form: Form, data: dict[str, Any]) -> dict[str, Any]:
    """The structured fields a booking case carries (dates and times in ISO form)."""
    fields: dict[str, Any] = {"booking": form.kind}
    for key, value in data.items():
        if key.startswith("_") or value in (None, "", []):
            continue
        if key == "date":
            fields["date"] = f"{value[:4]}-{value[4:6]}-{value[6:]}"
        elif key == "slot":
            fields["slot"] = f"{value[:2]}:{value[2:]}"
        else:
            fields[key] = value
    if "date" in fields and "slot" in fields:
        fields["slot_start"] = f"{fields['date']}T{fields['slot']}:00+08:00"
    return fields


def subject(form: Form, data: dict[str, Any]) -> str:
    """A one-line case subject (English: staff read it in the console)."""
    parts = [
        {
            "test_drive": "Test drive",
            "service": "Service",
            "onsite_repair": "On-site repair",
            "parts_delivery": "Parts delivery",
        }.get(form.kind, form.kind)
    ]
    for key in ("model", "service_type", "part", "problem"):
        if data.get(key):
            parts.append(str(data[key])[:60])
    vehicle = data.get("vehicle")
    if isinstance(vehicle, dict) and vehicle.get("label"):
        parts.append(str(vehicle["label"]))
    if data.get("date"):
        when = shown_value("date", data["date"], "en")
        parts.append(f"{when} {shown_value('slot', data.get('slot', ''), 'en')}".strip())
    return ", ".join(parts)[:200]
