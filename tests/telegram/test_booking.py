"""Bookings over Telegram: the state lives in the database, so a restart halfway loses nothing."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from sqlalchemy import select

from bot.bookings.models import BookingDraft
from bot.conversations.models import Case
from bot.teams.models import Staff, Vehicle
from tests.botapi import BotApiServer, GroupClient, SentMessage, UserClient
from tests.live import LiveServer
from tests.telegram.conftest import STAFF_CHAT

Butler = Callable[..., AbstractAsyncContextManager[LiveServer]]


async def press_and_wait(
    botapi: BotApiServer, user: UserClient, prompt: SentMessage, data: str
) -> SentMessage:
    """Press a button of a prompt and wait until the prompt was edited into the next step."""
    before = prompt.text
    press = await user.press(prompt, data)
    await press.wait_answer()
    await botapi.wait_until(lambda: prompt.text != before)
    return prompt


async def test_test_drive_booking_survives_a_restart(
    butler: Butler, botapi: BotApiServer, staff_group: GroupClient
) -> None:
    """Model and day before the restart, time, place and confirm after: a sales case with the slot."""
    customer = botapi.user(4301, "Wang Fang", language_code="en")
    async with butler():
        await customer.send_command("/start")
        [hello] = await customer.wait_for_reply(1)
        await customer.press(hello, "m:test_drive")
        [_, prompt] = await customer.wait_for_reply(2)
        assert prompt.text == "Which model would you like to drive?"
        assert prompt.buttons[:2] == ["bk:1:model:Demo E3", "bk:1:model:Demo E7"]
        await press_and_wait(botapi, customer, prompt, "bk:1:model:Demo E7")
        assert prompt.text == "Pick a day:"
        day = prompt.buttons[1]
        await press_and_wait(botapi, customer, prompt, day)
        assert prompt.text == "Pick a time:"
    # The bot is down; the customer presses anyway (Telegram keeps the update until it is back).
    press = await customer.press(prompt, "bk:1:slot:1400")
    async with butler() as live:
        await press.wait_answer(timeout=10)
        await botapi.wait_until(lambda: prompt.text == "Where shall we meet?")
        await press_and_wait(botapi, customer, prompt, "bk:1:place:showroom")
        assert prompt.text is not None and prompt.text.startswith("Please confirm:\nTest drive")
        assert "• Time: 14:00" in prompt.text and "• Model: Demo E7" in prompt.text
        await press_and_wait(botapi, customer, prompt, "bk:1:confirm:confirm")
        assert prompt.text is not None and prompt.text.startswith("Sent: Test drive (case #1)")
        await botapi.wait_until(lambda: any("Demo E7" in (m.text or "") for m in staff_group.sent()))
        async with live.rt.maker() as session:
            case = await session.scalar(select(Case))
            draft = await session.scalar(select(BookingDraft))
            assignee = await session.get(Staff, case.assignee_id) if case and case.assignee_id else None
    assert case is not None and case.category == "sales" and case.status == "open"
    assert assignee is not None and assignee.role == "sales"
    day_iso = f"{day[-8:-4]}-{day[-4:-2]}-{day[-2:]}"
    assert case.fields["booking"] == "test_drive" and case.fields["model"] == "Demo E7"
    assert case.fields["slot_start"] == f"{day_iso}T14:00:00+08:00" and case.fields["place"] == "showroom"
    assert case.subject == f"Test drive, Demo E7, {day_iso} 14:00"
    assert draft is not None and draft.status == "done" and draft.case_id == case.id
    [topic] = botapi.topics(STAFF_CHAT)
    assert any("Test drive" in (m.text or "") for m in staff_group.sent(topic.message_thread_id))


async def test_on_site_repair_with_typed_answers_photo_and_location(
    butler: Butler, botapi: BotApiServer
) -> None:
    """Typed problem, a photo, a shared location: a service case; /vehicle registers a car first."""
    from tests.botapi.media import png_bytes

    customer = botapi.user(4302, "Zhao Lei", language_code="en")
    async with butler() as live:
        await customer.send_command("/vehicle")
        [ask_vin] = await customer.wait_for_reply(1)
        assert ask_vin.text is not None and "VIN" in ask_vin.text
        await customer.send_text("LSVAB1234CD56789O")
        [_, again] = await customer.wait_for_reply(2)
        assert again.text is not None and again.text.startswith("A VIN never contains I, O or Q")
        await customer.send_text("lsvab 1234 cd567890")
        [*_, model] = await customer.wait_for_reply(3)
        await customer.press(model, next(b for b in model.buttons if b.endswith("Demo S5")))
        await botapi.wait_until(lambda: (model.text or "").startswith("Your car is registered"))
        await customer.send_command("/menu")
        [*_, menu] = await customer.wait_for_reply(4)
        await customer.press(menu, "m:onsite_repair")
        [*_, prompt] = await customer.wait_for_reply(5)
        assert prompt.text == "Which car is it about?" and prompt.buttons[0].endswith(":v1")
        await press_and_wait(botapi, customer, prompt, prompt.buttons[0])
        assert prompt.text == "Please describe the problem:"
        await customer.send_text("The charging flap will not open")
        [*_, photos] = await customer.wait_for_reply(6)
        await customer.send_photo(png_bytes(4, 4), caption="the flap")
        [*_, added] = await customer.wait_for_reply(7)
        assert added.text == "1 photo(s) received. Send more or press Done."
        await press_and_wait(botapi, customer, photos, next(b for b in photos.buttons if ":done" in b))
        assert photos.text == "Type the address, or share a location:"
        await customer.send_location(31.2304, 121.4737)
        [*_, day] = await customer.wait_for_reply(8)
        await press_and_wait(botapi, customer, day, day.buttons[0])
        await press_and_wait(botapi, customer, day, day.buttons[0])
        assert day.text is not None and "location 31.23040, 121.47370" in day.text
        await press_and_wait(botapi, customer, day, day.buttons[0])
        async with live.rt.maker() as session:
            case = await session.scalar(select(Case))
            car = await session.scalar(select(Vehicle))
    assert car is not None and car.vin == "LSVAB1234CD567890" and car.model == "Demo S5"
    assert case is not None and case.category == "service"
    assert case.fields["problem"] == "The charging flap will not open"
    assert case.fields["vehicle"]["vin"] == "LSVAB1234CD567890"
    assert case.fields["address"] == {"latitude": 31.2304, "longitude": 121.4737}
    assert len(case.fields["photos"]) == 1 and case.fields["photos"][0]["path"]
