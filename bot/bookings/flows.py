"""Use cases of guided requests: start, answer a step, cancel; a finished booking opens a case."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.bookings import forms
from bot.bookings import service as booking_service
from bot.bookings.forms import FORMS, Form, Step
from bot.bookings.models import BookingDraft
from bot.bookings.texts import tx
from bot.bookings.vin import validate_vin
from bot.conversations import service as conv_service
from bot.conversations.enums import AuthorKind, Priority
from bot.conversations.flows import ensure_group, open_case
from bot.conversations.routing import RoutingDecision
from bot.errors import InvalidInput
from bot.runtime import Runtime
from bot.teams.models import Customer

MAX_PHOTOS = 10


@dataclass
class Prompt:
    """The question to show: text, buttons (value, label), and what else the step takes."""

    draft_id: int
    kind: str
    step: str
    text: str
    options: list[tuple[str, str]]
    typed: bool = False
    location: bool = False
    photos: bool = False


@dataclass
class BookingReply:
    """What answering a step did: the next prompt, a notice to show, or the end."""

    prompt: Prompt | None = None
    notice: str | None = None
    done: bool = False
    cancelled: bool = False
    stale: bool = False
    case_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Answer:
    """One answer: a pressed option, typed text, a shared location or a photo."""

    value: str | None = None
    text: str | None = None
    location: dict[str, float] | None = None
    photo: dict[str, Any] | None = None


async def start_booking(session: AsyncSession, rt: Runtime, *, customer: Customer, kind: str) -> Prompt:
    """Begin a form (any open one is cancelled) and return its first question."""
    form = FORMS.get(kind)
    if form is None:
        raise InvalidInput("booking.kind", f"unknown booking kind {kind!r}")
    step = forms.first_step(form, {})
    draft = await booking_service.create_draft(
        session, customer_id=customer.id, kind=kind, step=step.key, now=rt.clock.now()
    )
    return await _prompt(session, rt, draft=draft, form=form, step=step, customer=customer)


async def current_prompt(session: AsyncSession, rt: Runtime, *, customer: Customer) -> Prompt | None:
    """The question the customer's open draft waits on, if any."""
    draft = await booking_service.active_draft(session, customer_id=customer.id)
    if draft is None:
        return None
    form = FORMS[draft.kind]
    step = forms.get_step(form, draft.step)
    assert step is not None
    return await _prompt(session, rt, draft=draft, form=form, step=step, customer=customer)


async def waits_for_input(session: AsyncSession, *, customer: Customer, photo: bool = False) -> bool:
    """Whether the open draft takes typed text (or a photo) now, so a message is an answer."""
    draft = await booking_service.active_draft(session, customer_id=customer.id)
    if draft is None:
        return False
    step = forms.get_step(FORMS[draft.kind], draft.step)
    if step is None:
        return False
    if photo:
        return step.kind == "photos"
    return step.kind in ("text", "place", "photos")


async def answer_booking(
    session: AsyncSession,
    rt: Runtime,
    *,
    customer: Customer,
    answer: Answer,
    channel: str,
    draft_id: int | None = None,
    step_key: str | None = None,
) -> BookingReply:
    """Apply an answer to the open draft (or the named draft and step, for button presses)."""
    if draft_id is None:
        draft = await booking_service.active_draft(session, customer_id=customer.id)
    else:
        draft = await booking_service.get_draft(session, draft_id=draft_id)
    if draft is None or draft.customer_id != customer.id or draft.status != booking_service.ACTIVE:
        return BookingReply(stale=True, notice=tx("stale", customer.locale))
    if step_key is not None and step_key != draft.step:
        return BookingReply(stale=True, notice=tx("stale", customer.locale))
    form = FORMS[draft.kind]
    step = forms.get_step(form, draft.step)
    assert step is not None
    now = rt.clock.now()
    if answer.value == "cancel":
        draft.status, draft.updated_at = booking_service.CANCELLED, now
        return BookingReply(cancelled=True, notice=tx("cancelled", customer.locale))
    try:
        value = await _read(session, rt, step=step, answer=answer, draft=draft, customer=customer)
    except InvalidInput as exc:
        prompt = await _prompt(session, rt, draft=draft, form=form, step=step, customer=customer)
        key = {"booking.option": "invalid.option", "booking.photo": "invalid.photo"}.get(
            exc.code, "invalid.text"
        )
        if exc.code.startswith("vin."):
            key = f"invalid.{exc.code}"
        return BookingReply(prompt=prompt, notice=tx(key, customer.locale))
    if step.kind == "photos" and answer.photo is not None:
        photos = [*draft.data.get("photos", []), answer.photo][:MAX_PHOTOS]
        booking_service.set_answer(draft, key="photos", value=photos, now=now)
        return BookingReply(notice=tx("photo.added", customer.locale, n=len(photos)))
    if step.kind == "confirm":
        return await _finish(session, rt, draft=draft, form=form, customer=customer, channel=channel)
    if step.kind != "photos":
        booking_service.set_answer(draft, key=step.key, value=value, now=now)
    following = forms.next_step(form, step.key, draft.data)
    if following is None:
        return await _finish(session, rt, draft=draft, form=form, customer=customer, channel=channel)
    draft.step = following.key
    prompt = await _prompt(session, rt, draft=draft, form=form, step=following, customer=customer)
    return BookingReply(prompt=prompt)


async def cancel_booking(session: AsyncSession, rt: Runtime, *, customer: Customer) -> bool:
    """Cancel the customer's open draft; False if there was none."""
    return await booking_service.cancel_drafts(session, customer_id=customer.id, now=rt.clock.now()) > 0


async def _read(
    session: AsyncSession, rt: Runtime, *, step: Step, answer: Answer, draft: BookingDraft, customer: Customer
) -> Any:
    """Validate an answer for a step and return the value to store."""
    if step.optional and answer.value in ("skip", "done"):
        return None
    if step.kind in ("choice", "confirm"):
        if answer.value not in step.options:
            raise InvalidInput("booking.option", "pick one of the buttons")
        return answer.value
    if step.kind == "date":
        return _read_date(answer.value, rt.clock.now())
    if step.kind == "slot":
        if answer.value not in forms.SLOTS:
            raise InvalidInput("booking.option", "pick one of the buttons")
        return answer.value
    if step.kind == "vehicle":
        return await _read_vehicle(session, answer.value, customer)
    if step.kind == "photos":
        if answer.photo is None and answer.value != "done":
            raise InvalidInput("booking.photo", "send a photo or press Done")
        return None
    if step.kind == "place" and answer.location is not None:
        return {"latitude": answer.location["latitude"], "longitude": answer.location["longitude"]}
    text = (answer.text or "").strip()
    if step.key == "vin":
        vin = validate_vin(text)
        if await booking_service.vin_taken(session, vin=vin):
            raise InvalidInput("vin.taken", "that VIN is registered already")
        return vin
    if not 2 <= len(text) <= 500:
        raise InvalidInput("booking.text", "type between 2 and 500 characters")
    return text


def _read_date(code: str | None, now: datetime) -> str:
    """A YYYYMMDD code between tomorrow and two weeks ahead (dealer time)."""
    try:
        assert code is not None and len(code) == 8
        day = date(int(code[:4]), int(code[4:6]), int(code[6:]))
    except (AssertionError, ValueError) as exc:
        raise InvalidInput("booking.option", "pick one of the buttons") from exc
    today = now.astimezone(forms.LOCAL_TZ).date()
    if not 1 <= (day - today).days <= 2 * forms.DAYS_AHEAD:
        raise InvalidInput("booking.option", "pick one of the buttons")
    return code


async def _read_vehicle(session: AsyncSession, code: str | None, customer: Customer) -> dict[str, Any] | None:
    """One of the customer's cars (by button) or None for a car not registered here."""
    if code == "none":
        return None
    for vehicle in await booking_service.customer_vehicles(session, customer_id=customer.id):
        if code == f"v{vehicle.id}":
            return {
                "vin": vehicle.vin,
                "model": vehicle.model,
                "label": _vehicle_label(vehicle.model, vehicle.vin),
            }
    raise InvalidInput("booking.option", "pick one of the buttons")


def _vehicle_label(model: str, vin: str) -> str:
    return f"{model} …{vin[-4:]}"


async def _prompt(
    session: AsyncSession, rt: Runtime, *, draft: BookingDraft, form: Form, step: Step, customer: Customer
) -> Prompt:
    """The question for a step with its buttons in the customer's language."""
    locale = customer.locale
    vehicles: dict[str, str] = {}
    if step.kind == "choice":
        codes = list(step.options)
    elif step.kind == "date":
        codes = forms.day_options(rt.clock.now())
    elif step.kind == "slot":
        codes = list(forms.SLOTS)
    elif step.kind == "vehicle":
        for v in await booking_service.customer_vehicles(session, customer_id=customer.id):
            vehicles[f"v{v.id}"] = _vehicle_label(v.model, v.vin)
        codes = [*vehicles, "none"]
    elif step.kind == "confirm":
        codes = []
    elif step.kind == "photos":
        codes = ["done"]
    else:
        codes = ["skip"] if step.optional else []
    options = [(c, forms.label(step, c, locale, vehicles)) for c in codes]
    if step.kind == "confirm":
        text = tx("ask.confirm", locale, summary=forms.summary(form, draft.data, locale))
        options = [("confirm", tx("opt.confirm", locale))]
    else:
        text = tx(f"ask.{step.key}", locale)
    options.append(("cancel", tx("opt.cancel", locale)))
    return Prompt(
        draft_id=draft.id,
        kind=form.kind,
        step=step.key,
        text=text,
        options=options,
        typed=step.kind in ("text", "place"),
        location=step.kind == "place",
        photos=step.kind == "photos",
    )


async def _finish(
    session: AsyncSession, rt: Runtime, *, draft: BookingDraft, form: Form, customer: Customer, channel: str
) -> BookingReply:
    """Close the draft: register the car, or store the booking as a message and open its case."""
    now = rt.clock.now()
    draft.status, draft.step, draft.updated_at = booking_service.DONE, "done", now
    locale = customer.locale
    if form.category is None:
        vin, model = str(draft.data["vin"]), str(draft.data.get("vehicle_model") or "")
        await booking_service.add_vehicle(session, customer=customer, vin=vin, model=model)
        return BookingReply(done=True, notice=tx("vehicle.saved", locale, model=model, vin=vin))
    group, _ = await ensure_group(session, rt, customer=customer)
    message = await conv_service.add_message(
        session,
        group_id=group.id,
        author_kind=AuthorKind.CUSTOMER,
        channel=channel,
        body=forms.summary(form, draft.data, locale),
        now=now,
        attachments=list(draft.data.get("photos", [])),
        meta={"booking_draft": draft.id},
    )
    for bridge in rt.bridges.values():
        await bridge.mirror(session, group=group, message=message)
    case = await open_case(
        session,
        rt,
        group=group,
        decision=RoutingDecision(form.category, Priority.NORMAL, f"booking: {form.kind} -> {form.category}"),
        subject=forms.subject(form, draft.data),
        fields={**forms.case_fields(form, draft.data), "draft_id": draft.id},
    )
    message.case_id = case.id
    draft.case_id = case.id
    kind = tx(f"kind.{form.kind}", locale)
    return BookingReply(done=True, case_id=case.id, notice=tx("booked", locale, kind=kind, case_id=case.id))
